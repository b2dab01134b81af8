"""``layers-<n>``: structured pruning by dropping whole encoder layers (transformers 5 has no ``prune_heads``),
keeping ``n`` evenly spread ones, optionally followed by a short recovery fine-tune."""

from __future__ import annotations

from typing import Any

from torch import nn

from model_zoo.compression.base import (
    Made,
    Progress,
    UnsupportedVariantError,
    VariantKind,
    VariantSpec,
    numbered,
    register,
)
from model_zoo.compression.fit import fit
from model_zoo.handle import ModelHandle


def _layer_list(model: nn.Module) -> tuple[nn.Module, str, str]:
    """The module holding the encoder's layer ModuleList, that list's attribute and the config key."""
    base = getattr(model, "base_model", model)
    for owner_name, attr, key in (("encoder", "layer", "num_hidden_layers"), ("transformer", "layer", "n_layers")):
        owner = getattr(base, owner_name, None)
        if owner is not None and isinstance(getattr(owner, attr, None), nn.ModuleList):
            return owner, attr, key
    raise UnsupportedVariantError(f"Cannot find the encoder layers of {type(model).__name__} to drop or copy.")


def spread(n: int, k: int) -> list[int]:
    """``k`` of ``n`` layer indices spread evenly from the bottom (6 -> 3 keeps 0, 2, 4: every other layer)."""
    if not 1 <= k <= n:
        raise UnsupportedVariantError(f"Cannot keep {k} of {n} layers.")
    return sorted({int(i * n / k) for i in range(k)})


def keep_layers(model: nn.Module, k: int) -> list[int]:
    """Keep ``k`` evenly spread encoder layers of ``model`` (in place); returns the kept indices."""
    owner, attr, key = _layer_list(model)
    layers = getattr(owner, attr)
    kept = spread(len(layers), k)
    setattr(owner, attr, nn.ModuleList([layers[i] for i in kept]))
    for new_idx, layer in enumerate(getattr(owner, attr)):
        for sub in layer.modules():
            if hasattr(sub, "layer_idx"):
                sub.layer_idx = new_idx
    setattr(model.config, key, len(kept))
    return kept


class LayerDrop(VariantKind):
    name = "layers"
    title = "Structured: drop layers"
    changes = "Whole encoder layers removed (evenly spread ones kept); optionally fine-tuned to recover."
    fields = ("layers", "recovery_examples", "epochs")
    naming = "layers-<n>"

    def parse_name(self, name: str) -> dict[str, Any] | None:
        n = numbered("layers", name)
        return None if n is None else {"layers": n}

    def name_of(self, spec: VariantSpec) -> str:
        return f"layers-{spec.layers}"

    def transform(self, model: nn.Module, source: ModelHandle, spec: VariantSpec, progress: Progress) -> Made:
        kept = keep_layers(model, spec.layers)
        card: dict[str, Any] = {"method": f"structured pruning: kept encoder layers {kept}", "kept_layers": kept,
                                "backend": "layer drop (transformers 5 has no prune_heads)"}
        if spec.recovery_examples:
            card["recovery_fine_tune"] = fit(model, source, spec, spec.recovery_examples, 5e-5, progress)
        return Made(model, card)


register(LayerDrop())
