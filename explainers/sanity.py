"""Sanity checks for explanations (Adebayo et al., 2018, "Sanity Checks for Saliency Maps").

The model-parameter randomisation test, cascading from the top: re-initialise the classifier head, then
the top encoder layer, the next one, ... down to the embeddings. After each step the same explainer
explains the same text for the same class with the same settings, and the word scores are compared with
the original explanation by Spearman rank correlation. An explainer that explains the *model* must change
once the model's learned weights are gone (correlation near 0); one whose explanation barely changes is
showing something about the input (word frequency, position, token length), not about the decision.

As in the paper, the headline is the rank correlation of score *magnitudes* (a map that only flips sign
still highlights the same words); the signed correlation is kept beside it.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from explainers.base import Attribution, ExplainerError, get
from explainers.captum_gradients import embedding_layer
from explainers.metrics import rank_agreement
from model_zoo.handle import ModelHandle

# Above this rank correlation of score magnitudes after the whole model is randomised, the explanation
# "barely changed". A negative correlation is a changed explanation too.
THRESHOLD = 0.5
_INIT_STD = 0.02
_CACHE_SIZE = 4


@dataclass(frozen=True)
class SanityResult:
    """How one explanation changed as the model was randomised, step by step (cumulative, top down).

    ``spearman_abs[i]``/``spearman[i]`` compare the original scores with those after ``steps[i]``
    (None when a side is constant). ``final`` is the magnitude correlation after the last step taken.
    """

    method: str
    target: int
    steps: tuple[str, ...]
    spearman_abs: tuple[float | None, ...]
    spearman: tuple[float | None, ...]
    passes: int
    seconds: float
    threshold: float = THRESHOLD

    @property
    def final(self) -> float | None:
        return self.spearman_abs[-1] if self.spearman_abs else None

    @property
    def passed(self) -> bool | None:
        """True when the explanation changed (rho <= threshold) once the model was randomised."""
        return None if self.final is None else self.final <= self.threshold

    def sentence(self) -> str:
        """One plain sentence for a person."""
        if self.final is None:
            return "The randomised model's explanation is constant, so it cannot be compared."
        where = self.steps[-1]
        if self.passed:
            return (f"Depends on the model: with the weights randomised ({where}) its word ranking correlates "
                    f"only ρ = {self.final:.2f} with this one.")
        return (f"Barely depends on the model: with the weights randomised ({where}) it still ranks the words "
                f"alike (ρ = {self.final:.2f}), so it reflects the text more than the decision.")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "final": self.final, "passed": self.passed}


def stages(model: Any) -> list[tuple[str, list[torch.nn.Module]]]:
    """The cascade, top down: classifier head (and pooler), each encoder layer from the top, embeddings."""
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    base = getattr(hf, getattr(hf, "base_model_prefix", ""), None)
    if base is None:
        raise ExplainerError("The sanity check needs a transformer with a separate classifier head.")
    head = [m for m in hf.children() if m is not base]
    if getattr(base, "pooler", None) is not None:
        head.append(base.pooler)
    n_layers = int(getattr(hf.config, "num_hidden_layers", 0) or getattr(hf.config, "n_layers", 0))
    layers = next((m for m in base.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers), None)
    out = [("classifier head", head)]
    if layers is not None:
        out += [(f"layer {i + 1} of {n_layers}", [layers[i]]) for i in reversed(range(n_layers))]
    emb = embedding_layer(base)
    if emb is not None:
        out.append(("embeddings", [emb]))
    return out


def step_names(handle: ModelHandle) -> list[str]:
    """Cumulative names of the cascade steps: ``classifier head``, ``head + top 1 layer``, ..., ``all weights``."""
    n = len(stages(handle.model))
    return ["classifier head", *(f"head + top {i} layer{'s' if i > 1 else ''}" for i in range(1, n - 1)),
            "all weights"]


@torch.no_grad()
def _reinit(module: torch.nn.Module, gen: torch.Generator) -> None:
    def fill(p: torch.Tensor, value: torch.Tensor) -> None:
        p.copy_(value.to(device=p.device, dtype=p.dtype))

    for m in module.modules():
        bias = getattr(m, "bias", None)
        if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
            fill(m.weight, torch.randn(m.weight.shape, generator=gen) * _INIT_STD)
        elif isinstance(m, torch.nn.LayerNorm) and m.weight is not None:
            fill(m.weight, torch.ones(m.weight.shape))
        else:
            continue
        if isinstance(bias, torch.Tensor):
            fill(bias, torch.zeros(bias.shape))


_cache: OrderedDict[tuple[int, int, int], tuple[weakref.ref[ModelHandle], ModelHandle]] = OrderedDict()
_cache_lock = threading.Lock()


def randomised(handle: ModelHandle, depth: int, seed: int = 0) -> ModelHandle:
    """A copy of ``handle`` with the first ``depth`` cascade stages re-initialised (cached, a few at a time).

    Raises:
        ExplainerError: the model has int8 layers (their packed weights cannot be re-drawn) or no head.
    """
    if handle.is_quantized:
        raise ExplainerError("The sanity check re-draws float weights; it does not run on int8 models.")
    n = len(stages(handle.model))
    if not 1 <= depth <= n:
        raise ExplainerError(f"Randomisation depth must be 1..{n}; got {depth}.")
    key = (id(handle), depth, seed)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0]() is handle:
            _cache.move_to_end(key)
            return hit[1]
    with handle.lock:  # no explainer's hooks may be on the model while it is copied
        model = copy.deepcopy(handle.model)
    gen = torch.Generator().manual_seed(seed)
    for _, modules in stages(model)[:depth]:
        for module in modules:
            _reinit(module, gen)
    model.eval()
    info = {**handle.info, "id": f"{handle.id}#randomised-{depth}", "randomised": step_names(handle)[depth - 1]}
    copy_handle = dataclasses.replace(handle, model=model, info=info, total_passes=0, _lock=threading.Lock(),
                                      lock=threading.RLock())
    with _cache_lock:
        _cache[key] = (weakref.ref(handle), copy_handle)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return copy_handle


def randomisation_check(handle: ModelHandle, original: Attribution, config: Any = None,
                        depths: Sequence[int] | None = None, seed: int = 0) -> SanityResult:
    """Cascading model-parameter randomisation test of one explanation.

    Args:
        handle: the model that ``original`` explains.
        original: the explanation to check; its method, text and target are reused.
        config: the explainer's Config (default: the settings ``original`` was made with, its ``params``).
        depths: which cumulative steps to take (1 = head only ... ``len(stages)`` = every weight);
            default: only the last, every weight randomised.
        seed: seed of the re-drawn weights.
    Returns:
        :class:`SanityResult`, one correlation per depth.
    """
    explainer = get(original.method)
    config = config if config is not None else explainer.Config(**original.params)
    names = step_names(handle)
    depths = [len(names)] if depths is None else sorted(set(int(d) for d in depths))
    rho_abs, rho, passes, seconds = [], [], 0, 0.0
    base = np.array([w.score for w in original.words])
    for depth in depths:
        other = explainer.explain(randomised(handle, depth, seed), original.text, original.target, config)
        passes, seconds = passes + other.cost.passes, seconds + other.cost.seconds
        scores = np.array([w.score for w in other.words])
        rho_abs.append(rank_agreement(np.abs(base), np.abs(scores)).spearman)
        rho.append(rank_agreement(base, scores).spearman)
    return SanityResult(original.method, original.target, tuple(names[d - 1] for d in depths), tuple(rho_abs),
                        tuple(rho), passes, round(seconds, 4))


__all__ = ["THRESHOLD", "SanityResult", "randomisation_check", "randomised", "stages", "step_names"]
