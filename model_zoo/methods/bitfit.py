"""BitFit (Ben Zaken et al., 2022): only the bias terms and the head train.

It stays biases + head by default (the pooler's bias included), so on the bundled MiniLM it needs more than one
short epoch, or ``include_pooler`` to train the pooler's weight too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from model_zoo.methods.base import FinetuneMethod, register, train_head
from model_zoo.spec import setting


@dataclass
class BitFitConfig:
    """BitFit trains the bias terms and the head; optionally the whole pooler too."""

    include_pooler: bool = setting(False, "Also train the pooler's weight (not only its bias): off is BitFit proper; "
                                          "on helps a sentence encoder whose pooler was never trained (e.g. the "
                                          "bundled MiniLM)")


@register
class BitFit(FinetuneMethod):
    name = "bitfit"
    title = "BitFit"
    summary = "Only the bias terms and the head train."
    trains = ("Every bias term (encoder and pooler) plus the classification head; all weight matrices stay "
              "frozen.")
    Config = BitFitConfig
    recipe = {"learning_rate": 1e-2, "batch_size": 16, "warmup_ratio": 0.1, "epochs": 3.0, "weight_decay": 0.0}

    def prepare(self, model: nn.Module, cfg: Any) -> nn.Module:
        for name, p in model.named_parameters():
            p.requires_grad_(name.endswith(".bias"))
        train_head(model, cfg.include_pooler)
        return model
