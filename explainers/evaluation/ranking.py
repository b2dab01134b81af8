"""Ranking explainers from per-sentence results: estimates with confidence intervals, paired tests, the report."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from explainers.metrics import describe_bins, rank_agreement
from explainers.sanity import THRESHOLD
from model_zoo import cli

METRICS = ("comp_aopc", "suff_aopc", "deletion_auc", "insertion_auc")
ALPHA = 0.05


@dataclass(frozen=True)
class Estimate:
    """A mean with the half-width of its 95% confidence interval (None when fewer than two values)."""

    mean: float | None
    ci: float | None
    n: int

    def __str__(self) -> str:
        if self.mean is None:
            return "-"
        return f"{self.mean:.3f}" + (f" ± {self.ci:.3f}" if self.ci is not None else "")


def estimate(values: Sequence[float | None]) -> Estimate:
    """Mean ± 95% CI (t distribution) of the values that are not None or NaN."""
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return Estimate(None, None, 0)
    if arr.size == 1:
        return Estimate(float(arr[0]), None, 1)
    half = float(stats.t.ppf(0.975, arr.size - 1) * arr.std(ddof=1) / math.sqrt(arr.size))
    return Estimate(float(arr.mean()), half, int(arr.size))


@dataclass(frozen=True)
class MethodSummary:
    """One row of the ranking table (``method="random"`` is the random-ranking baseline)."""

    method: str
    title: str
    n: int
    failed: int
    comp_aopc: Estimate
    suff_aopc: Estimate
    deletion_auc: Estimate
    insertion_auc: Estimate
    random_comp_aopc: Estimate
    random_suff_aopc: Estimate
    agreement: Estimate  # mean Spearman with the other explainers
    top_k_overlap: Estimate
    passes: Estimate
    seconds: Estimate
    cached: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    rank: int = 0  # shared by rows whose comprehensiveness does not differ significantly
    tied_with: tuple[str, ...] = ()
    # Model randomisation: mean Spearman of score magnitudes against the original after each cascade step.
    sanity_steps: tuple[str, ...] = ()
    sanity_curve: tuple[float | None, ...] = ()
    sanity: Estimate = Estimate(None, None, 0)  # after the last step

    @property
    def sanity_passed(self) -> bool | None:
        return None if self.sanity.mean is None else self.sanity.mean <= THRESHOLD


@dataclass(frozen=True)
class EvaluationReport:
    """The ranking table and how it was made; rows are sorted by comprehensiveness AOPC, best first."""

    model: str
    revision: str
    dataset: str
    n: int
    rows: tuple[MethodSummary, ...]
    random: MethodSummary | None
    pairwise: dict[str, dict[str, dict[str, float | None]]]
    settings: dict[str, Any]
    seconds: float
    # method -> other -> {"n", "mean_diff" (row minus column), "p", "p_holm", "significant"}
    significance: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (also what the ``evaluate`` job writes as its result)."""
        return dataclasses.asdict(self)

    def table(self) -> str:
        """A plain-text ranking table."""
        head = ["rank", "method", "comp AOPC ↑", "suff AOPC ↓", "deletion AUC ↓", "insertion AUC ↑",
                "agree ρ", "top-k", "sanity ρ ↓", "passes", "s/expl"]
        lines = [[f"{r.rank}" + ("=" if r.tied_with else ""), r.method, str(r.comp_aopc), str(r.suff_aopc),
                  str(r.deletion_auc), str(r.insertion_auc), _short(r.agreement), _short(r.top_k_overlap),
                  _sanity(r), _short(r.passes, 0), _short(r.seconds, 2)] for r in self.rows]
        if self.random is not None:
            r = self.random
            lines.append(["", "random", str(r.comp_aopc), str(r.suff_aopc), str(r.deletion_auc),
                          str(r.insertion_auc), "", "", "", "", ""])
        title = (f"Explainer faithfulness on {self.model} · {self.dataset} · {self.n} sentences "
                 f"(mean ± 95% CI; AOPC over the {describe_bins(self.settings['bins'])})")
        out = [title, cli.table(lines, head)]
        ties = [f"{r.method} ~ {', '.join(r.tied_with)}" for r in self.rows if r.tied_with]
        out.append(f"rank: by comprehensiveness; '=' shares a rank (paired Wilcoxon, Holm-adjusted p >= {ALPHA}): "
                   + ("; ".join(ties) if ties else "every difference is significant"))
        steps = next((r.sanity_steps for r in self.rows if r.sanity_steps), ())
        if steps:
            out.append(f"sanity: mean Spearman of |scores| against the original explanation after randomising "
                       f"the model ({' -> '.join(steps)}), over {self.settings.get('sanity_n')} sentences; "
                       f"> {THRESHOLD} means it barely depends on the model (!)")
            out += [f"  {r.method:<14}" + "  ".join("-" if v is None else f"{v:.2f}" for v in r.sanity_curve)
                    for r in self.rows if r.sanity_curve]
        failed = [f"{r.method}: {r.failed}" for r in self.rows if r.failed]
        if failed:
            out.append("failed sentences: " + ", ".join(failed))
        return "\n".join(out)


