"""Integrated Gradients (Sundararajan et al., 2017) on the word embeddings.

What Captum's ``LayerIntegratedGradients`` on the word-embedding layer computes (the tests check it against
Captum to float precision), with the interpolated embeddings passed in as ``inputs_embeds`` instead of hooked
into the layer, and in fewer passes: one forward of the text and its baseline together gives the prediction
and both ends of the convergence delta (Captum runs the prediction, then each end apart), and the path points
go through in as few forward + backward passes as the memory budget allows (:func:`steps_per_pass`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from explainers.base import BaseExplainer, registered
from model_zoo.handle import Encoded, ModelHandle

# Path points x tokens in one forward + backward pass. Measured on the default model (2 CPU cores): a pass
# of 50 points of a 25-token sentence takes ~8% less time per point than two of 25; beyond ~2,000 tokens
# the gain is gone and the memory (about 0.2 MB a token for MiniLM) grows, so long texts use fewer points a
# pass.
TOKENS_PER_PASS = 2048


def baseline_ids(handle: ModelHandle, enc: Encoded, kind: str = "pad") -> torch.Tensor:
    """The input ids with every non-special token replaced by ``[PAD]`` (or ``[MASK]``/``[UNK]``)."""
    tok = handle.tokenizer
    token_id = {"pad": tok.pad_token_id, "mask": tok.mask_token_id, "unk": tok.unk_token_id}.get(kind)
    if token_id is None:
        token_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = enc.input_ids.clone()
    keep = torch.tensor(enc.special, device=ids.device).unsqueeze(0)
    return torch.where(keep, ids, torch.full_like(ids, int(token_id)))


def path(n_steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """``(alphas, weights)`` of Captum's approximation ``rule``: the points along the path and their weights.

    ``gausslegendre``: Gauss-Legendre nodes and weights mapped from [-1, 1] to [0, 1] (Captum's default);
    ``riemann_trapezoid``: ``n_steps`` evenly spaced points, both ends included, trapezoid weights.
    """
    if rule == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return 0.5 * (nodes + 1), 0.5 * weights
    if rule == "riemann_trapezoid":
        weights = np.full(n_steps, 1.0 / (n_steps - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, n_steps), weights
    raise ValueError(f"unknown integration rule {rule!r}")


def steps_per_pass(requested: int, seq_len: int) -> int:
    """Path points per forward + backward pass: ``requested``, fewer if that is over :data:`TOKENS_PER_PASS`."""
    return max(1, min(requested, TOKENS_PER_PASS // max(1, seq_len)))


@dataclass
class IGConfig:
    n_steps: int = field(default=50, metadata={"help": "Integration steps (the most used: see first_steps)",
                                               "min": 4, "max": 500, "hosted_max": 100})
    first_steps: int = field(default=24, metadata={
        "help": "Steps tried first; if the convergence delta is then within the tolerance, IG stops there "
                "(below 2: always n_steps)", "min": 0, "max": 500, "hosted_max": 100})
    tolerance: float = field(default=0.005, metadata={
        "help": "Convergence delta (probability) accepted after first_steps", "min": 0.0, "max": 1.0})
    internal_batch_size: int = field(default=50, metadata={
        "help": "Steps per model pass (at most: a long text gets fewer, to bound memory)", "min": 1, "max": 500,
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
    # No hooks any more (the path goes in as inputs_embeds), so shared use would do; kept exclusive until the
    # session scheduler's tests (tests/explainers/test_limits.py) are updated with it.
    needs_exclusive_model = True
    description = ("Accumulates gradients along a straight path from a baseline (all words replaced by "
                   "[PAD]) to the input; scores sum to f(x) - f(baseline). The convergence delta says "
                   "how far from that the approximation is.")

    def _predict_and_attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int | None,
                               config: Any) -> tuple[np.ndarray, int, np.ndarray, dict[str, Any]]:
        base = baseline_ids(handle, enc, config.baseline)
        with torch.inference_mode():  # the text and its baseline in one pass: the prediction and f(baseline)
            ends = handle.forward_probs(torch.cat([enc.input_ids, base]), enc.attention_mask.expand(2, -1))
        probs = ends[0].double().cpu().numpy()
        target = int(np.argmax(probs)) if target is None else target
        embed = handle.model.get_input_embeddings()
        with torch.no_grad():
            x, x0 = embed(enc.input_ids), embed(base)
        gap = (ends[0, target] - ends[1, target]).item()
        tries = [config.first_steps] if 2 <= config.first_steps < config.n_steps else []
        for n_steps in [*tries, config.n_steps]:
            scores = _integrate(handle, enc, x, x0, target, n_steps, config)
            delta = abs(scores.sum().item() - gap)
            if delta <= config.tolerance:
                break
        return probs, target, scores.cpu().numpy(), {"convergence_delta": delta, "n_steps": n_steps}


def _integrate(handle: ModelHandle, enc: Encoded, x: torch.Tensor, x0: torch.Tensor, target: int, n_steps: int,
               config: Any) -> torch.Tensor:
    """IG scores per token: (x - x0) times the weighted sum of d p_target / d e along the path, summed over
    the embedding dimensions."""
    diff = x - x0
    alphas, weights = path(n_steps, config.rule)
    total = torch.zeros_like(x)
    chunk = steps_per_pass(config.internal_batch_size, enc.input_ids.shape[1])
    for start in range(0, n_steps, chunk):
        a = torch.as_tensor(alphas[start:start + chunk], dtype=x.dtype, device=x.device).view(-1, 1, 1)
        w = torch.as_tensor(weights[start:start + chunk], dtype=x.dtype, device=x.device).view(-1, 1, 1)
        points = (x0 + a * diff).requires_grad_()
        with torch.enable_grad():
            p = handle.forward_probs(None, enc.attention_mask.expand(len(a), -1),  # type: ignore[arg-type]
                                     inputs_embeds=points)
            (grad,) = torch.autograd.grad(p[:, target].sum(), points)
        total += (grad * w).sum(dim=0, keepdim=True)
    return (diff * total).sum(dim=-1)[0].float()
