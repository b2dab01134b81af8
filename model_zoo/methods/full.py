"""Full fine-tuning: every weight trains; the model is saved whole."""

from __future__ import annotations

from typing import Any

from torch import nn

from model_zoo.methods.base import FinetuneMethod, register


@register
class Full(FinetuneMethod):
    name = "full"
    title = "Full fine-tuning"
    summary = "Every weight trains."
    trains = "Every weight of the encoder and the head."
    recipe = {"learning_rate": 1e-4, "epochs": 2.0}

    def prepare(self, model: nn.Module, cfg: Any) -> nn.Module:
        return model.requires_grad_(True)
