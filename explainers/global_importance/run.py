"""Explaining a split sentence by sentence (locally or on Ray), the per-sentence cache, and the reports.

The sentences are :func:`explainers.evaluation.sample`'s seeded sample (the Evaluate page's sentences; a smaller
n is a prefix of a larger one). Each is explained for its predicted class by the engine task
:func:`explain_sentences`. Results are cached per sentence under ``LOUPE_HOME/reports/global-cache/``, one file
per (model + revision, the split's texts, explainer + config), without n: a larger n or a second model view
reuses what is done, and a cancelled run keeps its finished sentences (written every few seconds and on exit).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explainers.base import ExplainerError, get, make_config
from explainers.evaluation import model_revision, sample
from explainers.global_importance.aggregate import aggregate, compare
from explainers.global_importance.report import GlobalReport, GlobalResult
from model_zoo import LoupeError, ModelHandle, engine, load, spec
from model_zoo.data import TextDataset
from model_zoo.paths import reports_dir, write_json_atomic
from model_zoo.spec import setting

CACHE_VERSION = 1
_CHECKPOINT_SECONDS = 10.0
ALIASES = {"gxi": "grad_x_input", "fa": "ablation", "integrated_gradients": "ig"}
Progress = Callable[[float, float, str], None]


class GlobalCancelled(LoupeError):
    """The global explanation was cancelled; finished sentences stay cached."""


@dataclass(frozen=True)
class GlobalConfig:
    """How many sentences, and how much of the result to keep."""

    n: int = setting(200, "Sentences explained: a seeded sample of the split (all of it when smaller)",
                     min=1, max=20000, hosted_max=500)
    top_k: int = setting(15, "Words listed toward and away from each class", min=1, max=100)
    min_sentences: int = setting(3, "Words found in fewer sentences are left out of the tables", min=1, max=1000)
    examples: int = setting(5, "Example sentences kept per listed word", min=1, max=20)


def settings_config(values: GlobalConfig | Mapping[str, Any] | None = None) -> GlobalConfig:
    """A :class:`GlobalConfig` from JSON (None: the defaults), checked against this server's limits."""
    if isinstance(values, GlobalConfig):
        spec.check(values, "global")
        return values
    return spec.build(GlobalConfig, dict(values or {}), "global")


def resolve_method(name: str) -> str:
    """The registry name of a signed explainer (``gxi`` and other aliases accepted).

    Raises:
        ExplainerError: an unknown explainer, or one without a sign (it cannot say toward or away).
    """
    name = ALIASES.get(str(name).strip(), str(name).strip())
    explainer = get(name)
    if not explainer.signed:
        raise ExplainerError(f"{explainer.title} gives no sign (only how much a word matters, not for which "
                             "class), so it cannot say which words push toward or away from a class; pick one of "
                             f"{', '.join(n for n, e in _registry().items() if e.signed)}.")
    return name


def _registry() -> dict[str, Any]:
    from explainers.base import REGISTRY

    return dict(REGISTRY.items())


def signed_methods(handle: ModelHandle | None = None) -> list[str]:
    """The explainers global explanations can use (signed; supporting ``handle`` when given), registry order."""
    return [n for n, e in _registry().items() if e.signed and (handle is None or e.supports(handle))]


# --- the engine task and the cache -------------------------------------------------------------------------

