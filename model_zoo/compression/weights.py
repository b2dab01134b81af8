"""What a variant's weights are: which layers pruning targets, how sparse they are, how many bytes they take.

Sparsity has two named denominators: zeros over all parameters of the model, and zeros over the weights of the
layers pruning targets (the encoder's Linear layers; pooler and head excluded). On ``rt-sentiment-minilm``
prune-50 is 0.50 of the pruned layers but 0.23 of all parameters (the word embeddings alone are about half the
model). Dynamic int8 Linear layers keep their weights packed, outside ``parameters()``; every count here
includes them.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_zoo.handle import is_quantized

_QuantLinear = torch.ao.nn.quantized.dynamic.Linear


def encoder_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The Linear layers pruning targets: those of the base model (encoder) except the pooler; not the head."""
    base = getattr(model, "base_model", model)
    return [(n, m) for n, m in base.named_modules() if isinstance(m, nn.Linear) and "pooler" not in n]


def _dequantized(m: _QuantLinear) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weight and bias of a dynamic int8 Linear as float tensors (rounding can make small weights 0)."""
    w, b = m._packed_params._weight_bias()
    return w.dequantize(), b


def _pruning_targets(model: nn.Module) -> list[torch.Tensor]:
    """Weights of the layers pruning targets (encoder Linear layers, int8 ones included)."""
    base = getattr(model, "base_model", model)
    out = []
    for name, m in base.named_modules():
        if "pooler" in name:
            continue
        if isinstance(m, nn.Linear):
            out.append(m.weight.detach())
        elif isinstance(m, _QuantLinear):
            out.append(_dequantized(m)[0])
    return out


def _all_weights(model: nn.Module) -> list[torch.Tensor]:
    """Every parameter tensor, plus the packed weights and biases of int8 Linear layers (as
    :func:`model_zoo.params.count_parameters` counts them)."""
    out = [p.detach() for p in model.parameters()]
    for m in model.modules():
        if isinstance(m, _QuantLinear):
            out += [t for t in _dequantized(m) if t is not None]
    return out


def _zero_fraction(tensors: Sequence[torch.Tensor]) -> tuple[float, int]:
    total = sum(t.numel() for t in tensors)
    zeros = sum(int((t == 0).sum()) for t in tensors)
    return (zeros / total if total else 0.0), int(total)


def weight_sparsity(model: nn.Module) -> dict[str, Any]:
    """Fraction of exactly-zero weights over two denominators, each named with its size.

    Returns:
        ``{"sparsity_all_weights": zeros / all parameters (embeddings, LayerNorms, biases, pooler and head
        included), "sparsity_pruned_layers": zeros / the weights of the encoder Linear layers that
        pruning targets (their biases, the pooler and the head excluded), "sparsity_denominators": {the two
        denominators in words, with their counts}}``. Fractions are rounded to 6 places.
    """
    all_frac, all_n = _zero_fraction(_all_weights(model))
    targets = _pruning_targets(model)
    pruned_frac, pruned_n = _zero_fraction(targets)
    return {
        "sparsity_all_weights": round(all_frac, 6),
        "sparsity_pruned_layers": round(pruned_frac, 6),
        "sparsity_denominators": {
            "all_weights": f"all {all_n:,} parameters (embeddings, LayerNorms, biases, pooler and head included)",
            "pruned_layers": f"the {pruned_n:,} weights of the {len(targets)} encoder Linear layers that pruning "
                             "targets (biases, pooler and head excluded)",
        },
    }


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensors(o)]
    return []


def weight_bytes(model: nn.Module) -> int:
    """Bytes the weights take in memory (quantised weights at 1 byte each)."""
    total = 0
    for m in model.modules():
        if isinstance(m, _QuantLinear):
            total += sum(t.numel() * t.element_size() for t in _tensors(m._packed_params._weight_bias()))
    total += sum(p.numel() * p.element_size() for p in model.parameters())
    return int(total)


def size_on_disk(model: Any) -> tuple[int, str]:
    """Bytes of the saved weights and how they were saved.

    int8 models go through ``torch.save(state_dict)`` (safetensors cannot hold packed quantised tensors);
    the others through ``save_pretrained`` (safetensors). Pruned zeros are stored dense, so pruning alone
    does not shrink the file.
    """
    if is_quantized(model):
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        return buf.tell(), "torch.save(state_dict) (packed int8 weights)"
    with tempfile.TemporaryDirectory(prefix="loupe-size-") as tmp:
        model.save_pretrained(tmp)
        return sum(p.stat().st_size for p in Path(tmp).glob("*.safetensors")), "safetensors"
