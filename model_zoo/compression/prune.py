"""``prune-<percent>``: unstructured L1 magnitude pruning of the encoder's Linear weights, made permanent.

Pruned zeros are stored dense, so pruning alone does not shrink the file or speed up dense kernels; the card
and the results table say how sparse the model is over two named denominators (see
:mod:`model_zoo.compression.weights`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from model_zoo.compression.base import (
    Made,
    Progress,
    Sweep,
    UnsupportedVariantError,
    VariantKind,
    VariantSpec,
    numbered,
    register,
)
from model_zoo.compression.weights import encoder_linears
from model_zoo.handle import ModelHandle


def prune_magnitude(model: nn.Module, sparsity: float, scope: str = "global") -> nn.Module:
    """L1 unstructured pruning of the encoder's Linear weights (in place), then ``prune.remove``.

    Args:
        sparsity: fraction of those weights set to zero.
        scope: ``"global"`` ranks weights over all targeted layers together; ``"layer"`` prunes each layer
            to ``sparsity``.
    """
    from torch.nn.utils import prune

    targets = [(m, "weight") for _, m in encoder_linears(model)]
    if not targets:
        raise UnsupportedVariantError("This model has no Linear layers in its encoder to prune.")
    if scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        for module, param in targets:
            prune.l1_unstructured(module, param, amount=sparsity)
    for module, param in targets:
        prune.remove(module, param)
    return model


class MagnitudePruning(VariantKind):
    name = "prune"
    title = "Unstructured magnitude pruning"
    changes = "The smallest encoder Linear weights (by absolute value) set to zero; the shapes stay."
    fields = ("sparsity", "scope")
    naming = "prune-<percent>"
    sweep = Sweep("sparsity", "Sparsities", (0.1, 0.3, 0.5, 0.7, 0.9), (0.3, 0.5), "{:.0%}")

    def parse_name(self, name: str) -> dict[str, Any] | None:
        percent = numbered("prune", name)
        return None if percent is None else {"sparsity": percent / 100}

    def name_of(self, spec: VariantSpec) -> str:
        return f"prune-{round(spec.sparsity * 100)}"

    def transform(self, model: nn.Module, source: ModelHandle, spec: VariantSpec, progress: Progress) -> Made:
        return Made(prune_magnitude(model, spec.sparsity, spec.scope), {
            "method": f"unstructured L1 magnitude pruning ({spec.scope}) of encoder Linear weights, made permanent "
                      "(prune.remove)", "backend": "torch.nn.utils.prune", "requested_sparsity": spec.sparsity})


register(MagnitudePruning())
