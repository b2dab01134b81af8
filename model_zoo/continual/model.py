"""The model of a continual run: the base with its head extended to every task's labels, set up by its method;
copies of it (one per strategy), snapshots for observers, and its weights in checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_zoo.continual.heads import extend_head, restrict_head
from model_zoo.finetune.model import Prepared, load_base
from model_zoo.handle import ModelHandle
from model_zoo.methods import METHODS
from model_zoo.params import count_parameters


@dataclasses.dataclass
class Start:
    """The prepared model, the handle it was loaded through (a template for snapshots), and what its head had."""

    prep: Prepared
    template: ModelHandle
    base_labels: list[str]  # the base's own labels ([] when its head was untrained)
    kept: list[str]  # labels whose trained rows the extended head kept


def prepare(base: str, method: str, method_config: Any, labels: list[str], seed: int = 13,
            device: str | torch.device = "auto") -> Start:
    """Load ``base``, extend its head to ``labels`` (keeping the rows of labels it knows) and set it up for
    ``method``.

    Raises:
        LoupeError: the base is an adapter on another model, or its head cannot be extended.
    """
    entry = METHODS.lookup(method)
    settings = entry.config(method_config)
    torch.manual_seed(seed)
    handle, folder = load_base(base, labels, device, "continue from")
    untrained = bool(handle.info.get("head_untrained"))
    base_labels = [] if untrained else list(handle.label_names)
    model = handle.model
    kept = extend_head(model, labels, keep=not untrained)
    trainable = entry.prepare(model, settings)
    prep = Prepared(trainable, handle.tokenizer, entry, settings, count_parameters(trainable), list(labels),
                    bool(set(labels) - set(kept)), base, folder, handle.device)
    return Start(prep, handle, base_labels, kept)


def plain_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` as a plain classifier in eval mode, frozen (a LoRA model merged into its weights)."""
    out: Any = copy.deepcopy(model)
    if hasattr(out, "merge_and_unload"):
        out = out.merge_and_unload()
    out.eval()
    return out.requires_grad_(False)


def snapshot(template: ModelHandle, model: nn.Module, columns: list[int] | None = None, label: str = "") -> ModelHandle:
    """A :class:`ModelHandle` on a frozen copy of ``model``, for explainers (the handle ``template`` came from
    ``model_zoo.load``); with ``columns``, the copy's head keeps only those columns (one task's head)."""
    plain: Any = plain_copy(model)
    if columns is not None:
        plain = restrict_head(plain, columns)
    config: Any = plain.config
    labels = {i: str(config.id2label.get(i, i)) for i in range(int(config.num_labels))}
    info = {**template.info, "id": label or f"{template.id}#continual"}
    return dataclasses.replace(template, model=plain, labels=labels, info=info, total_passes=0,
                               _lock=threading.Lock(), lock=threading.RLock(), _tokenizer_lock=threading.Lock(),
                               _tokenizer_pool=[])


def save_weights(model: nn.Module, path: Path) -> None:
    """Every weight of ``model`` (a training model, maybe peft-wrapped) into one safetensors file."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}, str(path))


def load_weights(model: nn.Module, path: Path) -> None:
    """Put the weights :func:`save_weights` wrote back into a model of the same make."""
    from safetensors.torch import load_file

    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in load_file(str(path)).items()}, strict=True)
