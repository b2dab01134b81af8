"""A variant kind made for the tests: random unstructured pruning, the baseline magnitude pruning should beat.

It shows what adding a variant takes: this one file (a ``VariantKind`` with its name, settings, and how it
changes a copy of the model) and its registration; making, measuring and saving come with the registry.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from model_zoo.compression import Made, Progress, VariantKind, VariantSpec
from model_zoo.compression.base import numbered
from model_zoo.compression.weights import encoder_linears
from model_zoo.handle import ModelHandle


class RandomPruning(VariantKind):
    name = "random"
    title = "Random pruning (baseline)"
    changes = "Randomly chosen encoder Linear weights set to zero."
    fields = ("sparsity", "seed")
    naming = "random-<percent>"

    def parse_name(self, name: str) -> dict[str, Any] | None:
        percent = numbered("random", name)
        return None if percent is None else {"sparsity": percent / 100}

    def name_of(self, spec: VariantSpec) -> str:
        return f"random-{round(spec.sparsity * 100)}"

    def transform(self, model: nn.Module, source: ModelHandle, spec: VariantSpec, progress: Progress) -> Made:
        torch.manual_seed(spec.seed)
        targets = [(m, "weight") for _, m in encoder_linears(model)]
        prune.global_unstructured(targets, pruning_method=prune.RandomUnstructured, amount=spec.sparsity)
        for module, param in targets:
            prune.remove(module, param)
        return Made(model, {"method": f"random unstructured pruning of encoder Linear weights (seed {spec.seed})",
                            "backend": "torch.nn.utils.prune", "requested_sparsity": spec.sparsity})