def explain_sentences(handle: ModelHandle, batch: list[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine task: explain each ``[index, text]`` item for its predicted class with ``params["method"]``.

    Returns one record per item: ``target``, ``probs``, the words' ``spans`` and ``scores``, ``passes``,
    ``seconds`` and the model's ``labels``; or ``{"error": ...}`` for a sentence that cannot be explained
    (one bad sentence must not sink the run). Runs in this process or on a Ray worker.
    """
    explainer = get(params["method"])
    config = make_config(params["method"], params["config"])
    out: list[dict[str, Any]] = []
    for _, text in batch:
        try:
            a = explainer.explain(handle, text, None, config)
        except LoupeError as err:
            out.append({"error": str(err)})
            continue
        out.append({"target": a.target, "probs": [round(p, 6) for p in a.probs],
                    "spans": [[w.start, w.end] for w in a.words], "scores": [round(w.score, 6) for w in a.words],
                    "passes": a.cost.passes, "seconds": a.cost.seconds, "labels": list(a.labels)})
    return out


def dataset_digest(dataset: TextDataset) -> str:
    """What identifies a split's texts (the cache key: the same texts under another file name still hit)."""
    return hashlib.sha256("\n".join(dataset.texts).encode("utf-8")).hexdigest()[:16]


def _cache_file(key: Mapping[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(key["model"]))[-60:]
    return reports_dir() / "global-cache" / f"{safe}-{key['method']}-{digest}.json"


def _read_cache(path: Path, key: Mapping[str, Any]) -> tuple[dict[str, Any], list[str] | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, None
    if not isinstance(data, dict) or data.get("key") != json.loads(json.dumps(key, default=str)):
        return {}, None
    return dict(data.get("records") or {}), data.get("labels")


def explain_split(model: str, dataset: TextDataset, method: str, config: Any = None,
                  settings: GlobalConfig | Mapping[str, Any] | None = None, *, handle: ModelHandle | None = None,
                  device: str = "auto", run_on: engine.EngineConfig | Mapping[str, Any] | None = None,
                  use_cache: bool = True, cached_only: bool = False, progress: Progress | None = None,
                  cancelled: Callable[[], bool] | None = None) -> GlobalReport | None:
    """Explain a seeded sample of ``dataset`` with ``method`` and aggregate the words per class.

    Args:
        model: the model's id or folder (its cache key; loaded only when something is not cached and the
            engine is local, unless ``handle`` is given).
        dataset: the labelled split; its ``name`` is how the report names it.
        method: a signed explainer (``gxi`` is accepted for ``grad_x_input``).
        config: the explainer's settings (None: its defaults within this server's limits).
        settings: :class:`GlobalConfig` or its dict (n, top_k, min_sentences, examples).
        run_on: the engine (``local``, the default, or ``ray`` with its workers); results do not depend on it.
        use_cache: reuse cached sentences (False: explain them all again; the cache is updated either way).
        cached_only: return None rather than explain anything (is it all cached?).
        progress: ``progress(done, total, message)`` after each sentence explained.
        cancelled: polled after each sentence; True raises :class:`GlobalCancelled` (finished ones stay cached).

    Raises:
        ExplainerError: an unknown or unsigned explainer, a bad config, or one that does not support the model.
        LoupeError: no text to explain, or every sentence failed.
    """
    started = time.perf_counter()
    opts = settings_config(settings)
    method = resolve_method(method)
    cfg = make_config(method, config)
    indices = sample(dataset, opts.n)
    if not indices:
        raise LoupeError(f"{dataset.name} has no text to explain.")
    key = {"v": CACHE_VERSION, "model": str(model), "revision": model_revision(str(model), handle),
           "texts": dataset_digest(dataset), "method": method, "config": dataclasses.asdict(cfg)}
    path = _cache_file(key)
    records, labels = _read_cache(path, key)  # kept even without use_cache: a stopped rerun must not lose them
    todo = [i for i in indices if not use_cache or str(i) not in records]
    cached = len(indices) - len(todo)
    if todo:
        if cached_only:
            return None
        run_on = engine.config(dict(run_on) if isinstance(run_on, Mapping) else run_on)
        if handle is None and run_on.engine == "local":
            handle = load(model, device=device)
        if handle is not None and not get(method).supports(handle):
            raise ExplainerError(f"{get(method).title} does not support this model (e.g. a quantised model has "
                                 "no gradients); pick another explainer.")
        labels = _run(model, handle, device, dataset, todo, method, cfg, key, path, records, labels, run_on,
                      progress, cancelled)
    return _report(model, str(key["revision"]), dataset, method, cfg, opts, indices, records, labels, cached,
                   time.perf_counter() - started)


def _run(model: str, handle: ModelHandle | None, device: str, dataset: TextDataset, todo: list[int], method: str,
         cfg: Any, key: Mapping[str, Any], path: Path, records: dict[str, Any], labels: list[str] | None,
         run_on: engine.EngineConfig, progress: Progress | None,
         cancelled: Callable[[], bool] | None) -> list[str] | None:
    """Explain the sentences not cached yet; checkpoint as results arrive and whenever the run stops."""
    found = {"labels": labels or (list(handle.label_names) if handle is not None else None)}

    def save() -> None:
        write_json_atomic(path, {"key": key, "labels": found["labels"], "records": records})

    items = [[i, dataset.texts[i]] for i in todo]
    params = {"method": method, "config": dataclasses.asdict(cfg)}
    last = time.monotonic()
    try:
        if cancelled is not None and cancelled():
            raise GlobalCancelled("The global explanation was cancelled; finished sentences are cached.")
        with closing(engine.run(explain_sentences, items, params, model=model, handle=handle, device=device,
                                engine=run_on)) as results:
            for done, (k, rec) in enumerate(results, start=1):
                found["labels"] = rec.pop("labels", None) or found["labels"]
                records[str(items[k][0])] = rec
                if progress is not None:
                    progress(done, len(items), f"sentence {done}/{len(items)}")
                if time.monotonic() - last > _CHECKPOINT_SECONDS:
                    save()
                    last = time.monotonic()
                if cancelled is not None and cancelled():
                    raise GlobalCancelled("The global explanation was cancelled; finished sentences are cached.")
    finally:
        save()  # keep what is finished: a rerun, a larger n or a resumed job starts from here
    return found["labels"]


def _report(model: str, revision: str, dataset: TextDataset, method: str, cfg: Any, opts: GlobalConfig,
            indices: list[int], records: Mapping[str, Any], labels: Sequence[str] | None, cached: int,
            seconds: float) -> GlobalReport:
    recs = {i: records[str(i)] for i in indices}
    ok = {i: r for i, r in recs.items() if "error" not in r}
    errors = tuple(dict.fromkeys(str(r["error"]) for r in recs.values() if "error" in r))[:3]
    if not ok:
        raise LoupeError(f"{get(method).title} could not explain any of the {len(recs)} sentences"
                         + (f": {errors[0]}" if errors else "."))
    names = tuple(labels or dataset.label_names)
    classes = aggregate(ok, dataset.texts, names, top_k=opts.top_k, min_sentences=opts.min_sentences,
                        examples=opts.examples)
    predicted = tuple(sum(1 for r in ok.values() if r["target"] == c) for c in range(len(names)))
    costs = [float(r["seconds"]) for r in ok.values() if "seconds" in r]
    return GlobalReport(str(model), revision, dataset.name, method, get(method).title, dataclasses.asdict(cfg),
                        names, tuple(indices), len(ok), len(recs) - len(ok), errors, predicted, classes,
                        dataclasses.asdict(opts), cached, round(seconds, 3),
                        round(sum(costs) / len(costs), 4) if costs else None)


def explain_global(model: str, dataset: TextDataset, method: str, config: Any = None,
                   settings: GlobalConfig | Mapping[str, Any] | None = None, *, compare_with: str | None = None,
                   handle: ModelHandle | None = None, other: ModelHandle | None = None, device: str = "auto",
                   run_on: engine.EngineConfig | Mapping[str, Any] | None = None, use_cache: bool = True,
                   cached_only: bool = False, progress: Progress | None = None,
                   cancelled: Callable[[], bool] | None = None) -> GlobalResult | None:
    """:func:`explain_split` for ``model`` and, with ``compare_with``, for a second model on the same sentences,
    then what changed between them (:func:`~explainers.global_importance.aggregate.compare`).

    Args:
        handle, other: the two models when already loaded (otherwise loaded as needed).
        The rest as for :func:`explain_split`; progress runs over both models (0-1 then 1-2 of 2).

    Returns:
        :class:`GlobalResult` (None with ``cached_only`` when something is not cached).
    """
    models = [(model, handle)] + ([(compare_with, other)] if compare_with else [])
    reports = []
    for k, (name, loaded) in enumerate(models):
        step = _phase(progress, k, len(models), name if len(models) > 1 else "")
        report = explain_split(name, dataset, method, config, settings, handle=loaded, device=device, run_on=run_on,
                               use_cache=use_cache, cached_only=cached_only, progress=step, cancelled=cancelled)
        if report is None:
            return None
        if step is not None:
            step(1, 1, "done")
        reports.append(report)
    opts = settings_config(settings)
    comparison = compare(reports[0].classes, reports[1].classes, reports[0].model, reports[1].model,
                         opts.top_k) if len(reports) > 1 else None
    shown = {i for r in reports for c in r.classes for w in c.toward + c.away for i, _ in w.examples}
    sentences = {i: (dataset.texts[i], dataset.label_names[dataset.labels[i]]) for i in sorted(shown)}
    return GlobalResult(tuple(reports), comparison, sentences)


def _phase(progress: Progress | None, k: int, of: int, name: str) -> Progress | None:
    if progress is None:
        return None

    def step(done: float, total: float, message: str) -> None:
        progress(k + (done / total if total else 1.0), of, f"{name}: {message}" if name else message)

    return step
