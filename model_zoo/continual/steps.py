"""Training one step of a sequence and scoring the model on every task.

Each step trains with transformers' ``Trainer`` (:func:`model_zoo.training.make_trainer`) through a subclass
whose loss is the cross-entropy over the columns an example may use (:func:`~model_zoo.continual.heads.allowed_columns`)
plus, with EWC, the penalty. An example's *target* is a (task, column) pair: the training set's labels index a
table of targets, so replayed examples keep their own task and label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_zoo.continual.ewc import EWC, fisher_diagonal
from model_zoo.continual.heads import allowed_columns, predict
from model_zoo.continual.replay import ReplayBuffer
from model_zoo.continual.tasks import Task
from model_zoo.data import TextDataset
from model_zoo.training import TrainConfig, make_trainer


@dataclass(frozen=True)
class Targets:
    """The targets of one step's training set: for target ``k``, its head column and the columns it is scored over."""

    column: torch.Tensor  # (n_targets,) long
    allowed: torch.Tensor  # (n_targets, n_labels) bool


def masked_loss(logits: torch.Tensor, column: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (batch, labels) for ``column``, each row's softmax over its ``allowed``
    columns only (the others get no gradient)."""
    logits = logits.float()
    masked = torch.where(allowed, logits, torch.full_like(logits, torch.finfo(logits.dtype).min))
    return nn.functional.cross_entropy(masked, column)


def training_set(step: int, tasks: Sequence[Task], columns: Sequence[Sequence[int]], scenario: str, n_labels: int,
                 buffer: ReplayBuffer | None = None) -> tuple[TextDataset, Targets]:
    """Task ``step``'s training split plus the replay buffer's examples, and their targets."""
    pairs: list[tuple[int, int]] = []  # (task, label within the task) per target
    index: dict[tuple[int, int], int] = {}
    texts: list[str] = []
    labels: list[int] = []

    def add(task: int, text: str, label: int) -> None:
        key = (task, label)
        if key not in index:
            index[key] = len(pairs)
            pairs.append(key)
        texts.append(text)
        labels.append(index[key])

    for text, y in zip(tasks[step].train.texts, tasks[step].train.labels):
        add(step, text, y)
    for item in (buffer.items if buffer is not None else []):
        add(item.task, tasks[item.task].train.texts[item.index], item.label)
    column = torch.tensor([columns[t][y] for t, y in pairs], dtype=torch.long)
    allowed = torch.zeros((len(pairs), n_labels), dtype=torch.bool)
    for k, (t, _) in enumerate(pairs):
        allowed[k, allowed_columns(scenario, columns, t, step)] = True
    names = [f"{tasks[t].name}/{tasks[t].labels[y]}" for t, y in pairs]
    return TextDataset(texts, labels, names, f"step {step + 1}"), Targets(column, allowed)


@lru_cache(maxsize=1)
def trainer_class() -> type:
    """``Trainer`` with the continual loss (imported on first use: transformers is slow to import)."""
    from transformers import Trainer

    class ContinualTrainer(Trainer):
        """Masked cross-entropy over each example's allowed columns, plus the EWC penalty when one is given."""

        def __init__(self, *args: Any, targets: Targets, ewc: EWC | None = None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.targets, self.ewc = targets, ewc
            self.penalties: list[float] = []  # the EWC penalty at each training step (to report its size)

        def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            target = inputs.pop("labels")
            outputs = model(**inputs)
            device = outputs.logits.device
            loss = masked_loss(outputs.logits, self.targets.column.to(device)[target],
                               self.targets.allowed.to(device)[target])
            if self.ewc is not None and self.ewc.fisher:
                penalty = self.ewc.penalty(model).to(device)
                if model.training:
                    self.penalties.append(float(penalty.detach()))
                loss = loss + penalty
            return (loss, outputs) if return_outputs else loss

    return ContinualTrainer


def train_step(model: nn.Module, tokenizer: Any, data: TextDataset, targets: Targets, cfg: TrainConfig,
               out_dir: Path, ewc: EWC | None = None, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Train ``model`` in place on one step's examples.

    Returns:
        ``{"steps", "train_loss", "seconds"}``, and with EWC ``ewc_penalty`` (its mean over the steps: how much of
        ``train_loss``, which includes it, is the penalty).
    """
    import time

    trainer = make_trainer(model, tokenizer, data, None, cfg, out_dir, callbacks, trainer_cls=trainer_class(),
                           targets=targets, ewc=ewc)
    steps_per_epoch = -(-len(data) // cfg.batch_size)
    trainer.args.logging_steps = max(1, min(10, int(steps_per_epoch * cfg.epochs) // 10))
    start = time.perf_counter()
    result = trainer.train()
    out = {"steps": int(result.global_step), "train_loss": float(result.training_loss),
           "seconds": round(time.perf_counter() - start, 1)}
    if trainer.penalties:
        out["ewc_penalty"] = round(sum(trainer.penalties) / len(trainer.penalties), 6)
    return out


def logits_of(model: nn.Module, tokenizer: Any, texts: Sequence[str], max_length: int,
              batch_size: int = 64) -> np.ndarray:
    """The model's logits for ``texts`` (length-sorted batches, dynamic padding, inference mode), in input order."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: np.ndarray | None = None
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt").to(device)
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.float().cpu()
            if out is None:
                out = np.zeros((len(texts), logits.shape[1]), dtype=np.float32)
            out[idx] = logits.numpy()
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def accuracy(logits: np.ndarray, labels: Sequence[int], columns: Sequence[int], scenario: str) -> float:
    """Accuracy on a task's test split: its label ``y`` is column ``columns[y]``; task-incremental predictions
    pick among the task's columns, class-incremental ones among all."""
    if not len(labels):
        return float("nan")
    pred = predict(logits, columns if scenario == "task" else None)
    gold = np.asarray([columns[y] for y in labels])
    return float((pred == gold).mean())


def fisher_of(model: nn.Module, tokenizer: Any, task: Task, step: int, columns: Sequence[Sequence[int]],
              scenario: str, n_labels: int, n: int, max_length: int, seed: int) -> dict[str, torch.Tensor]:
    """The diagonal empirical Fisher on ``n`` of task ``step``'s training examples (seeded), with the loss the
    step trained with (each example scored over its allowed columns)."""
    import random

    rows = sorted(random.Random(seed + step).sample(range(len(task.train)), min(n, len(task.train))))
    allowed = torch.zeros(n_labels, dtype=torch.bool)
    allowed[allowed_columns(scenario, columns, step, step)] = True
    device = next(model.parameters()).device

    def examples() -> Any:
        for i in rows:
            enc = tokenizer(task.train.texts[i], truncation=True, max_length=max_length, return_tensors="pt")
            yield enc.to(device), columns[step][task.train.labels[i]]

    def loss(m: nn.Module, example: Any) -> torch.Tensor:
        enc, column = example
        logits = m(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        return masked_loss(logits, torch.tensor([column], device=device), allowed.to(device)[None, :])

    return fisher_diagonal(model, examples(), loss)
