"""Dataset evaluation: which explainer to trust for this model, measured over N sentences of a split.

Each selected explainer explains the predicted class of each sentence; its faithfulness (comprehensiveness
and sufficiency AOPC, deletion and insertion AUC, and a random-ranking baseline on the same sentences) is
computed with one ``predict_proba`` call per sentence for all explainers together. The report gives per
explainer the mean and 95% confidence interval (Student's t) of each metric, the mean agreement with the
other explainers, the mean cost, and the model-randomisation sanity check (:mod:`explainers.sanity`) on the
first ``sanity_n`` sentences. Because the explainers are scored on the same sentences, the ranking says which
differences are real: each pair is compared with a paired Wilcoxon signed-rank test on per-sentence
comprehensiveness AOPC, Holm-adjusted over all pairs; rows that do not differ significantly share a rank.

Per-sentence results are cached per explainer under ``LOUPE_HOME/reports/eval-cache/``, keyed by a hash
of (model id + revision, dataset, split, n, explainer + config, metric settings), and written every few
sentences, so a second run (or a resumed job, or a run that adds one explainer) reuses what is done.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from explainers import DEFAULT_METHODS
from explainers.base import Attribution, get, make_config
from explainers.metrics import BINS, RANDOM_SEEDS, STEPS, describe_bins, faithfulness_many, rank_agreement
from explainers.sanity import THRESHOLD, randomisation_check, step_names
from model_zoo import DEFAULT_MODEL_ID, LoupeError, ModelHandle, cli, jobs, load, loading, spec
from model_zoo.data import TextDataset, rotten_tomatoes
from model_zoo.paths import reports_dir, write_json_atomic

CACHE_VERSION = 2
METRICS = ("comp_aopc", "suff_aopc", "deletion_auc", "insertion_auc")
SANITY_N = 10
ALPHA = 0.05
_CHECKPOINT_SECONDS = 20.0


class EvaluationCancelled(LoupeError):
    """The evaluation was cancelled; finished sentences stay cached."""


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
        widths = [max(len(row[c]) for row in [head, *lines]) for c in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        title = (f"Explainer faithfulness on {self.model} · {self.dataset} · {self.n} sentences "
                 f"(mean ± 95% CI; AOPC over the {describe_bins(self.settings['bins'])})")
        out = [title, fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*row) for row in lines]
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


# --- inputs: model revision, dataset sample, configs ---------------------------------------------------

def model_revision(model: str, handle: ModelHandle | None = None) -> str:
    """What identifies this version of the model (see :func:`model_zoo.loading.model_revision`)."""
    path = handle.info.get("path") if handle is not None else None
    return loading.model_revision(model, Path(str(path)) if path else None)


def sample(dataset: TextDataset, n: int, seed: int = 0) -> list[int]:
    """Indices of ``n`` sentences drawn with a fixed seed (a smaller n is a prefix of a larger one)."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    return [int(i) for i in order if dataset.texts[i].strip()][:n]


def _dataset(dataset: str | TextDataset, split: str) -> tuple[TextDataset, str]:
    if isinstance(dataset, TextDataset):
        digest = hashlib.sha256("\n".join(dataset.texts).encode("utf-8")).hexdigest()[:12]
        return dataset, f"{dataset.name}#{digest}"
    if dataset != "rotten_tomatoes":
        raise LoupeError(f"Unknown dataset {dataset!r}; use rotten_tomatoes or pass a TextDataset.")
    ds = rotten_tomatoes(split)
    return ds, ds.name


def _cache_file(key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(key["model"]))[-60:]
    return reports_dir() / "eval-cache" / f"{safe}-{key['method']}-{digest}.json"


