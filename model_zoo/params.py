"""Counting a model's parameters: one function for fine-tuning (what trains) and compression (what is stored)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ParameterCount:
    """``total`` parameters (each shared tensor once; quantised Linear weights and biases included), and how many
    of them train (``requires_grad``)."""

    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0


def count_parameters(model: nn.Module) -> ParameterCount:
    """Count ``model``'s parameters (see :class:`ParameterCount`)."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    for m in model.modules():  # dynamic int8 Linear layers keep their weights packed, outside parameters()
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
            w, b = m._packed_params._weight_bias()
            total += w.numel() + (b.numel() if b is not None else 0)
    return ParameterCount(trainable, total)
