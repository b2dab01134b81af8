"""``fp16`` / ``bf16``: the model in half precision. GPU only; on a CPU they are not offered and making one
raises :class:`~model_zoo.compression.base.UnsupportedVariantError`. Saved as fp32 safetensors; the card says
which dtype to load it with."""

from __future__ import annotations

import torch
from torch import nn

from model_zoo.compression.base import (
    VARIANTS,
    Made,
    Progress,
    Variant,
    VariantKind,
    VariantSpec,
    register,
)
from model_zoo.handle import ModelHandle


class HalfPrecision(VariantKind):
    """Every weight and activation in a 16-bit float type (``torch.float16`` or ``torch.bfloat16``)."""

    changes = "Weights and activations in 16-bit floats: half the memory, faster on tensor cores."

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        self.name = name  # one class, two registered kinds
        self.naming = name
        self.title = f"{name} (GPU)"
        self.dtype = dtype

    def why_not(self, device: torch.device) -> str | None:
        if device.type != "cuda":
            here = [k for k, kind in VARIANTS.items()  # half precision itself is not available off a GPU
                    if kind.listed and not isinstance(kind, HalfPrecision) and kind.why_not(device) is None]
            return (f"{self.name} runs only on a GPU; this model is on the {device.type}. "
                    f"Variants available here: {', '.join(here)}.")
        if self.dtype == torch.bfloat16 and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
            return "This GPU does not support bf16."
        return None

    def transform(self, model: nn.Module, source: ModelHandle, spec: VariantSpec, progress: Progress) -> Made:
        return Made(model.to(dtype=self.dtype), {"method": "half precision", "backend": f"torch .to({self.dtype})"},
                    dtype=self.dtype)

    def stored_as(self, variant: Variant) -> str | None:
        return f"fp32 safetensors; load it with dtype='{self.name}'"


register(HalfPrecision("fp16", torch.float16))
register(HalfPrecision("bf16", torch.bfloat16))
