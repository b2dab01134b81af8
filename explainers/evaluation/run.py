"""Running an evaluation: the sample, the explanations and their faithfulness, the per-sentence cache."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from explainers import DEFAULT_METHODS
from explainers.base import Attribution, get, make_config
from explainers.evaluation.ranking import METRICS, EvaluationReport, _agree, _ranked, _summary, estimate, paired_tests
from explainers.metrics import BINS, RANDOM_SEEDS, STEPS, faithfulness_many
from explainers.sanity import randomisation_check, step_names
from model_zoo import DEFAULT_MODEL_ID, LoupeError, ModelHandle, engine, load, loading
from model_zoo.data import TextDataset, rotten_tomatoes
from model_zoo.paths import reports_dir, write_json_atomic

CACHE_VERSION = 2
SANITY_N = 10
_CHECKPOINT_SECONDS = 20.0


class EvaluationCancelled(LoupeError):
    """The evaluation was cancelled; finished sentences stay cached."""


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
             run_on: engine.EngineConfig | dict[str, Any] | None = None,
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
        run_on: the engine (:mod:`model_zoo.engine`: ``local``, the default, or ``ray`` with its workers);
            the results do not depend on it.
        progress: called as ``progress(done, total, message)`` after each sentence.
        cancelled: polled between sentences; when it returns True, :class:`EvaluationCancelled` is raised.
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
        run_on = engine.config(run_on)
        if handle is None and run_on.engine == "local":
            handle = load(model, device=device)
        _run(handle, str(model), device, ds, indices, todo, cfgs, random_seeds, n_sanity, records, keys, run_on,
             progress, cancelled)
    return _report(model_id, revision, ds_name, indices, methods, cfgs, records, {m: complete[m] for m in methods},
                   settings, time.perf_counter() - start)


def score_sentences(handle: ModelHandle, batch: list[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine task: explain each ``[index, text, methods, sanity]`` item and score its faithfulness.

    Returns one ``{method: record}`` per item; an explainer that fails on a sentence gets ``{"error": ...}``
    (one bad sentence must not sink the whole evaluation). Runs in this process or on a Ray worker.
    """
    cfgs = {m: make_config(m, c) for m, c in params["configs"].items()}
    seeds = tuple(params["random_seeds"])
    out = []
    for _, text, methods, sanity in batch:
        recs: dict[str, Any] = {}
        usable: list[tuple[str, Attribution]] = []
        for m in methods:
            try:
                a = get(m).explain(handle, text, None, cfgs[m])
            except LoupeError as err:
                recs[m] = {"error": str(err)}
                continue
            if a.words:
                usable.append((m, a))
            else:
                recs[m] = {"error": "no words to perturb"}
        scored = faithfulness_many(handle, [a for _, a in usable], random_seeds=seeds) if usable else []
        for (m, a), f in zip(usable, scored):
            recs[m] = _record(a, f)
            if sanity:
                recs[m]["sanity"] = _sanity_record(handle, a, cfgs[m])
        out.append(recs)
    return out


def _run(handle: ModelHandle | None, model: str, device: str, ds: TextDataset, indices: list[int], todo: list[str],
         cfgs: dict[str, Any], random_seeds: Sequence[int], sanity_n: int, records: dict[str, dict[str, Any]],
         keys: dict[str, dict[str, Any]], run_on: engine.EngineConfig,
         progress: Callable[[float, float, str], None] | None, cancelled: Callable[[], bool] | None) -> None:
    """Explain and score the sentences not cached yet, on the chosen engine; checkpoint as results arrive."""
    def save(done: bool) -> None:
        for m in todo:
            write_json_atomic(_cache_file(keys[m]), {"key": keys[m], "complete": done, "records": records[m]})

    items = [[i, ds.texts[i], [m for m in todo if str(i) not in records[m]], pos < sanity_n]
             for pos, i in enumerate(indices)]
    items = [item for item in items if item[2]]
    params = {"configs": {m: dataclasses.asdict(cfgs[m]) for m in todo}, "random_seeds": list(random_seeds)}
    last_save = time.monotonic()
    try:
        if cancelled is not None and cancelled():
            raise EvaluationCancelled("The evaluation was cancelled; finished sentences are cached.")
        with closing(engine.run(score_sentences, items, params, model=model, handle=handle, device=device,
                                engine=run_on)) as results:
            for done, (k, recs) in enumerate(results, start=1):
                for m, rec in recs.items():
                    records[m][str(items[k][0])] = rec
                if progress is not None:
                    progress(done, len(items), f"sentence {done}/{len(items)}")
                if time.monotonic() - last_save > _CHECKPOINT_SECONDS:
                    save(False)
                    last_save = time.monotonic()
                if cancelled is not None and cancelled():
                    raise EvaluationCancelled("The evaluation was cancelled; finished sentences are cached.")
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
