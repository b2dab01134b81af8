"""The model of a run: the base with a head for the run's labels, set up by its method; and its export."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from model_zoo import store
from model_zoo.data import RT_LABELS
from model_zoo.errors import LoupeError, UntrainedHeadError
from model_zoo.handle import ModelHandle
from model_zoo.loading import BASE_ENCODER_ID, load, locate
from model_zoo.methods import METHODS, FinetuneMethod, head_names
from model_zoo.params import ParameterCount, count_parameters

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel


@dataclass
class Prepared:
    """A model ready to train: its method and settings, which weights train, and how it relates to its base."""

    model: nn.Module
    tokenizer: Any
    method: FinetuneMethod
    method_config: Any  # an instance of ``method.Config``
    parameters: ParameterCount
    labels: list[str]
    new_head: bool
    base: str
    base_folder: Path | None
    device: torch.device

    @property
    def trainable(self) -> int:
        return self.parameters.trainable

    @property
    def total(self) -> int:
        return self.parameters.total

    @property
    def fraction(self) -> float:
        return self.parameters.fraction


def _fresh_head(model: PreTrainedModel, labels: list[str]) -> PreTrainedModel:
    """A copy of ``model`` whose head is new (initialised as transformers does) and sized for ``labels``.

    ``from_pretrained(..., num_labels=..., ignore_mismatched_sizes=True)`` re-initialises a head only when its
    size changes; a base with as many labels under other names would keep a head trained for other classes.
    """
    from transformers import AutoModelForSequenceClassification

    cfg = copy.deepcopy(model.config)
    cfg.num_labels = len(labels)
    cfg.id2label = dict(enumerate(labels))
    cfg.label2id = {n: i for i, n in enumerate(labels)}
    fresh = AutoModelForSequenceClassification.from_config(cfg, attn_implementation=cfg._attn_implementation)
    heads = tuple(f"{h}." for h in head_names(model))
    result = fresh.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith(heads)},
                                   strict=False)
    if any(not k.startswith(heads) for k in result.missing_keys):
        raise LoupeError(f"Could not give {type(model).__name__} a new head: {result.missing_keys[:4]}")
    return fresh.to(next(model.parameters()).device)


def load_base(base: str, labels: list[str], device: str | torch.device,
              action: str) -> tuple[ModelHandle, Path | None]:
    """The model a run trains from, and its folder: the bundled encoder or a bare encoder folder with an untrained
    head for ``labels``, any other model as it is (SDPA attention).

    Raises:
        LoupeError: ``base`` is an adapter on another model (the message says to ``action`` that base instead).
    """
    folder, _ = locate(base)
    if store.read_card(folder).get("peft"):
        raise LoupeError(f"{base} is an adapter on another model; {action} that base model instead.")
    bundled = base == BASE_ENCODER_ID
    try:
        handle = load(base, device, allow_untrained=bundled, labels=labels if bundled else None,
                      attn_implementation="sdpa")
    except UntrainedHeadError:  # a bare encoder folder: it gets a head for these labels
        handle = load(base, device, allow_untrained=True, labels=labels, attn_implementation="sdpa")
    return handle, folder


def prepare_model(base: str, method: str, config: Any = None, labels: list[str] | None = None,
                  device: str | torch.device = "auto", seed: int = 13) -> Prepared:
    """Load ``base``, fit its head to ``labels`` and set it up for ``method``; counts are ready before training.

    Args:
        base: ``minilm-base`` (the bundled encoder: always a new head) or any store id / model folder.
        method: a name in :data:`model_zoo.methods.METHODS`.
        config: the method's settings (dict or its Config dataclass; None: defaults).
        labels: the dataset's label names (default: Rotten Tomatoes'). A base whose labels differ gets a
            new head.
        device: where to put the model (``auto``: CUDA, MPS, then CPU).
        seed: seeds the new head and any new adapter weights.
    """
    entry = METHODS.lookup(method)
    settings = entry.config(config)
    torch.manual_seed(seed)
    labels = list(labels or RT_LABELS)
    handle, folder = load_base(base, labels, device, "fine-tune")
    model: PreTrainedModel = handle.model
    new_head = bool(handle.info.get("head_untrained"))
    if [handle.labels[i] for i in range(handle.num_labels)] != labels:
        model, new_head = _fresh_head(model, labels), True
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {n: i for i, n in enumerate(labels)}
    trainable = entry.prepare(model, settings)
    return Prepared(trainable, handle.tokenizer, entry, settings, count_parameters(trainable), labels, new_head,
                    base, folder, handle.device)


def export_model(prep: Prepared, model: nn.Module, folder: Path) -> dict[str, Any]:
    """Write the trained model into ``folder`` with a minimal card that ``model_zoo.load`` can read.

    The method saves its weights: a plain Hugging Face model, or an adapter with a reference to its base
    (card entry ``peft``) that ``model_zoo.load`` rebuilds through the method.

    Returns:
        The card entries that say how the model was saved (``peft`` or ``merged``).
    """
    model.eval()
    method, settings, tokenizer = prep.method, prep.method_config, prep.tokenizer
    config = cast("PretrainedConfig", model.config)  # a PeftModel hands on its base's config
    tokenizer.model_max_length = method.max_length(config, settings, int(tokenizer.model_max_length))
    entries = method.save(model, folder, settings)
    if method.saves_adapter(settings):
        if prep.base_folder is None:
            raise LoupeError("An adapter needs its base model on disk (store, bundled or a folder), not a hub id.")
        config.save_pretrained(folder)
        # Store and bundled ids stay ids; a folder is pinned by its absolute path (a relative one would
        # depend on the working directory of whoever loads the adapter).
        ref = prep.base if locate(prep.base)[1] in ("store", "bundled") else str(prep.base_folder.resolve())
        entries["peft"] = method.adapter_card(settings, ref, prep.base_folder)
    tokenizer.save_pretrained(folder)
    store.write_card(folder, {"labels": prep.labels, **entries})
    return entries
