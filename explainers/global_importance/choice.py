"""Which explainer global explanations use by default: the most faithful one this model can afford.

The rule, in order:

1. If the model has a cached evaluation (the Evaluate page or ``python -m explainers evaluate``, default settings,
   this revision of the model; the run covering the most explainers, then the most sentences): among the signed
   explainers that support the model and whose measured seconds per sentence × n / workers fit in
   :data:`AFFORDABLE_SECONDS`, take the most faithful by mean comprehensiveness AOPC; of those not significantly
   less faithful than it (the Evaluate page's paired Wilcoxon test, Holm-adjusted), the cheapest.
2. Otherwise Feature Ablation, if it fits: on the default model it is the most faithful explainer that is cheap
   (rank 4 of 7, comprehensiveness AOPC 0.28 against 0.07 for a random ranking, 0.8 s per sentence on two
   cores, where LIME, SHAP and IG take 3-6 s), it needs no gradients (so it works on quantised models) and it
   perturbs words the way the faithfulness metrics do.
3. Otherwise Gradient × Input (0.11 AOPC, 0.4 s): less faithful, but twice as fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from explainers.base import default_config, get
from explainers.evaluation import CACHE_VERSION as EVAL_CACHE_VERSION
from explainers.evaluation import paired_tests
from model_zoo.paths import reports_dir

AFFORDABLE_SECONDS = 600.0  # estimated explainer time a default may cost (per worker): ten minutes
# Seconds per sentence on the default model, two CPU cores (README, "Evaluate explainers"): used when this
# model has no evaluation of its own.
FALLBACK_SECONDS = {"ablation": 0.8, "grad_x_input": 0.4, "ig": 3.4, "shap": 5.5, "lime": 5.8}
FALLBACK = ("ablation", "grad_x_input")


@dataclass(frozen=True)
class Ranked:
    """One explainer of a cached evaluation: mean comprehensiveness AOPC, mean seconds, sentences scored."""

    method: str
    comp_aopc: float
    seconds: float
    n: int


@dataclass(frozen=True)
class Ranking:
    """A cached evaluation of one model: its explainers best first, and which differences are significant."""

    dataset: str
    n: int
    rows: tuple[Ranked, ...]
    significance: dict[str, dict[str, dict[str, Any]]]

    def tied(self, a: str, b: str) -> bool:
        """Whether ``a`` and ``b`` are not significantly different in faithfulness."""
        return a == b or not self.significance.get(a, {}).get(b, {}).get("significant", False)


@dataclass(frozen=True)
class Choice:
    """The default explainer and why (a sentence for people)."""

    method: str
    reason: str
    seconds: float  # estimated explainer seconds per sentence
    from_evaluation: bool


def cached_ranking(model: str, revision: str) -> Ranking | None:
    """This model's cached evaluation at default settings (None when it has none); see the module docstring."""
    groups: dict[str, dict[str, Any]] = {}
    folder = reports_dir() / "eval-cache"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            key = data["key"]
            method = key["method"]
            fits = (key.get("v") == EVAL_CACHE_VERSION and key.get("model") == model
                    and key.get("revision") == revision and data.get("complete")
                    and key.get("config") == json.loads(json.dumps(_defaults(method))))
        except (OSError, ValueError, KeyError, TypeError, LookupError):
            continue
        if not fits:
            continue
        run = json.dumps({k: v for k, v in key.items() if k not in ("method", "config")}, sort_keys=True)
        groups.setdefault(run, {"key": key, "methods": {}})["methods"][method] = data.get("records") or {}
    if not groups:
        return None
    best = max(groups.values(), key=lambda g: (len(g["methods"]), int(g["key"].get("n") or 0)))
    values: dict[str, dict[int, float]] = {}
    rows = []
    for method, records in best["methods"].items():
        ok = [r for r in records.values() if isinstance(r, dict) and "comp_aopc" in r]
        if not ok:
            continue
        values[method] = {int(i): float(r["comp_aopc"]) for i, r in records.items()
                          if isinstance(r, dict) and "comp_aopc" in r}
        rows.append(Ranked(method, sum(float(r["comp_aopc"]) for r in ok) / len(ok),
                           sum(float(r.get("seconds", 0.0)) for r in ok) / len(ok), len(ok)))
    rows.sort(key=lambda r: -r.comp_aopc)
    return Ranking(str(best["key"].get("dataset")), int(best["key"].get("n") or 0), tuple(rows),
                   paired_tests(values)) if rows else None


def _defaults(method: str) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(default_config(method))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def default_method(usable: Sequence[str], n: int, ranking: Ranking | None = None, workers: int = 1) -> Choice:
    """The default explainer for ``n`` sentences on ``workers`` workers (the rule in the module docstring).

    Args:
        usable: the signed explainers that support the model (:func:`~.run.signed_methods`).
        ranking: the model's cached evaluation (:func:`cached_ranking`), if any.
    """
    budget = AFFORDABLE_SECONDS * max(1, workers)
    if ranking is not None:
        fits = [r for r in ranking.rows if r.method in usable and r.seconds * n <= budget]
        if fits:
            top = fits[0]
            pick = min((r for r in fits if ranking.tied(top.method, r.method)), key=lambda r: r.seconds)
            above = [get(r.method).title for r in ranking.rows if r.method in usable and r.comp_aopc > top.comp_aopc]
            why = (f"the most faithful explainer in your evaluation of this model ({ranking.n} sentences of "
                   f"{ranking.dataset}) that fits {n:,} sentences in about {_minutes(budget)}: comprehensiveness "
                   f"AOPC {pick.comp_aopc:.3f}, {pick.seconds:.2f} s a sentence")
            if pick.method != top.method:
                why += f"; not significantly less faithful than {get(top.method).title}, and cheaper"
            if above:
                why += f" ({', '.join(above)} rank higher but would take longer)"
            return Choice(pick.method, f"{get(pick.method).title}: {why}.", pick.seconds, True)
    for method in FALLBACK:
        if method in usable and FALLBACK_SECONDS[method] * n <= budget:
            return Choice(method, _fallback_reason(method, n), FALLBACK_SECONDS[method], False)
    method = next((m for m in FALLBACK if m in usable), usable[0] if usable else FALLBACK[0])
    seconds = FALLBACK_SECONDS.get(method, 1.0)
    took = _minutes(seconds * n / max(1, workers))
    return Choice(method, _fallback_reason(method, n) + f" It will take about {took}.", seconds, False)


def _fallback_reason(method: str, n: int) -> str:
    if method == "ablation":
        return ("Feature Ablation: this model has no evaluation yet (run one on the Evaluate page to let it "
                "choose), and on the default model Feature Ablation is the most faithful of the cheap explainers "
                "(comprehensiveness AOPC 0.28 against 0.07 for a random ranking; about 0.8 s a sentence on two "
                "cores, where LIME, SHAP and IG take 3-6 s).")
    if method == "grad_x_input":
        return (f"Gradient × Input: this model has no evaluation yet, and Feature Ablation (the usual default) "
                f"would take more than {_minutes(AFFORDABLE_SECONDS)} for {n:,} sentences; Gradient × Input is about "
                "twice as fast but less faithful (comprehensiveness AOPC 0.11 on the default model).")
    return f"{get(method).title}: the only signed explainer this model supports."
