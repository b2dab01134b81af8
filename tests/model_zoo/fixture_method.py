"""A fine-tuning method defined outside ``model_zoo``: only the LayerNorm weights and the head train.

It shows what adding a method takes: this one class (settings, recipe, which weights train) and one
registration (``METHODS.register``, done by the test that uses it). The job, the command line, the card,
saving and ``model_zoo.load`` need no change.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from model_zoo.methods.base import INCLUDE_POOLER_HELP, FinetuneMethod, train_head
from model_zoo.spec import setting


@dataclass
class LayerNormOnlyConfig:
    include_pooler: bool = setting(False, INCLUDE_POOLER_HELP)


class LayerNormOnly(FinetuneMethod):
    name = "layernorm_only"
    title = "LayerNorm only"
    summary = "Only the LayerNorm gains and biases and the head train."
    trains = "Every LayerNorm's weight and bias, and the classification head."
    Config = LayerNormOnlyConfig
    recipe = {"learning_rate": 1e-2, "epochs": 2.0}

    def prepare(self, model: nn.Module, cfg: LayerNormOnlyConfig) -> nn.Module:
        model.requires_grad_(False)
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.requires_grad_(True)
        train_head(model, cfg.include_pooler)
        return model
