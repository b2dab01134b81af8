"""Explanation drift on the first task of a continual run: does the model still decide for the same reasons?

On N test sentences of the first task, the model that learned it is explained once (the reference), for the
class it predicts among the first task's labels; after every later step of every strategy the model is
explained again *for the same class*, and each explanation is compared with its reference by the Compare
page's measures (:func:`explainers.metrics.drift`: Spearman and Kendall rank correlation of word scores, top-k
overlap, whether the prediction moved). The words whose importance changed most are ranked over all N
sentences: a word's importance is its score divided by the largest absolute score of that explanation (so a
model that became less confident does not make every word "change"), and its change is the mean of (after -
before) over its occurrences (words compared lower-cased, without surrounding punctuation).
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from explainers import metrics
from explainers.base import Attribution, get, make_config
from model_zoo import spec
from model_zoo.continual import Task
from model_zoo.handle import ModelHandle
from model_zoo.spec import setting

SCOPE = "continual_drift"  # scope of the settings in messages and LOUPE_LIMITS ("continual_drift.n_sentences")


@dataclass
class DriftConfig:
    """How the first task's explanations are compared (one spec for the page, the job JSON and validation)."""

    explainer: str = setting("ig", "Explainer of the first task's sentences (default: Integrated Gradients with "
                                   "few steps, cheap and faithful)")
    n_sentences: int = setting(20, "First-task test sentences explained after each step", min=1, max=500,
                               hosted_max=50)
    ig_steps: int = setting(16, "Integration steps when the explainer is IG", min=4, max=200, hosted_max=50)
    top_words: int = setting(10, "Words listed whose importance changed most", min=1, max=50)
    n_show: int = setting(5, "Sentences kept with their explanations for the side-by-side viewer", min=0, max=50)

    def __post_init__(self) -> None:
        get(self.explainer)  # an unknown explainer -> ExplainerError naming the known ones


def build_drift_config(values: Any = None) -> DriftConfig:
    """A checked :class:`DriftConfig` from JSON (``ConfigError`` for bad values, ``ExplainerError`` for an
    unknown explainer)."""
    config: DriftConfig = spec.build(DriftConfig, values, SCOPE)
    return config


def _word(text: str) -> str:
    return text.strip(string.punctuation + "“”‘’—–").lower()


def _normalised(a: Attribution) -> np.ndarray:
    scores = a.word_scores()
    top = float(np.abs(scores).max()) if len(scores) else 0.0
    return scores / top if top > 0 else scores


def changed_words(before: Sequence[Attribution], after: Sequence[Attribution], top: int = 10) -> list[dict[str, Any]]:
    """The ``top`` words whose normalised importance changed most between two explanations of the same texts.

    Returns ``[{"word", "before", "after", "change", "count"}]``, largest absolute mean change first (ties: more
    occurrences first, then alphabetical); ``before``/``after`` are the mean normalised importances.
    """
    sums: dict[str, list[float]] = {}
    for a, b in zip(before, after):
        if a.text != b.text:
            raise ValueError("Drift compares explanations of the same texts.")
        scores_b = dict(zip(((w.start, w.end) for w in b.words), _normalised(b)))
        for w, s in zip(a.words, _normalised(a)):
            key = _word(w.text)
            if not key or (w.start, w.end) not in scores_b:
                continue
            acc = sums.setdefault(key, [0.0, 0.0, 0.0])
            acc[0] += float(s)
            acc[1] += float(scores_b[(w.start, w.end)])
            acc[2] += 1
    rows: list[dict[str, Any]] = [
        {"word": k, "before": v[0] / v[2], "after": v[1] / v[2], "change": (v[1] - v[0]) / v[2], "count": int(v[2])}
        for k, v in sums.items()]
    rows.sort(key=lambda r: (-abs(r["change"]), -r["count"], r["word"]))
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows[:top]]


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return round(float(np.mean(kept)), 4) if kept else None


def summarise(before: Sequence[Attribution], after: Sequence[Attribution], top: int = 10) -> dict[str, Any]:
    """Mean drift of ``after`` against ``before`` (same texts, same targets) and the words that changed most.

    A model compared with itself scores Spearman 1.0, top-k overlap 1.0 and no changed word."""
    drifts = [metrics.drift(a, b) for a, b in zip(before, after)]
    return {"spearman": _mean([d.spearman for d in drifts]), "kendall": _mean([d.kendall for d in drifts]),
            "top_k_overlap": _mean([d.top_k_overlap for d in drifts]),
            "flipped": _mean([float(d.prediction_flipped) for d in drifts]),
            "delta_prob": _mean([d.delta_prob for d in drifts]), "n": len(drifts),
            "per_sentence": [{"spearman": d.spearman, "top_k_overlap": d.top_k_overlap,
                              "flipped": d.prediction_flipped} for d in drifts],
            "changed_words": [w for w in changed_words(before, after, top) if w["change"] != 0.0]}


class DriftObserver:
    """The :class:`model_zoo.continual.Observer` that explains the first task (see the module docstring)."""

    def __init__(self, config: DriftConfig) -> None:
        self.config = config
        self.texts: list[str] = []
        self.targets: list[str] = []
        self.before: list[Attribution] = []

    def _explain(self, handle: ModelHandle) -> list[Attribution]:
        explainer = get(self.config.explainer)
        if not explainer.supports(handle):
            from explainers.base import ExplainerError

            raise ExplainerError(f"{explainer.title} does not support this model.")
        values = {"n_steps": self.config.ig_steps} if self.config.explainer == "ig" else None
        cfg = make_config(self.config.explainer, values)
        names = handle.label_names
        return [explainer.explain(handle, text, names.index(target), cfg)
                for text, target in zip(self.texts, self.targets)]

    def reference(self, task: Task, handle: ModelHandle) -> dict[str, Any]:
        """Explain the first ``n_sentences`` test sentences of ``task`` on the model that learned it."""
        self.texts = [t for t in task.test.texts if t.strip()][: self.config.n_sentences]
        names = handle.label_names
        own = [names.index(label) for label in task.labels]
        probs = handle.predict_proba(self.texts)
        self.targets = [names[own[int(np.argmax(p[own]))]] for p in probs]
        self.before = self._explain(handle)
        show = self.config.n_show
        return {"explainer": self.config.explainer, "explainer_title": get(self.config.explainer).title,
                "texts": self.texts, "targets": self.targets, "n": len(self.texts),
                "attributions": [a.to_dict(extras=False) for a in self.before[:show]]}

    def after_step(self, strategy: str, step: int, handle: ModelHandle) -> dict[str, Any]:
        """Explain the same sentences for the same classes on the model after ``step`` and compare."""
        after = self._explain(handle)
        return {**summarise(self.before, after, self.config.top_words),
                "attributions": [a.to_dict(extras=False) for a in after[: self.config.n_show]]}
