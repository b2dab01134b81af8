"""The ``compress`` background job and the ``python -m explainers compress`` command, with its text table."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from explainers.compression_report.config import CompressConfig, build_config
from explainers.compression_report.run import COLUMNS, run_compression
from model_zoo import cli, engine, jobs
from model_zoo import spec as config_spec


@jobs.register_kind("compress", "a compression job")
def run_job(ctx: Any) -> dict[str, Any]:
    """The ``compress`` background job: ``ctx.config`` is a :class:`CompressConfig` dict (and optionally
    ``engine``, an :class:`~model_zoo.engine.EngineConfig` dict: where the drift sentences are explained)."""
    def progress(frac: float, message: str) -> None:
        ctx.progress(frac, 1.0, message)
        ctx.log(message)

    config = dict(ctx.config)
    run_on = config.pop("engine", None)
    return run_compression(config, ctx.dir, progress=progress, record=ctx.metric, cancelled=ctx.cancelled,
                           run_on=run_on)


# --- the text table -----------------------------------------------------------------------------------------
HEADS = {"variant": "variant", "accuracy_b1": "acc@b1", "accuracy_b32": "acc@b32", "f1_macro_b32": "F1@b32",
         "agreement_b1": "agree@b1", "agreement_b32": "agree@b32", "p50_ms_b1": "p50 b1 ms", "p95_ms_b1": "p95 b1 ms",
         "p50_ms_b32": "p50 b32 ms", "p95_ms_b32": "p95 b32 ms", "throughput_per_s": "texts/s", "size_mb": "size MB",
         "parameters": "params", "sparsity_all_weights": "zeros/all", "sparsity_pruned_layers": "zeros/pruned",
         "peak_memory_mb": "peak MB", "drift_spearman": "drift rho", "drift_top_k": "top-k",
         "drift_delta_comp": "d comp"}


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "-"
    if column == "parameters":
        return f"{value / 1e6:.2f}M"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def format_table(result: dict[str, Any]) -> str:
    """The results table as text (one row per variant, original first), then what it was measured over and the
    drift of every explainer."""
    cols = list(result.get("columns") or COLUMNS)
    lines = [cli.table(([_cell(r.get(c), c) for c in cols] for r in result["rows"]), [HEADS.get(c, c) for c in cols])]
    lines += _notes(result)
    for name, err in (result.get("errors") or {}).items():
        lines.append(f"{name}: not made: {err}")
    return "\n".join(lines)


def _notes(result: dict[str, Any]) -> list[str]:
    """What the table's columns were measured over, and the drift of every explainer."""
    shared = result.get("drift_compared_on")
    out = [f"drift columns: mean over {', '.join(shared)} (the explainers every variant ran), at batch "
           f"{result.get('drift_batch_size')}" if shared else
           "drift columns: none (no explainer ran on every variant; see drift per explainer)"]
    denominators = next((r.get("sparsity_denominators") for r in result["rows"]), None)
    if denominators:
        out.append(f"zeros/all: over {denominators['all_weights']}; zeros/pruned: over {denominators['pruned_layers']} "
                   "(the original's counts; fewer-layer variants have fewer)")
    out.append("@b1 / @b32: one text per pass / 32 length-sorted texts per pass (int8 activation scales are "
               "per batch)")
    for rec in result.get("drift_rows") or []:
        head = f"  {rec['variant']} / {rec['explainer']} @b{rec['batch_size']}: "
        if "skipped" in rec:
            out.append(head + f"skipped ({rec['skipped']})")
        else:
            out.append(head + ", ".join(f"{k} {_cell(rec.get(k), k)}" for k in
                                        ("spearman", "top_k_overlap", "delta_comp_aopc", "flipped", "n")))
    return out


# --- the command line --------------------------------------------------------------------------------------
def cmd_compress(args: argparse.Namespace) -> int:
    values = config_spec.from_args(args, CompressConfig, skip=("save_variants",))
    run_on = engine.from_args(args)
    # Ray workers load the variants from their folders, so they are saved (in a temporary folder without --out)
    cfg = build_config({**values, "save_variants": args.out is not None or run_on.engine != "local"})
    workdir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="loupe-compress-"))
    quiet = args.json or args.quiet
    try:
        result = run_compression(cfg, workdir, progress=None if quiet else lambda f, m: print(
            f"[{f:4.0%}] {m}", file=sys.stderr, flush=True), run_on=run_on)
    finally:
        if args.out is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(format_table(result))
    return 0


@cli.command("explainers", "compress")
def add_cli(subparsers: Any) -> None:
    """Add ``compress`` to ``python -m explainers``: one flag per :class:`CompressConfig` setting, and ``--out``,
    ``--json``, ``--quiet``."""
    p = subparsers.add_parser("compress", help="make compressed variants and compare accuracy, speed, size, drift")
    config_spec.add_arguments(p, CompressConfig, skip=("save_variants",), scope="compress", default_none=True)
    p.add_argument("--out", default=None, help="keep the variant folders here (default: discarded)")
    engine.add_arguments(p)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_compress)
