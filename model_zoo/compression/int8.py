"""``int8``: dynamic int8 quantisation of every ``nn.Linear`` (weights int8, activations quantised per batch).

Made with ``torch.ao.quantization.quantize_dynamic``: measured on MiniLM with 2 threads at 0.41x fp32 latency
at batch 1, where torchao's ``Int8DynamicActivationInt8WeightConfig`` took 1.62x. CPU only (the kernels are
FBGEMM/QNNPACK). The store holds the fp32 weights (safetensors cannot hold packed int8 tensors, and the store
holds no pickles) with a ``"quantization"`` card entry; :func:`apply_card_quantization`, registered in
``loading.FINISHERS``, quantises again on load, which is deterministic, so the reloaded model is the one measured.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_zoo import loading, store
from model_zoo.compression.base import (
    CompressionError,
    Made,
    Progress,
    UnsupportedVariantError,
    Variant,
    VariantKind,
    VariantSpec,
    register,
)
from model_zoo.errors import ModelLoadError
from model_zoo.handle import ModelHandle

INT8_BACKEND = "torch.ao.quantization.quantize_dynamic"
INT8_WHY = ("fastest measured on CPU: MiniLM, 2 threads, 0.41x fp32 latency at batch 1 and 0.37x at batch 32; "
            "torchao Int8DynamicActivationInt8WeightConfig took 1.62x and 0.67x")


def quantize_int8(model: nn.Module, granularity: str = "per-channel") -> nn.Module:
    """Dynamic int8 quantisation of every ``nn.Linear`` (weights int8, activations quantised per batch).

    Weights get one scale per output channel by default: on the RT test split per-tensor scales lost 1.7
    accuracy points of ``rt-sentiment-minilm``, per-channel 0.6, at the same speed.
    """
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    if granularity not in ("per-channel", "per-tensor"):
        raise UnsupportedVariantError(f"Unknown int8 weight granularity {granularity!r}.")
    qconfig = per_channel_dynamic_qconfig if granularity == "per-channel" else default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the torch.ao deprecation notice; torchao was slower here
        return torch.ao.quantization.quantize_dynamic(model.float().cpu(), {nn.Linear: qconfig}, dtype=torch.qint8)


def apply_card_quantization(model: nn.Module, card: dict[str, Any], device: torch.device) -> nn.Module:
    """Re-apply the quantisation a ``loupe.json`` card records (the store keeps fp32 safetensors).

    Raises:
        ModelLoadError: an unknown method, or int8 asked for on a GPU (``load`` raises only these).
    """
    method = (card.get("quantization") or {}).get("method")
    if not method:
        return model
    if method != "dynamic-int8":
        raise ModelLoadError(f"Unknown quantisation method {method!r} in the model card.")
    if device.type != "cpu":
        raise ModelLoadError("This model is dynamically quantised to int8, which runs on the CPU only; "
                             "load it with device='cpu'.")
    return quantize_int8(model, str(card["quantization"].get("weights", "per-channel")))


loading.FINISHERS.register("quantization", apply_card_quantization)


class DynamicInt8(VariantKind):
    name = "int8"
    title = "Dynamic int8 quantisation"
    changes = "Every nn.Linear gets int8 weights (one scale per output channel) and int8 activations (per batch)."
    naming = "int8"

    def why_not(self, device: torch.device) -> str | None:
        if device.type != "cpu":
            return "Dynamic int8 runs on the CPU only; load the model with device='cpu'."
        return None

    def transform(self, model: nn.Module, source: ModelHandle, spec: VariantSpec, progress: Progress) -> Made:
        return Made(quantize_int8(model), {
            "method": "dynamic int8 quantisation of nn.Linear", "backend": INT8_BACKEND, "backend_reason": INT8_WHY,
            "quantization": {"method": "dynamic-int8", "backend": INT8_BACKEND, "dtype": "qint8",
                             "weights": "per-channel", "modules": ["nn.Linear"]}})

    def save_weights(self, variant: Variant, folder: Path, source_folder: Path | None) -> None:
        """Copy the source's fp32 files (weights, tokenizer, config): ``load`` quantises them again."""
        src = source_folder or Path(str((variant.handle.info or {}).get("path") or ""))
        if not (src / "config.json").exists():
            raise CompressionError("Saving an int8 variant needs the source model's folder (its fp32 weights).")
        for f in src.iterdir():
            if f.is_file() and f.name != store.CARD:
                shutil.copy2(f, folder / f.name)

    def card_entries(self, variant: Variant) -> dict[str, Any]:
        return {"quantization": variant.card["quantization"]}

    def stored_as(self, variant: Variant) -> str | None:
        return "fp32 safetensors; load() re-applies dynamic int8 quantisation"


register(DynamicInt8())
