"""Short fine-tunes that some variants need: a recovery fine-tune after dropping layers, and distillation.

Both train on a random subset of the Rotten Tomatoes training split with the shared ``Trainer`` set-up
(:func:`model_zoo.training.make_trainer`); distillation swaps in its own ``Trainer`` subclass.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_zoo.compression.base import Progress, VariantSpec
from model_zoo.data import TextDataset, rotten_tomatoes
from model_zoo.handle import ModelHandle
from model_zoo.training import TrainConfig, make_trainer


def train_subset(n: int, seed: int) -> TextDataset:
    """``n`` texts of the RT training split drawn at random with ``seed``."""
    ds = rotten_tomatoes("train")
    idx = np.random.default_rng(seed).permutation(len(ds))[:n]
    return TextDataset([ds.texts[i] for i in idx], [ds.labels[i] for i in idx], ds.label_names, f"{ds.name}[{n}]")


def fit(model: nn.Module, source: ModelHandle, spec: VariantSpec, n: int, learning_rate: float,
        progress: Progress, trainer_cls: type | None = None, **trainer_kwargs: Any) -> dict[str, Any]:
    """Train ``model`` in place on ``n`` RT training texts for ``spec.epochs``, then put it on the source's device.

    Args:
        trainer_cls, trainer_kwargs: a ``Trainer`` subclass to train with (e.g. a distillation trainer) and
            what it takes beyond a plain ``Trainer``; None: a plain ``Trainer``.

    Returns:
        What the card says about the training: examples, epochs, steps, seconds, train loss, learning rate, data.
    """
    data = train_subset(n, spec.seed)
    cfg = TrainConfig(epochs=spec.epochs, batch_size=32, learning_rate=learning_rate,
                      max_length=min(128, source.max_length), seed=spec.seed)
    torch.manual_seed(spec.seed)
    model.requires_grad_(True)
    progress(f"{spec.name}: training on {len(data)} texts for {spec.epochs:g} epoch(s)")
    with tempfile.TemporaryDirectory(prefix="loupe-compress-") as out:
        run = make_trainer(model, source.tokenizer, data, None, cfg, Path(out), trainer_cls=trainer_cls,
                           **trainer_kwargs)
        started = time.perf_counter()
        result = run.train()
    model.to(source.device)
    return {"examples": len(data), "epochs": spec.epochs, "steps": int(result.global_step),
            "seconds": round(time.perf_counter() - started, 1), "train_loss": round(float(result.training_loss), 4),
            "learning_rate": cfg.learning_rate,
            "data": f"Rotten Tomatoes train split, random subset (seed {spec.seed})"}
