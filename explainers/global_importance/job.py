"""Global explanations as a background job (kind ``global``) and as ``python -m explainers global``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from explainers.evaluation import parse_overrides
from explainers.global_importance.choice import cached_ranking, default_method
from explainers.global_importance.run import (
    GlobalCancelled,
    GlobalConfig,
    explain_global,
    resolve_method,
    signed_methods,
)
from model_zoo import DEFAULT_MODEL_ID, LoupeError, cli, engine, jobs, loading, spec
from model_zoo.data import RT_LABELS, SPLITS, TextDataset, rotten_tomatoes
from model_zoo.error_analysis import labelled_csv

AUTO = "auto"


def split_title(split: str) -> str:
    """How a bundled split is named in every figure."""
    return f"Rotten Tomatoes {split}"


def load_split(data: Mapping[str, Any], labels: Sequence[str] | None = None) -> TextDataset:
    """The labelled texts a job explains: ``{"split": "test"}`` (Rotten Tomatoes) or an uploaded CSV,
    ``{"path", "name", "text_column", "label_column"}``, whose labels must be ``labels`` (the model's classes).

    Raises:
        DatasetError: an unknown split, or a file that cannot be read (see :func:`labelled_csv`).
    """
    if data.get("path"):
        return labelled_csv(Path(str(data["path"])), str(data.get("text_column", "text")),
                            str(data.get("label_column", "label")), list(labels or RT_LABELS),
                            f"upload: {data.get('name') or Path(str(data['path'])).name}")
    split = str(data.get("split") or "test")
    ds = rotten_tomatoes(split)
    return TextDataset(ds.texts, ds.labels, ds.label_names, split_title(split), ds.notes, ds.rows)


def pick_method(method: str | None, model: str, n: int, usable: Sequence[str], workers: int = 1) -> tuple[str, str]:
    """``(method, why)``: the named explainer, or with ``auto``/None the default for this model and size."""
    if method and method != AUTO:
        return resolve_method(method), ""
    ranking = cached_ranking(model, loading.model_revision(model))
    choice = default_method(list(usable), n, ranking, workers)
    return choice.method, choice.reason


def _stop(signum: int, frame: Any) -> None:
    raise GlobalCancelled("The global explanation was cancelled; finished sentences are cached.")


@jobs.register_kind("global", "a global-explanation job")
def run_job(ctx: Any) -> dict[str, Any]:
    """The ``global`` background job. Config: model, data (``{"split"}`` or an uploaded file), labels, method
    (``auto``: the default rule), config (the explainer's settings), settings (:class:`GlobalConfig` as a dict),
    compare_with (a second model, optional), engine (:class:`~model_zoo.engine.EngineConfig` as a dict), device.

    Cancel (a SIGTERM to the job) stops it between two sentences and keeps the finished ones in the cache.

    Returns:
        The :class:`~explainers.global_importance.run.GlobalResult` as a dict; ``table.txt`` goes beside it.
    """
    main = threading.current_thread() is threading.main_thread()  # signals can only be caught there
    before = signal.signal(signal.SIGTERM, _stop) if main else None
    try:
        return _run_job(ctx)
    finally:
        if main:
            signal.signal(signal.SIGTERM, before)


def _run_job(ctx: Any) -> dict[str, Any]:
    cfg = dict(ctx.config)
    ctx.log(f"global: {json.dumps({k: v for k, v in cfg.items() if k != 'data'}, default=str)}")
    model = str(cfg.get("model") or DEFAULT_MODEL_ID)
    dataset = load_split(cfg.get("data") or {"split": "test"}, cfg.get("labels"))
    run_on = engine.config(cfg.get("engine"))
    settings = spec.build(GlobalConfig, cfg.get("settings") or {}, "global")
    method, why = pick_method(cfg.get("method"), model, settings.n, signed_methods(), run_on.workers)
    if why:
        ctx.log(f"explainer: {why}")
    result = explain_global(model, dataset, method, cfg.get("config"), settings,
                            compare_with=cfg.get("compare_with") or None, device=str(cfg.get("device", "auto")),
                            run_on=run_on, progress=ctx.progress, cancelled=ctx.cancelled)
    assert result is not None  # only cached_only returns None
    table = result.table()
    (Path(ctx.dir) / "table.txt").write_text(table + "\n", encoding="utf-8")
    ctx.log(table)
    return {**result.to_dict(), "why": why}


def cmd_global(args: argparse.Namespace) -> int:
    settings = spec.build(GlobalConfig, spec.from_args(args, GlobalConfig), "global")
    run_on = engine.from_args(args)
    if args.data:
        data: dict[str, Any] = {"path": args.data, "name": Path(args.data).name, "text_column": args.text_column,
                                "label_column": args.label_column}
    else:
        data = {"split": args.split}
    handle = None
    if run_on.engine == "local" or args.data:
        from model_zoo import load

        handle = load(args.model, device=args.device)
    dataset = load_split(data, handle.label_names if handle is not None else None)
    method, why = pick_method(args.method, args.model, settings.n, signed_methods(handle), run_on.workers)
    if why and not args.quiet:
        print(f"explainer: {why}", file=sys.stderr)
    overrides = parse_overrides(args.config, [method]).get(method) if args.config else None

    def show(done: float, total: float, message: str) -> None:
        if not args.quiet:
            print(f"\r[{done / total:4.0%}] {message:<60}", end="", file=sys.stderr, flush=True)

    result = explain_global(args.model, dataset, method, overrides, settings, compare_with=args.compare_with,
                            handle=handle if run_on.engine == "local" else None, device=args.device,
                            run_on=run_on, use_cache=not args.no_cache, progress=show)
    if not args.quiet:
        print(file=sys.stderr)
    if result is None:  # pragma: no cover - only cached_only returns None
        raise LoupeError("Nothing was explained.")
    print(json.dumps({**result.to_dict(), "why": why}, indent=2) if args.json else result.table())
    return 0


@cli.command("explainers", "global")
def add_cli(subparsers: Any) -> None:
    """Add ``global`` to the ``python -m explainers`` CLI."""
    p = subparsers.add_parser("global", help="word importance aggregated over a split, per class (global "
                                             "explanations), optionally against a second model")
    p.add_argument("--model", default=DEFAULT_MODEL_ID)
    p.add_argument("--split", default="test", choices=list(SPLITS), help="Rotten Tomatoes split (default test)")
    p.add_argument("--data", default=None, metavar="CSV", help="a labelled CSV instead of a Rotten Tomatoes split")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label", help="labels: the model's class names or numbers")
    p.add_argument("--method", default=AUTO, help="a signed explainer (ig, grad_x_input or gxi, ablation, shap, "
                                                  "lime); auto: the most faithful one affordable at this size")
    p.add_argument("--config", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                   help="explainer setting, e.g. ig.n_steps=20 (repeatable)")
    p.add_argument("--compare-with", default=None, metavar="MODEL",
                   help="a second model explained on the same sentences: which words gained or lost importance")
    spec.add_arguments(p, GlobalConfig, scope="global")
    p.add_argument("--device", default="auto")
    engine.add_arguments(p)
    p.add_argument("--no-cache", action="store_true", help="recompute even if cached")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_global)
