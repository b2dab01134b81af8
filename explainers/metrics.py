"""How far to trust an explanation: faithfulness (ERASER), agreement between explainers, drift between models.

Faithfulness perturbs the explained text at the word level (``Attribution.words``): removed words are deleted
from the text, ERASER style, and the kept words are joined by single spaces (:func:`explainers.base.compose_words`,
the same perturbation LIME samples from). Words are ranked by :meth:`Attribution.top_words`' one rule: highest
score first, so for signed scores the words pushing hardest toward the target class.

- comprehensiveness(k) = p(x) - p(x without its top-k words): higher is better;
- sufficiency(k) = p(x) - p(only the top-k words): lower is better;
- AOPC: their mean over the distinct k of the bins. A bin is a word count (an int: top 1, 2, 3, 5 words) or a
  fraction of the words (a float: top 20%, 50%, rounded up); k is capped at the sentence's words and repeats
  are dropped, so a 4-word sentence uses k = 1, 2, 3, 4 and a 30-word one k = 1, 2, 3, 5, 6, 15. The ks used
  are stored with each result (``Faithfulness.ks``). Percent-only bins (1/5/10%) all land on the top word of
  a short review, which says nothing about the second and third;
- deletion / insertion curves: p(target) as the top words are removed from the text / added to an empty
  one, at fixed fractions 0, 1/steps, ..., 1 of the words, and their area (deletion lower, insertion higher).

Every text that one call needs (for one or several attributions, and a seeded random-ranking baseline) is
built first and sent to ``handle.predict_proba`` once, duplicates removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy import stats

from explainers.base import Attribution, ExplainerError, compose_words, rank_order
from model_zoo.handle import ModelHandle

# Word counts (int) and fractions of the words (float); see the module docstring.
BINS: tuple[int | float, ...] = (1, 2, 3, 5, 0.20, 0.50)
STEPS = 10
RANDOM_SEEDS: tuple[int, ...] = (0, 1, 2)


class Predictor(Protocol):
    """What the metrics need from a model: a ``ModelHandle`` or any object with a batched ``predict_proba``."""

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Faithfulness:
    """Faithfulness of one attribution (or, with ``method="random"``, of a random word ranking).

    ``comprehensiveness``/``sufficiency`` are per distinct word count in ``ks`` (made from ``bins``);
    ``deletion``/``insertion`` are p(target) at ``fractions`` of the words. ``passes``/``seconds`` are those
    of the one ``predict_proba`` call that computed it (shared when several attributions were scored
    together); ``n_texts`` is how many distinct texts this attribution needed.
    """

    method: str
    target: int
    n_words: int
    full_prob: float
    bins: tuple[int | float, ...]
    ks: tuple[int, ...]
    comprehensiveness: tuple[float, ...]
    sufficiency: tuple[float, ...]
    comp_aopc: float
    suff_aopc: float
    fractions: tuple[float, ...]
    deletion: tuple[float, ...]
    insertion: tuple[float, ...]
    deletion_auc: float
    insertion_auc: float
    n_texts: int = 0
    passes: int = 0
    seconds: float = 0.0
    baseline: Faithfulness | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the random baseline nested under ``baseline``)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Agreement:
    """Agreement of two word-score vectors; a correlation is None when undefined (a constant vector)."""

    spearman: float | None
    kendall: float | None
    top_k_overlap: float
    k: int
    n_words: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Drift:
    """How one explainer's attribution of a text moved between two models (original -> variant).

    ``delta_*`` are variant minus original; the faithfulness deltas are None unless both were given.
    """

    spearman: float | None
    kendall: float | None
    top_k_overlap: float
    k: int
    prediction_flipped: bool
    same_target: bool
    delta_prob: float
    delta_comp_aopc: float | None = None
    delta_suff_aopc: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- building the perturbed texts -------------------------------------------------------------------

def bin_sizes(n_words: int, bins: Sequence[int | float] = BINS) -> list[int]:
    """The distinct top-k sizes the bins give for a text of ``n_words`` words, ascending.

    An int bin is a word count, a float a fraction rounded up; each k is at least 1 and at most ``n_words``.
    """
    ks = {min(n_words, max(1, int(b) if _is_count(b) else math.ceil(b * n_words - 1e-9))) for b in bins}
    return sorted(ks)


def _is_count(b: int | float) -> bool:
    return isinstance(b, (int, np.integer)) and not isinstance(b, bool)


def check_bins(bins: Sequence[int | float]) -> None:
    """Refuse bins that are neither word counts >= 1 nor fractions in (0, 1]."""
    if not bins or any(isinstance(b, bool) or (b < 1 if _is_count(b) else not 0 < b <= 1) for b in bins):
        raise ExplainerError(f"Top-k bins must be word counts >= 1 or fractions in (0, 1]; got {list(bins)}.")


def curve_sizes(n_words: int, steps: int = STEPS) -> list[int]:
    """Words removed (deletion) or kept (insertion) at fractions ``0, 1/steps, ..., 1`` (rounded half up)."""
    return [int(math.floor(i / steps * n_words + 0.5)) for i in range(steps + 1)]


ranking = rank_order  # word indices by score, highest first; ties keep text order


def describe_bins(bins: Sequence[int | float] = BINS) -> str:
    """``"top 1, 2, 3, 5 words, 20%, 50%"``: the bins in words, for captions and tables."""
    counts = [str(int(b)) for b in bins if _is_count(b)]
    fracs = [f"{b:.0%}" for b in bins if not _is_count(b)]
    return "top " + ", ".join(([", ".join(counts) + " words"] if counts else []) + fracs)


def _plan(words: Sequence[str], order: np.ndarray, bins: Sequence[int | float], steps: int) -> dict[str, list[str]]:
    """Every text that one word ranking needs, by metric."""
    n = len(words)

    def top(k: int) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        mask[order[:k]] = True
        return mask

    ks = bin_sizes(n, bins)
    cs = curve_sizes(n, steps)
    return {
        "full": [compose_words(words, np.ones(n, dtype=bool))],
        "comp": [compose_words(words, ~top(k)) for k in ks],
        "suff": [compose_words(words, top(k)) for k in ks],
        "deletion": [compose_words(words, ~top(k)) for k in cs],
        "insertion": [compose_words(words, top(k)) for k in cs],
    }


def _score(plan: dict[str, list[str]], prob: dict[str, float], method: str, target: int, n_words: int,
           bins: Sequence[int | float], steps: int) -> Faithfulness:
    full = prob[plan["full"][0]]
    comp = [full - prob[t] for t in plan["comp"]]
    suff = [full - prob[t] for t in plan["suff"]]
    deletion = [prob[t] for t in plan["deletion"]]
    insertion = [prob[t] for t in plan["insertion"]]
    fractions = [i / steps for i in range(steps + 1)]
    return Faithfulness(
        method=method, target=target, n_words=n_words, full_prob=full, bins=tuple(bins),
        ks=tuple(bin_sizes(n_words, bins)), comprehensiveness=tuple(comp), sufficiency=tuple(suff),
        comp_aopc=float(np.mean(comp)), suff_aopc=float(np.mean(suff)), fractions=tuple(fractions),
        deletion=tuple(deletion), insertion=tuple(insertion),
        deletion_auc=float(np.trapezoid(deletion, fractions)), insertion_auc=float(np.trapezoid(insertion, fractions)),
        n_texts=len(_texts([plan])), params={"steps": steps},
    )


def _texts(plans: Sequence[dict[str, list[str]]]) -> set[str]:
    return {t for p in plans for part in p.values() for t in part}


def _mean_faithfulness(runs: list[Faithfulness], seeds: Sequence[int]) -> Faithfulness:
    """Average the per-seed random baselines, bin by bin and step by step."""
    def avg(name: str) -> tuple[float, ...]:
        return tuple(float(v) for v in np.mean([getattr(r, name) for r in runs], axis=0))

    def avg1(name: str) -> float:
        return float(np.mean([getattr(r, name) for r in runs]))

    return dataclasses.replace(
        runs[0], comprehensiveness=avg("comprehensiveness"), sufficiency=avg("sufficiency"),
        comp_aopc=avg1("comp_aopc"), suff_aopc=avg1("suff_aopc"), deletion=avg("deletion"),
        insertion=avg("insertion"), deletion_auc=avg1("deletion_auc"), insertion_auc=avg1("insertion_auc"),
        params={**runs[0].params, "seeds": list(seeds)},
    )


# --- faithfulness ----------------------------------------------------------------------------------

def faithfulness_many(handle: Predictor, attributions: Sequence[Attribution], *, bins: Sequence[int | float] = BINS,
                      steps: int = STEPS, random_seeds: Sequence[int] = RANDOM_SEEDS) -> list[Faithfulness]:
    """Faithfulness of several attributions with ONE ``handle.predict_proba`` call for all of them.

    Args:
        handle: the model that was explained (a ``ModelHandle`` or anything with ``predict_proba``).
        attributions: explanations, of the same text or not; the random baseline of a text is shared.
        bins: top-k word counts (int) and fractions (float) for comprehensiveness/sufficiency
            (default top 1, 2, 3, 5 words, 20% and 50%).
        steps: deletion/insertion curve steps (``steps + 1`` points from 0 to all words).
        random_seeds: seeds of the random-ranking baseline, averaged (empty: no baseline).
    Returns:
        One :class:`Faithfulness` per attribution, in order, each with its random ``baseline``.
    Raises:
        ExplainerError: an attribution has no words, or a bin is neither a count >= 1 nor a fraction in (0, 1].
    """
    check_bins(bins)
    if steps < 1:
        raise ExplainerError("The deletion/insertion curves need at least one step.")
    plans: list[tuple[dict[str, list[str]], list[dict[str, list[str]]], int]] = []
    for a in attributions:
        if not a.words:
            raise ExplainerError(f"The {a.method} attribution has no words to remove.")
        words = [w.text for w in a.words]
        own = _plan(words, ranking(a.word_scores()), bins, steps)
        rand = [_plan(words, np.random.default_rng(s).permutation(len(words)), bins, steps) for s in random_seeds]
        plans.append((own, rand, len(words)))
    unique = sorted(_texts([p for own, rand, _ in plans for p in (own, *rand)]))
    start = time.perf_counter()
    meter = handle.meter() if isinstance(handle, ModelHandle) else contextlib.nullcontext(None)
    with meter as counted:
        probs = np.asarray(handle.predict_proba(unique), dtype=float)
    seconds = round(time.perf_counter() - start, 4)
    # The passes made (texts the request already scored cost none); a Predictor that is not a ModelHandle (a
    # test double) is counted as one pass per batch.
    n_passes = counted[0] if counted is not None else math.ceil(
        len(unique) / max(1, int(getattr(handle, "batch_size", 0) or len(unique))))
    out = []
    index = {t: i for i, t in enumerate(unique)}
    for a, (own, rand, n_words) in zip(attributions, plans):
        prob = {t: float(probs[index[t], a.target]) for t in _texts([own, *rand])}
        baseline = None
        if rand:
            runs = [_score(p, prob, "random", a.target, n_words, bins, steps) for p in rand]
            baseline = dataclasses.replace(_mean_faithfulness(runs, random_seeds), n_texts=len(_texts(rand)),
                                           passes=n_passes, seconds=seconds)
        res = _score(own, prob, a.method, a.target, n_words, bins, steps)
        out.append(dataclasses.replace(res, baseline=baseline, passes=n_passes, seconds=seconds))
    return out


def faithfulness(handle: Predictor, attribution: Attribution, *, bins: Sequence[int | float] = BINS, steps: int = STEPS,
                 random_seeds: Sequence[int] = RANDOM_SEEDS) -> Faithfulness:
    """Faithfulness of one attribution in one ``predict_proba`` call (see :func:`faithfulness_many`)."""
    return faithfulness_many(handle, [attribution], bins=bins, steps=steps, random_seeds=random_seeds)[0]


# --- agreement and drift -------------------------------------------------------------------------

def _corr(fn: Any, x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) >= 1 and np.array_equal(x, y):
        return 1.0  # the same ranking agrees perfectly, even when it is constant
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(fn(x, y)[0])
    return None if math.isnan(value) else value


def default_k(n_words: int) -> int:
    """Top-k size for overlap: the top 20% of words, at least one."""
    return min(n_words, max(1, math.ceil(0.2 * n_words - 1e-9)))


def rank_agreement(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, k: int | None = None) -> Agreement:
    """Spearman and Kendall correlation and top-k overlap of two aligned score vectors.

    Args:
        x, y: scores of the same words, in the same order (higher = more important).
        k: top-k size (default :func:`default_k`); capped at the number of words.
    Returns:
        :class:`Agreement`; a correlation is None when a vector is constant (unless both are equal: 1.0).
    """
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"Score vectors differ in shape: {xa.shape} vs {ya.shape}.")
    n = len(xa)
    if n == 0:
        return Agreement(None, None, 0.0, 0, 0)
    k = default_k(n) if k is None else max(1, min(int(k), n))
    overlap = len(set(ranking(xa)[:k].tolist()) & set(ranking(ya)[:k].tolist())) / k
    return Agreement(_corr(stats.spearmanr, xa, ya), _corr(stats.kendalltau, xa, ya), overlap, k, n)


def _aligned(a: Attribution, b: Attribution) -> tuple[np.ndarray, np.ndarray]:
    if a.text != b.text:
        raise ValueError("Agreement needs two attributions of the same text.")
    sb = {(w.start, w.end): w.score for w in b.words}
    common = [w for w in a.words if (w.start, w.end) in sb]
    return np.array([w.score for w in common], dtype=float), np.array([sb[(w.start, w.end)] for w in common])


def agreement(a: Attribution, b: Attribution, k: int | None = None) -> Agreement:
    """Agreement of two attributions of the same text, over the words both have.

    Each side is ranked as :meth:`Attribution.top_words` ranks it (signed scores as they are, so a word
    pushing hard *against* the target is not a top word), so the overlap is about the words each
    explainer shows first.
    """
    return rank_agreement(*_aligned(a, b), k=k)


def drift(a_orig: Attribution, a_variant: Attribution, faith_orig: Faithfulness | None = None,
          faith_variant: Faithfulness | None = None, k: int | None = None) -> Drift:
    """How an explanation moved from one model to another (e.g. fp32 -> int8, base -> fine-tuned).

    Args:
        a_orig, a_variant: the same explainer's attributions of the same text under the two models.
        faith_orig, faith_variant: their faithfulness, if computed, for the change in AOPC.
        k: top-k size for the overlap (default :func:`default_k`).
    Returns:
        :class:`Drift`: rank correlations, top-k overlap, whether the prediction flipped, and deltas.
    """
    agree = agreement(a_orig, a_variant, k=k)
    both = faith_orig is not None and faith_variant is not None
    return Drift(
        spearman=agree.spearman, kendall=agree.kendall, top_k_overlap=agree.top_k_overlap, k=agree.k,
        prediction_flipped=a_orig.predicted != a_variant.predicted,
        same_target=a_orig.target == a_variant.target,
        delta_prob=float(a_variant.probs[a_variant.target] - a_orig.probs[a_orig.target]),
        delta_comp_aopc=faith_variant.comp_aopc - faith_orig.comp_aopc if both else None,  # type: ignore[union-attr]
        delta_suff_aopc=faith_variant.suff_aopc - faith_orig.suff_aopc if both else None,  # type: ignore[union-attr]
    )


__all__ = [
    "BINS",
    "RANDOM_SEEDS",
    "STEPS",
    "Agreement",
    "Drift",
    "Faithfulness",
    "Predictor",
    "agreement",
    "bin_sizes",
    "check_bins",
    "curve_sizes",
    "default_k",
    "describe_bins",
    "drift",
    "faithfulness",
    "faithfulness_many",
    "rank_agreement",
    "ranking",
]
