"""What the private training loops share: batches of encoded texts, validation, the trainable weights (what a
checkpoint keeps and what federated clients exchange), checkpoints that resume, and the learning-rate schedule."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_zoo.training import classification_metrics

COMPLETE = ".complete"  # as the Trainer's checkpoints: a checkpoint counts once this marker is written


def collator(tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
    """Pads a list of encoded rows (``input_ids``, ``attention_mask``, ``labels``) into one batch of tensors."""
    from transformers import DataCollatorWithPadding

    pad = DataCollatorWithPadding(tokenizer)
    return lambda rows: dict(pad(rows))


@torch.no_grad()
def evaluate(model: nn.Module, rows: list[dict[str, Any]], collate: Callable[..., Any], n_classes: int,
             batch_size: int = 64) -> dict[str, float]:
    """Loss, accuracy and macro F1 of ``model`` on encoded ``rows`` (eval mode; the mode is restored)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    losses, preds, labels = [], [], []
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))  # similar lengths: less padding
    for start in range(0, len(order), batch_size):
        batch = {k: v.to(device) for k, v in collate([rows[i] for i in order[start:start + batch_size]]).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        losses.append(float(nn.functional.cross_entropy(logits, batch["labels"], reduction="sum")))
        preds.extend(logits.argmax(-1).tolist())
        labels.extend(batch["labels"].tolist())
    model.train(was)
    m = classification_metrics(np.asarray(labels), np.asarray(preds), n_classes)
    return {"loss": sum(losses) / max(1, len(rows)), "accuracy": m["accuracy"], "f1": m["f1_macro"]}


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable weights by name (CPU copies): all that a checkpoint keeps and all that clients send."""
    return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: nn.Module, state: dict[str, Any]) -> None:
    """Put ``state`` (tensors or arrays by name) into the model's trainable weights; every one must be there."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(state) != set(params):
        missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        raise ValueError(f"trainable weights do not match: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(torch.as_tensor(np.asarray(state[n]) if not isinstance(state[n], torch.Tensor) else state[n]))


def frozen_fingerprint(model: nn.Module) -> str:
    """SHA-256 of the frozen weights (names and values): equal on two models whose frozen weights are equal."""
    digest = hashlib.sha256()
    for n, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if not p.requires_grad:
            digest.update(n.encode())
            digest.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def learning_rate(step: int, total: int, peak: float, warmup_ratio: float) -> float:
    """Linear warm-up over ``warmup_ratio`` of ``total`` steps, then linear decay to 0 (as the Trainer's)."""
    warm = math.ceil(total * warmup_ratio)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * max(0.0, (total - step) / max(1, total - warm))


# --- checkpoints ------------------------------------------------------------------------------------------------
def save_checkpoint(folder: Path, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write ``checkpoint-<step>/`` (trainable weights as safetensors, the loop's state as JSON, the optimizer's
    state), then its complete marker; older checkpoints are removed once the new one is complete."""
    from safetensors.torch import save_file

    path = folder / f"checkpoint-{step}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    save_file(tensors, str(path / "trainable.safetensors"))
    (path / "state.json").write_text(json.dumps(state), encoding="utf-8")
    if optimizer is not None:
        torch.save(optimizer.state_dict(), path / "optimizer.pt")
    (path / COMPLETE).write_text(str(time.time()), encoding="utf-8")
    for old in folder.glob("checkpoint-*"):
        if old != path and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return path


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (unfinished ones are deleted)."""
    found = sorted((int(p.name.rsplit("-", 1)[1]), p) for p in folder.glob("checkpoint-*")
                   if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit())
    while found and not (found[-1][1] / COMPLETE).exists():
        shutil.rmtree(found.pop()[1], ignore_errors=True)
    return found[-1][1] if found else None


def read_checkpoint(path: Path, optimizer: torch.optim.Optimizer | None = None) -> tuple[dict[str, torch.Tensor],
                                                                                          dict[str, Any]]:
    """(trainable weights, loop state) of a checkpoint; the optimizer's state is loaded into ``optimizer``
    (``torch.load(weights_only=True)``: tensors and numbers only)."""
    from safetensors.torch import load_file

    tensors = load_file(str(path / "trainable.safetensors"))
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    if optimizer is not None and (path / "optimizer.pt").exists():
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    return tensors, state


class TrainedBy:
    """What ``finetune.job._finish`` reads of a Trainer and its result, for a loop that is not the Trainer."""

    def __init__(self, model: nn.Module, steps: int, loss: float) -> None:
        self.model = model
        self.state = type("State", (), {"best_model_checkpoint": None})()
        self.global_step = steps
        self.training_loss = loss