def _short(e: Estimate, digits: int = 3) -> str:
    return "-" if e.mean is None else f"{e.mean:.{digits}f}"


def _sanity(r: MethodSummary) -> str:
    return "-" if r.sanity.mean is None else f"{r.sanity.mean:.2f}" + ("" if r.sanity_passed else " !")



def paired_tests(values: Mapping[str, Mapping[int, float]],
                 alpha: float = ALPHA) -> dict[str, dict[str, dict[str, Any]]]:
    """Paired Wilcoxon signed-rank tests between every two methods on the sentences both scored.

    Args:
        values: method -> sentence index -> per-sentence value (e.g. comprehensiveness AOPC).
        alpha: family-wise error rate; p-values are Holm-adjusted over all pairs.
    Returns:
        method -> other -> ``{"n", "mean_diff", "p", "p_holm", "significant"}`` (symmetric; mean_diff is
        method minus other). With fewer than 6 shared sentences or all differences zero, p is 1.
    """
    names = list(values)
    tests: list[tuple[str, str, int, float, float]] = []
    for x, a in enumerate(names):
        for b in names[x + 1:]:
            common = sorted(values[a].keys() & values[b].keys())
            diff = np.array([values[a][i] - values[b][i] for i in common], dtype=float)
            p = 1.0
            if len(diff) >= 6 and np.any(diff != 0):
                p = float(stats.wilcoxon(diff, zero_method="zsplit").pvalue)
            tests.append((a, b, len(common), float(diff.mean()) if len(diff) else 0.0, p))
    out: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in names}
    order = sorted(range(len(tests)), key=lambda t: tests[t][4])
    running = 0.0
    for rank, t in enumerate(order):  # Holm's step-down adjustment, kept monotone
        a, b, n, mean_diff, p = tests[t]
        running = max(running, min(1.0, p * (len(tests) - rank)))
        cell = {"n": n, "mean_diff": mean_diff, "p": p, "p_holm": running, "significant": running < alpha}
        out[a][b] = cell
        out[b][a] = {**cell, "mean_diff": -mean_diff}
    return out


def _ranked(rows: list[MethodSummary], significance: dict[str, dict[str, dict[str, Any]]]) -> list[MethodSummary]:
    """Give rows (sorted best first) ranks; a row not significantly worse than the row above shares its rank."""
    out: list[MethodSummary] = []
    for i, r in enumerate(rows):
        tied = tuple(o.method for o in rows if o.method != r.method
                     and not significance.get(r.method, {}).get(o.method, {}).get("significant", False))
        same_as_above = i > 0 and rows[i - 1].method in tied
        rank = out[-1].rank if same_as_above else i + 1
        out.append(dataclasses.replace(r, rank=rank, tied_with=tied))
    return out


def _agree(ra: dict[str, Any], rb: dict[str, Any]) -> Any:
    sb = {tuple(s): v for s, v in zip(rb["spans"], rb["scores"])}
    common = [(v, sb[tuple(s)]) for s, v in zip(ra["spans"], ra["scores"]) if tuple(s) in sb]
    return rank_agreement([c[0] for c in common], [c[1] for c in common])


def _summary(method: str, title: str, recs: list[dict[str, Any]], failed: int, agree: list[float],
             overlap: list[float], cached: bool, config: dict[str, Any]) -> MethodSummary:
    def col(name: str, sub: str | None = None) -> Estimate:
        return estimate([(r[sub] if sub else r).get(name) for r in recs if sub is None or sub in r])

    sanity = [r["sanity"] for r in recs if "spearman_abs" in r.get("sanity", {})]
    steps = tuple(sanity[0]["steps"]) if sanity else ()
    curve = tuple(estimate(list(col)).mean for col in zip(*(s["spearman_abs"] for s in sanity))) if sanity else ()
    final = estimate([s["spearman_abs"][-1] for s in sanity])
    return MethodSummary(
        method=method, title=title, n=len(recs), failed=failed, comp_aopc=col("comp_aopc"),
        suff_aopc=col("suff_aopc"), deletion_auc=col("deletion_auc"), insertion_auc=col("insertion_auc"),
        random_comp_aopc=col("comp_aopc", "random"), random_suff_aopc=col("suff_aopc", "random"),
        agreement=estimate(agree), top_k_overlap=estimate(overlap), passes=col("passes"), seconds=col("seconds"),
        cached=cached, config=config, sanity_steps=steps, sanity_curve=curve, sanity=final,
    )