def _read_cache(path: Path, key: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, False
    if data.get("key") != json.loads(json.dumps(key, default=str)):
        return {}, False
    return dict(data.get("records", {})), bool(data.get("complete"))


# --- the run --------------------------------------------------------------------------------------

def _record(a: Attribution, f: Any) -> dict[str, Any]:
    rec = {"target": a.target, "predicted": a.predicted, "signed": a.signed,
           "spans": [[w.start, w.end] for w in a.words], "scores": [round(w.score, 6) for w in a.words],
           "passes": a.cost.passes, "seconds": a.cost.seconds, "metric_passes": f.passes, "metric_seconds": f.seconds}
    rec.update({m: getattr(f, m) for m in METRICS})
    if f.baseline is not None:
        rec["random"] = {m: getattr(f.baseline, m) for m in METRICS}
    return rec


def sanity_depths(handle: ModelHandle) -> list[int]:
    """The cascade steps the evaluation takes: the head, the head and top layer, the top half, every weight."""
    n = len(step_names(handle))
    return sorted({1, min(2, n), min(n, 1 + (n - 2) // 2), n})


def _sanity_record(handle: ModelHandle, a: Attribution, config: Any) -> dict[str, Any]:
    try:
        r = randomisation_check(handle, a, config, depths=sanity_depths(handle))
    except LoupeError as err:
        return {"error": str(err)}
    return {"steps": list(r.steps), "spearman_abs": list(r.spearman_abs), "spearman": list(r.spearman),
            "passes": r.passes, "seconds": r.seconds}


def evaluate(model: str = DEFAULT_MODEL_ID, split: str = "test", n: int = 100,
             methods: Sequence[str] = DEFAULT_METHODS, configs: Mapping[str, Any] | None = None, *,
             dataset: str | TextDataset = "rotten_tomatoes", device: str = "auto", handle: ModelHandle | None = None,
             random_seeds: Sequence[int] = RANDOM_SEEDS, use_cache: bool = True, sanity_n: int = SANITY_N,
             progress: Callable[[float, float, str], None] | None = None,
             cancelled: Callable[[], bool] | None = None) -> EvaluationReport:
    """Run the explainers over ``n`` sentences and summarise how faithful, consistent and costly each is.

    Args:
        model: a model id or folder (loaded only if something is not cached yet); ``handle``, if given, is used.
        split: the dataset split (train / validation / test).
        n: sentences, drawn with a fixed seed from the split.
        methods: explainer names from the registry.
        configs: per method, a Config instance or a dict of its fields (default: the Config's defaults).
        dataset: ``"rotten_tomatoes"`` or a :class:`TextDataset` (then ``split`` is ignored).
        random_seeds: seeds of the random-ranking baseline.
        sanity_n: sentences (the first of the sample) on which each explainer gets the cascading
            model-randomisation check (0: none); it costs one explanation per cascade step.
        use_cache: read cached per-sentence results (they are always written).
        progress: called as ``progress(done, total, message)`` after each explanation.
        cancelled: polled between explanations; when it returns True, :class:`EvaluationCancelled` is raised.
    Returns:
        :class:`EvaluationReport`.
    """
    start = time.perf_counter()
    if n < 1:
        raise LoupeError("Evaluate at least one sentence.")
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise LoupeError("Pick at least one explainer to evaluate.")
    cfgs = {m: make_config(m, (configs or {}).get(m)) for m in methods}
    ds, ds_name = _dataset(dataset, split)
    indices = sample(ds, n)
    model_id = handle.id if handle is not None else str(model)
    revision = model_revision(model, handle)
    n_sanity = min(max(0, int(sanity_n)), len(indices))
    settings = {"bins": list(BINS), "steps": STEPS, "random_seeds": list(random_seeds), "sample_seed": 0,
                "sanity_n": n_sanity}
    keys = {m: {"v": CACHE_VERSION, "model": model_id, "revision": revision, "dataset": ds_name, "n": len(indices),
                "method": m, "config": dataclasses.asdict(cfgs[m]), **settings} for m in methods}
    records: dict[str, dict[str, Any]] = {}
    complete: dict[str, bool] = {}
    for m in methods:
        records[m], complete[m] = _read_cache(_cache_file(keys[m]), keys[m]) if use_cache else ({}, False)
    todo = [m for m in methods if not complete[m]]
    if todo:
        handle = handle if handle is not None else load(model, device=device)
        _run(handle, ds, indices, todo, cfgs, random_seeds, n_sanity, records, keys, progress, cancelled)
    return _report(model_id, revision, ds_name, indices, methods, cfgs, records, {m: complete[m] for m in methods},
                   settings, time.perf_counter() - start)


def _run(handle: ModelHandle, ds: TextDataset, indices: list[int], todo: list[str], cfgs: dict[str, Any],
         random_seeds: Sequence[int], sanity_n: int, records: dict[str, dict[str, Any]],
         keys: dict[str, dict[str, Any]],
         progress: Callable[[float, float, str], None] | None, cancelled: Callable[[], bool] | None) -> None:
    """Explain and score the sentences not cached yet, one ``predict_proba`` call per sentence for all methods."""
    def save(done: bool) -> None:
        for m in todo:
            write_json_atomic(_cache_file(keys[m]), {"key": keys[m], "complete": done, "records": records[m]})

    total, done = len(indices) * len(todo), 0
    last_save = time.monotonic()
    try:
        for pos, i in enumerate(indices):
            made: list[tuple[str, Attribution]] = []
            for m in todo:
                if cancelled is not None and cancelled():
                    raise EvaluationCancelled("The evaluation was cancelled; finished sentences are cached.")
                if str(i) not in records[m]:
                    try:
                        made.append((m, get(m).explain(handle, ds.texts[i], None, cfgs[m])))
                    except LoupeError as err:  # one bad sentence must not sink the whole evaluation
                        records[m][str(i)] = {"error": str(err)}
                done += 1
                if progress is not None:
                    progress(done, total, f"sentence {pos + 1}/{len(indices)}: {m}")
            for m, a in made:
                if not a.words:
                    records[m][str(i)] = {"error": "no words to perturb"}
            usable = [(m, a) for m, a in made if a.words]
            scored = faithfulness_many(handle, [a for _, a in usable], random_seeds=random_seeds) if usable else []
            for (m, a), f in zip(usable, scored):
                records[m][str(i)] = _record(a, f)
                if pos < sanity_n:
                    records[m][str(i)]["sanity"] = _sanity_record(handle, a, cfgs[m])
            if time.monotonic() - last_save > _CHECKPOINT_SECONDS:
                save(False)
                last_save = time.monotonic()
    except BaseException:
        save(False)  # keep what is finished: a rerun (or a resumed job) starts from here
        raise
    save(True)


def _report(model_id: str, revision: str, ds_name: str, indices: list[int], methods: list[str],
            cfgs: dict[str, Any], records: dict[str, dict[str, Any]], cached: dict[str, bool],
            settings: dict[str, Any], seconds: float) -> EvaluationReport:
    ok = {m: {int(i): r for i, r in records[m].items() if "error" not in r} for m in methods}
    pair: dict[tuple[str, str], dict[int, Any]] = {}
    for a in methods:
        for b in methods:
            if a < b:
                pair[(a, b)] = {i: _agree(ok[a][i], ok[b][i]) for i in ok[a].keys() & ok[b].keys()}
    pairwise: dict[str, dict[str, dict[str, float | None]]] = {a: {} for a in methods}
    for (a, b), per in pair.items():
        cell = {"spearman": estimate([g.spearman for g in per.values()]).mean,
                "top_k_overlap": estimate([g.top_k_overlap for g in per.values()]).mean}
        pairwise[a][b] = pairwise[b][a] = cell
    rows = []
    for m in methods:
        recs = [ok[m][i] for i in indices if i in ok[m]]
        others = [tuple(sorted((m, o))) for o in methods if o != m]
        per_sentence = [[pair[p][i] for p in others if i in pair[p]] for i in indices]  # type: ignore[index]
        agree = [float(np.mean([g.spearman for g in gs if g.spearman is not None]))
                 for gs in per_sentence if any(g.spearman is not None for g in gs)]
        overlap = [float(np.mean([g.top_k_overlap for g in gs])) for gs in per_sentence if gs]
        rows.append(_summary(m, get(m).title, recs, len(records[m]) - len(recs), agree, overlap,
                             cached[m], dataclasses.asdict(cfgs[m])))
    rows.sort(key=lambda r: -math.inf if r.comp_aopc.mean is None else r.comp_aopc.mean, reverse=True)
    significance = paired_tests({m: {i: r["comp_aopc"] for i, r in ok[m].items()} for m in methods})
    rows = _ranked(rows, significance)
    base = max((ok[m] for m in methods), key=len)
    rand = [r["random"] for i, r in sorted(base.items()) if "random" in r]
    random_row = _summary("random", "Random ranking (baseline)", rand, 0, [], [], all(cached.values()), {}) \
        if rand else None
    return EvaluationReport(model_id, revision, ds_name, len(indices), tuple(rows), random_row, pairwise, settings,
                            round(seconds, 3), significance)


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


# --- job and CLI -----------------------------------------------------------------------------------

def _methods(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(m).strip() for m in items if str(m).strip()]


@jobs.register_kind("evaluate", "an evaluation job")
def run_job(ctx: Any) -> dict[str, Any]:
    """The ``evaluate`` background job. Config: model, split, n, methods, configs (and optional device, seeds).

    Returns:
        The report as a dict (written as the job's ``result.json``); ``table.txt`` goes beside it.
    """
    cfg = dict(ctx.config)
    ctx.log(f"evaluate: {cfg}")
    report = evaluate(
        model=str(cfg.get("model") or DEFAULT_MODEL_ID), split=str(cfg.get("split", "test")), n=int(cfg.get("n", 100)),
        methods=_methods(cfg.get("methods") or DEFAULT_METHODS), configs=cfg.get("configs") or {},
        device=str(cfg.get("device", "auto")), random_seeds=tuple(cfg.get("random_seeds", RANDOM_SEEDS)),
        sanity_n=int(cfg.get("sanity_n", SANITY_N)), progress=ctx.progress, cancelled=ctx.cancelled,
    )
    for row in report.rows:
        ctx.metric({"method": row.method, "comp_aopc": row.comp_aopc.mean, "suff_aopc": row.suff_aopc.mean})
    table = report.table()
    (Path(ctx.dir) / "table.txt").write_text(table + "\n", encoding="utf-8")
    ctx.log(table)
    return report.to_dict()


def parse_overrides(items: Sequence[str], methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["ig.n_steps=20", "lime.num_samples=100"]`` -> ``{"ig": {"n_steps": 20}, ...}``, typed and checked."""
    grouped: dict[str, list[str]] = {}
    for item in items:
        method, dot, rest = item.partition(".")
        if not dot or "=" not in rest or method not in methods:
            raise LoupeError(f"--config {item!r}: use METHOD.FIELD=VALUE with METHOD one of {', '.join(methods)}.")
        grouped.setdefault(method, []).append(rest)
    out = {m: spec.parse_assignments(values, get(m).Config, m) for m, values in grouped.items()}
    for method, values in out.items():  # the same limits as the dashboard and the API
        make_config(method, values)
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    methods = _methods(args.methods)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    def show(done: float, total: float, message: str) -> None:
        if not args.quiet:
            print(f"\r[{done:.0f}/{total:.0f}] {message:<50}", end="", file=sys.stderr, flush=True)

    report = evaluate(args.model, args.split, args.n, methods, parse_overrides(args.config, methods),
                      device=args.device, random_seeds=seeds, use_cache=not args.no_cache, sanity_n=args.sanity_n,
                      progress=show)
    if not args.quiet:
        print(file=sys.stderr)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 0


@cli.command("explainers", "evaluate")
def add_cli(subparsers: Any) -> None:
    """Add ``evaluate`` to the ``python -m explainers`` CLI."""
    p = subparsers.add_parser("evaluate", help="rank explainers by faithfulness over N sentences of a split")
    p.add_argument("--model", default=DEFAULT_MODEL_ID)
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--n", type=int, default=100, help="sentences (default 100)")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    p.add_argument("--config", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                   help="explainer setting, e.g. ig.n_steps=20 (repeatable)")
    p.add_argument("--seeds", default=",".join(map(str, RANDOM_SEEDS)), help="random-baseline seeds")
    p.add_argument("--sanity-n", type=int, default=SANITY_N,
                   help=f"sentences given the model-randomisation sanity check (default {SANITY_N}; 0: none)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-cache", action="store_true", help="recompute even if cached")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_evaluate)
