"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2020).

``peft`` 0.21 has no bottleneck adapter and the ``adapters`` library is not installed, so
:class:`BottleneckAdapter` is Loupe's own: a residual down-projection, non-linearity and up-projection applied
by a forward hook to the output of each layer's feed-forward output projection (and, optionally, the attention
output projection), before the residual sum and LayerNorm. The up-projection starts at zero, so training
starts from the base model exactly. Saved as the trained weights (``loupe_adapter.safetensors``) plus a
reference to the base.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_zoo.errors import LoupeError, ModelLoadError
from model_zoo.methods.base import INCLUDE_POOLER_HELP, FinetuneMethod, register, train_head
from model_zoo.spec import setting

_FFN_OUT = (r"layer\.\d+\.output\.dense$", r"layer\.\d+\.ffn\.lin2$")  # BERT/RoBERTa/ELECTRA, DistilBERT
_ATTN_OUT = (r"layer\.\d+\.attention\.output\.dense$", r"layer\.\d+\.attention\.out_lin$")
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@dataclass
class AdapterConfig:
    """Bottleneck adapters (see the module docstring)."""

    bottleneck: int = setting(64, "Width of the adapter's bottleneck", min=1, max=1024)
    activation: str = setting("relu", "Non-linearity inside the adapter", choices=list(_ACTIVATIONS))
    placement: str = setting("ffn", "ffn: one adapter per layer, after the feed-forward block (Pfeiffer); both: also "
                                    "after attention (Houlsby)", choices=["ffn", "both"])
    train_layer_norm: bool = setting(True, "Also train the LayerNorm weights")
    include_pooler: bool = setting(False, INCLUDE_POOLER_HELP)


class BottleneckAdapter(nn.Module):
    """``x + up(act(down(x)))``; ``up`` starts at zero, so a new adapter is the identity."""

    def __init__(self, hidden: int, bottleneck: int, activation: str = "relu") -> None:
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.up = nn.Linear(bottleneck, hidden)
        self.act = _ACTIVATIONS[activation]()
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


def _targets(model: nn.Module, placement: str) -> list[tuple[str, nn.Linear]]:
    patterns = _FFN_OUT + (_ATTN_OUT if placement == "both" else ())
    found = [(n, m) for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and any(re.search(p, n) for p in patterns)]
    if not found:
        raise LoupeError(f"Bottleneck adapters do not know where to go in {type(model).__name__} "
                         "(no BERT-style `layer.N.output.dense` or DistilBERT-style `ffn.lin2` layers).")
    return found


def add_bottleneck_adapters(model: nn.Module, config: AdapterConfig) -> nn.ModuleDict:
    """Insert one :class:`BottleneckAdapter` after each target projection (forward hooks).

    The adapters live in ``model.loupe_adapters`` so they move with the model, reach the optimizer and
    appear in its ``state_dict`` (Trainer checkpoints and resumes them with the rest).
    """
    if hasattr(model, "loupe_adapters"):
        raise LoupeError("This model already has bottleneck adapters.")
    ref = next(model.parameters())
    adapters = nn.ModuleDict()
    for name, linear in _targets(model, config.placement):
        adapter = BottleneckAdapter(linear.out_features, config.bottleneck, config.activation)
        adapters[name.replace(".", "_")] = adapter.to(device=ref.device, dtype=ref.dtype)
        linear.register_forward_hook(lambda _m, _i, out, a=adapter: a(out))
    model.add_module("loupe_adapters", adapters)
    return adapters


@register
class BottleneckAdapters(FinetuneMethod):
    name = "adapters"
    title = "Bottleneck adapters"
    summary = "Small residual bottleneck layers inside each block train."
    trains = ("Small residual bottleneck layers after each block's feed-forward (and optionally attention) "
              "output, the LayerNorms, the head and (by default) the pooler.")
    Config = AdapterConfig
    recipe = {"learning_rate": 2e-3, "epochs": 3.0}
    weights_file = "loupe_adapter.safetensors"

    def prepare(self, model: nn.Module, cfg: AdapterConfig) -> nn.Module:
        model.requires_grad_(False)
        add_bottleneck_adapters(model, cfg)
        if cfg.train_layer_norm:
            for module in model.modules():
                if isinstance(module, nn.LayerNorm):
                    module.requires_grad_(True)
        train_head(model, cfg.include_pooler)
        return model

    def saves_adapter(self, cfg: AdapterConfig) -> bool:
        return True

    def save(self, model: nn.Module, folder: Path, cfg: AdapterConfig) -> dict[str, Any]:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        state = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(state, str(folder / self.weights_file))
        return {}

    def attach(self, model: nn.Module, folder: Path, cfg: AdapterConfig) -> tuple[nn.Module, set[str]]:
        from safetensors.torch import load_file

        add_bottleneck_adapters(model, cfg)
        state = load_file(str(folder / self.weights_file))
        result = model.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise ModelLoadError(f"{folder.name}: adapter weights do not fit the base: {result.unexpected_keys[:4]}")
        return model, set(state)
