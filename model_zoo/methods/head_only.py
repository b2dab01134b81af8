"""A frozen encoder: only the classification head (and by default the pooler) trains; a baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from model_zoo.methods.base import INCLUDE_POOLER_HELP, FinetuneMethod, register, train_head
from model_zoo.spec import setting


@dataclass
class HeadOnlyConfig:
    """Frozen encoder: only the head trains."""

    include_pooler: bool = setting(False, INCLUDE_POOLER_HELP)


@register
class HeadOnly(FinetuneMethod):
    name = "head_only"
    title = "Frozen encoder (head only)"
    summary = "Only the classification head trains (a baseline)."
    trains = ("Only the classification head (one linear layer over the pooled [CLS] vector); the encoder and "
              "pooler stay frozen.")
    Config = HeadOnlyConfig
    recipe = {"learning_rate": 2e-2, "batch_size": 8, "warmup_ratio": 0.0, "epochs": 3.0, "weight_decay": 0.0}

    def prepare(self, model: nn.Module, cfg: Any) -> nn.Module:
        model.requires_grad_(False)
        train_head(model, cfg.include_pooler)
        return model
