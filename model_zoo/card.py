"""The model card of a trained model: what its ``loupe.json`` holds, written by the fine-tuning job.

Pages and reports read cards as plain JSON (``card.get("metrics", {}).get("test", {}).get("accuracy")``), so
the field names here are the card's keys. Cards of compressed variants and hand-made folders carry fewer keys;
``model_zoo.load`` needs only ``labels`` (and ``peft`` for an adapter).
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from model_zoo import store


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class ModelCard:
    """What ``loupe.json`` holds for a fine-tuned model.

    Attributes:
        id: the store id, or ``job:<job id>`` while the model stays with its job.
        labels: class names by output index.
        base_model: the id or folder the run started from; ``new_head`` says whether its head was replaced.
        method, method_title, method_config: the fine-tuning method, its title and its settings (JSON).
        trainable_parameters, total_parameters, trainable_fraction: from ``model_zoo.params.count_parameters``.
        data: the splits' sizes, classes and roles, the source, how it was split, notes, and the data spec.
        hyperparameters, seed: the training settings as run (``TrainConfig``), and its seed.
        metrics: per split (``validation``, ``test``): accuracy, macro F1, confusion matrix, size and role.
        selection: which step's weights were saved, chosen how and on which split.
        train_loss, steps, resumed_from_step, train_seconds, seconds: the run (seconds: the whole job).
        device, torch_threads, host, job, created: provenance.
        peft: for an adapter, the method, its settings, the base and its weights' SHA-256; ``merged``: whether
            LoRA updates were merged into a plain model.
        privacy: for a differentially private run, the guarantee (ε spent, δ, accountant) and how it was made
            (noise multiplier, clipping norm, sampling, steps); see ``model_zoo.private_training``.
        federated: for a federated run, the clients (each one's shard size and label balance, never its texts),
            rounds, clients per round, local epochs, partition and the time per round.
    """

    id: str
    labels: list[str]
    base_model: str
    method: str
    method_title: str
    method_config: dict[str, Any]
    trainable_parameters: int
    total_parameters: int
    trainable_fraction: float
    data: dict[str, Any]
    hyperparameters: dict[str, Any]
    seed: int
    metrics: dict[str, dict[str, Any]]
    selection: dict[str, Any]
    train_loss: float
    steps: int
    train_seconds: float
    seconds: float
    name: str = ""
    task: str = "text classification"
    new_head: bool = False
    resumed_from_step: int = 0
    device: str = ""
    torch_threads: int = field(default_factory=torch.get_num_threads)
    host: str = field(default_factory=platform.machine)
    job: str = ""
    created: str = field(default_factory=_utc_now)
    peft: dict[str, Any] | None = None
    merged: bool | None = None
    privacy: dict[str, Any] | None = None
    federated: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON (entries that do not apply, such as ``peft`` for a plain model, left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def write(self, folder: Path) -> None:
        """Write ``loupe.json`` into ``folder`` (atomically)."""
        store.write_card(folder, self.to_dict())
