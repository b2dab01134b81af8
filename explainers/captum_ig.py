"""Integrated Gradients (Sundararajan et al., 2017) on the embedding layer, via Captum."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from explainers.base import BaseExplainer, registered
from model_zoo.handle import Encoded, ModelHandle


def baseline_ids(handle: ModelHandle, enc: Encoded, kind: str = "pad") -> torch.Tensor:
    """The input ids with every non-special token replaced by ``[PAD]`` (or ``[MASK]``/``[UNK]``)."""
    tok = handle.tokenizer
    token_id = {"pad": tok.pad_token_id, "mask": tok.mask_token_id, "unk": tok.unk_token_id}.get(kind)
    if token_id is None:
        token_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = enc.input_ids.clone()
    keep = torch.tensor(enc.special, device=ids.device).unsqueeze(0)
    return torch.where(keep, ids, torch.full_like(ids, int(token_id)))


@dataclass
class IGConfig:
    n_steps: int = field(default=50, metadata={"help": "Integration steps (more: smaller convergence delta)",
                                               "min": 4, "max": 500, "hosted_max": 100})
    internal_batch_size: int = field(default=25, metadata={"help": "Steps per model pass", "min": 1, "max": 500,
                                                           "hosted_max": 50})
    baseline: str = field(default="pad", metadata={"help": "Token that replaces each word in the baseline",
                                                   "choices": ["pad", "mask", "unk"]})
    rule: str = field(default="gausslegendre", metadata={"help": "Integration rule (Captum's approximation method)",
                                                         "choices": ["gausslegendre", "riemann_trapezoid"]})


@registered
class IntegratedGradients(BaseExplainer):
    name = "ig"
    title = "Integrated Gradients"
    Config = IGConfig
    signed = True
    needs_gradients = True
    needs_exclusive_model = True  # LayerIntegratedGradients hooks the embedding layer for the whole run
    description = ("Accumulates gradients along a straight path from a baseline (all words replaced by "
                   "[PAD]) to the input; scores sum to f(x) - f(baseline). The convergence delta says "
                   "how far from that the approximation is.")

    def _attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int,
                   config: Any) -> tuple[np.ndarray, dict[str, Any]]:
        from captum.attr import LayerIntegratedGradients

        lig = LayerIntegratedGradients(handle.forward_probs, handle.model.get_input_embeddings())
        base = baseline_ids(handle, enc, config.baseline)
        with torch.enable_grad():
            attr, delta = lig.attribute(
                enc.input_ids, baselines=base, target=target, additional_forward_args=(enc.attention_mask,),
                n_steps=config.n_steps, internal_batch_size=config.internal_batch_size,
                method=config.rule, return_convergence_delta=True,
            )
        scores = attr.sum(dim=-1)[0].detach().float().cpu().numpy()
        return scores, {"convergence_delta": float(delta.abs().max().item())}
