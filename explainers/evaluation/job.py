"""The evaluation as a background job (kind ``evaluate``) and as ``python -m explainers evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from explainers import DEFAULT_METHODS
from explainers.base import get, make_config
from explainers.evaluation.run import SANITY_N, evaluate
from explainers.metrics import RANDOM_SEEDS
from model_zoo import DEFAULT_MODEL_ID, LoupeError, cli, engine, jobs, spec


def _methods(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(m).strip() for m in items if str(m).strip()]


@jobs.register_kind("evaluate", "an evaluation job")
def run_job(ctx: Any) -> dict[str, Any]:
    """The ``evaluate`` background job. Config: model, split, n, methods, configs (and optional device, seeds,
    engine: an :class:`~model_zoo.engine.EngineConfig` as a dict).

    Returns:
        The report as a dict (written as the job's ``result.json``); ``table.txt`` goes beside it.
    """
    cfg = dict(ctx.config)
    ctx.log(f"evaluate: {cfg}")
    report = evaluate(
        model=str(cfg.get("model") or DEFAULT_MODEL_ID), split=str(cfg.get("split", "test")), n=int(cfg.get("n", 100)),
        methods=_methods(cfg.get("methods") or DEFAULT_METHODS), configs=cfg.get("configs") or {},
        device=str(cfg.get("device", "auto")), random_seeds=tuple(cfg.get("random_seeds", RANDOM_SEEDS)),
        sanity_n=int(cfg.get("sanity_n", SANITY_N)), run_on=engine.config(cfg.get("engine")),
        progress=ctx.progress, cancelled=ctx.cancelled,
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
                      run_on=engine.from_args(args), progress=show)
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
    engine.add_arguments(p)
    p.add_argument("--no-cache", action="store_true", help="recompute even if cached")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_evaluate)
