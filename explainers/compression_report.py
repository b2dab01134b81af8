"""Compression report: variants compared on accuracy, latency, size AND explanation drift.

``model_zoo.compression`` makes and measures the variants; this module adds what no compression tool
reports: whether a variant still decides for the same reasons. On N test sentences each variant is
explained with the chosen explainers, for the class the original predicted, and compared with the
original's explanation (Spearman/Kendall of word scores, top-k overlap, change in ERASER AOPC).

Entry points: :func:`run_compression` (in-process), :func:`run_job` (the ``compress`` background job) and
:func:`add_cli` (``python -m model_zoo compress``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explainers import metrics
from explainers.base import Attribution, get
from model_zoo import DEFAULT_MODEL_ID, load
from model_zoo.compression import (
    CompressionError,
    UnsupportedVariantError,
    Variant,
    VariantSpec,
    available_variants,
    make_variant,
    measure,
    parse_variants,
    save_variant,
)
from model_zoo.data import TextDataset, rotten_tomatoes
from model_zoo.handle import ModelHandle

DRIFT_BINS = (0.1, 0.2, 0.5)
COLUMNS = ("variant", "accuracy", "f1_macro", "agreement", "p50_ms_b1", "p95_ms_b1", "p50_ms_b32", "p95_ms_b32",
           "throughput_per_s", "size_mb", "parameters", "sparsity", "peak_memory_mb", "drift_spearman",
           "drift_top_k", "drift_delta_comp")


@dataclass
class CompressConfig:
    """Settings of one compression comparison (the ``compress`` job's config, the CLI's flags)."""

    model: str = field(default=DEFAULT_MODEL_ID, metadata={"help": "Model id or folder"})
    variants: list[Any] = field(default_factory=lambda: ["int8", "prune-50", "distill-3l"],
                                metadata={"help": "Variant names or {name, settings} dicts"})
    methods: list[str] = field(default_factory=lambda: ["ig", "shap"],
                               metadata={"help": "Explainers compared for drift"})
    n_eval: int = field(default=500, metadata={"help": "Test texts for accuracy (0: the whole split)", "min": 0,
                                               "max": 100000})
    n_drift: int = field(default=20, metadata={"help": "Test sentences explained for drift", "min": 1, "max": 500})
    n_show: int = field(default=5, metadata={"help": "Sentences kept for the side-by-side viewer", "min": 0,
                                             "max": 50})
    ig_steps: int = field(default=20, metadata={"help": "IG integration steps", "min": 4, "max": 500})
    shap_max_evals: int = field(default=64, metadata={"help": "SHAP masked texts per sentence", "min": 10,
                                                      "max": 20000})
    repeats: int = field(default=30, metadata={"help": "Timed batches per variant and batch size", "min": 3,
                                               "max": 1000})
    device: str = field(default="cpu", metadata={"help": "cpu (int8) or cuda (fp16/bf16)"})
    save_variants: bool = field(default=True, metadata={"help": "Keep each variant's folder to save it later"})

    def __post_init__(self) -> None:
        if isinstance(self.variants, str):
            self.variants = [v for v in self.variants.split(",") if v.strip()]
        if isinstance(self.methods, str):
            self.methods = [m.strip() for m in self.methods.split(",") if m.strip()]
        for name in self.methods:
            get(name)  # unknown explainer -> ExplainerError
        parse_variants(self.variants)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompressConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise CompressionError(f"Unknown compress setting(s): {', '.join(sorted(unknown))}.")
        return cls(**data)


# --- explanations and drift -------------------------------------------------------------------------
@dataclass
class Explained:
    """One model's explanations of a set of texts, per method, with their faithfulness."""

    attributions: dict[str, list[Attribution]]
    faithfulness: dict[str, list[metrics.Faithfulness]]
    skipped: dict[str, str] = field(default_factory=dict)


def method_config(name: str, ig_steps: int = 20, shap_max_evals: int = 64) -> Any:
    """The explainer's default Config with the report's cheaper settings where they apply."""
    cfg = get(name).Config()
    overrides = {"n_steps": ig_steps, "max_evals": shap_max_evals}
    fields = {f.name for f in dataclasses.fields(cfg)}
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if k in fields})


def _skip_reason(handle: ModelHandle, name: str) -> str | None:
    explainer = get(name)
    if getattr(explainer, "needs_gradients", False) and handle.is_quantized:
        return "dynamic int8 layers pass no gradients, so gradient explainers do not apply"
    if not explainer.supports(handle):
        return f"{explainer.title} does not support this model"
    return None


def explain_texts(handle: ModelHandle, texts: Sequence[str], methods: Sequence[str], *,
                  targets: Sequence[int] | None = None, configs: dict[str, Any] | None = None,
                  progress: Callable[[str], None] | None = None) -> Explained:
    """Explain every text with every method (for ``targets``, default the predicted class) and score
    each explanation's faithfulness (ERASER AOPC over the bins 10/20/50%)."""
    say = progress or (lambda _m: None)
    configs = configs or {}
    out = Explained({}, {})
    for name in methods:
        reason = _skip_reason(handle, name)
        if reason:
            out.skipped[name] = reason
            continue
        explainer = get(name)
        cfg = configs.get(name) or method_config(name)
        attrs = [explainer.explain(handle, t, None if targets is None else int(targets[i]), cfg)
                 for i, t in enumerate(texts)]
        out.attributions[name] = attrs
        out.faithfulness[name] = metrics.faithfulness_many(handle, attrs, bins=DRIFT_BINS, steps=1, random_seeds=())
        say(f"{handle.id}: {name} on {len(texts)} sentences")
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return round(float(np.mean(kept)), 4) if kept else None


def drift_summary(reference: Explained, variant: Explained) -> dict[str, Any]:
    """Per-method mean drift of ``variant`` against ``reference`` (same texts, same targets), per-sentence
    drift records, and the overall means across methods (the table's headline columns).

    A model compared with itself scores Spearman 1.0, top-k overlap 1.0 and AOPC change 0.0 exactly.
    """
    per_method: dict[str, Any] = {}
    per_sentence: dict[str, list[dict[str, Any]]] = {}
    for name, attrs in reference.attributions.items():
        if name not in variant.attributions:
            per_method[name] = {"skipped": variant.skipped.get(name, "not explained")}
            continue
        drifts = [metrics.drift(a, b, fa, fb) for a, b, fa, fb in zip(
            attrs, variant.attributions[name], reference.faithfulness[name], variant.faithfulness[name])]
        per_sentence[name] = [d.to_dict() for d in drifts]
        per_method[name] = {
            "spearman": _mean([d.spearman for d in drifts]), "kendall": _mean([d.kendall for d in drifts]),
            "top_k_overlap": _mean([d.top_k_overlap for d in drifts]),
            "delta_comp_aopc": _mean([d.delta_comp_aopc for d in drifts]),
            "delta_suff_aopc": _mean([d.delta_suff_aopc for d in drifts]),
            "comp_aopc": _mean([f.comp_aopc for f in variant.faithfulness[name]]),
            "flipped": _mean([float(d.prediction_flipped) for d in drifts]), "n": len(drifts),
        }
    done = [m for m in per_method.values() if "skipped" not in m]
    return {
        "drift_spearman": _mean([m["spearman"] for m in done]),
        "drift_top_k": _mean([m["top_k_overlap"] for m in done]),
        "drift_delta_comp": _mean([m["delta_comp_aopc"] for m in done]),
        "drift_delta_suff": _mean([m["delta_suff_aopc"] for m in done]),
        "drift": per_method,
        "per_sentence": per_sentence,
    }


# --- the whole comparison -----------------------------------------------------------------------------
def _eval_split(n: int) -> TextDataset:
    test = rotten_tomatoes("test")
    if not n or n >= len(test):
        return test
    idx = np.linspace(0, len(test) - 1, n).round().astype(int)  # spread over the split, not its first movies
    return TextDataset([test.texts[i] for i in idx], [test.labels[i] for i in idx], test.label_names,
                       f"{test.name}[{n}]")


def _drift_texts(ds: TextDataset, n: int) -> list[str]:
    pool = [t for t in ds.texts if 3 <= len(t.split()) <= 60]
    step = max(1, len(pool) // n)
    return pool[::step][:n]


def _reload(folder: Path, device: str) -> Variant | None:
    """A variant a previous (interrupted) run of the job already made and saved."""
    try:
        handle = load(str(folder), device=device)
    except Exception:  # a half-written folder: make the variant again
        return None
    card = dict(handle.info.get("compression") or {})
    return Variant(folder.name, VariantSpec.parse(card.get("settings") or folder.name), handle, card)


def run_compression(config: CompressConfig | dict[str, Any], workdir: Path | None = None, *,
                    progress: Callable[[float, str], None] | None = None,
                    record: Callable[[dict[str, Any]], None] | None = None,
                    cancelled: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Make every variant, measure it, explain it, and return the results table and viewer data.

    Args:
        config: a :class:`CompressConfig` or its dict.
        workdir: where variant folders go (``<workdir>/variants/<name>``); reused when they exist, so an
            interrupted job resumes. None: no folders are kept.
        progress: ``progress(fraction, message)``.
        record: called with each finished row (the job appends it to ``metrics.jsonl``).
        cancelled: polled between steps; when it returns True the run stops with a CompressionError.

    Returns:
        ``{"rows": [...one per variant, original first...], "columns", "errors", "viewer", "variant_dirs",
        "model", "device", "threads", "config", "seconds"}``; ``viewer`` holds the texts, targets, and
        ``attributions[variant][method]`` (``Attribution.to_dict(extras=False)``) for ``n_show`` sentences,
        and ``drift[variant][method]``: per-sentence drift records.
    """
    cfg = config if isinstance(config, CompressConfig) else CompressConfig.from_dict(config)
    started = time.perf_counter()
    specs = parse_variants(cfg.variants)
    n_steps = 4 + 2 * len(specs)
    step = [0]

    def tick(message: str) -> None:
        if cancelled is not None and cancelled():
            raise CompressionError("Cancelled.")
        step[0] += 1
        if progress is not None:
            progress(min(step[0], n_steps) / n_steps, message)

    def note(message: str) -> None:
        if progress is not None:
            progress(min(step[0], n_steps) / n_steps, message)

    tick(f"loading {cfg.model}")
    attn = "eager" if "attention" in cfg.methods else "sdpa"
    source = load(cfg.model, device=cfg.device, attn_implementation=attn)
    variants: list[Variant] = [make_variant(source, "original")]
    errors: dict[str, str] = {}
    dirs: dict[str, str] = {}
    for spec in specs:
        tick(f"making {spec.name}")
        folder = workdir / "variants" / spec.name if workdir is not None else None
        reused = _reload(folder, cfg.device) if folder is not None and (folder / "loupe.json").exists() else None
        try:
            variant = reused or make_variant(source, spec, progress=note)
        except UnsupportedVariantError as err:
            errors[spec.name] = str(err)
            continue
        if folder is not None and cfg.save_variants and reused is None:
            try:
                save_variant(variant, folder)
            except CompressionError as err:
                errors[spec.name] = f"made and measured, but not saved: {err}"
        if folder is not None and (folder / "loupe.json").exists():
            dirs[variant.name] = str(folder)
        variants.append(variant)

    test = _eval_split(cfg.n_eval)
    tick(f"accuracy, size, memory and latency on {len(test)} test texts")
    rows = measure(variants, test, repeats=cfg.repeats)

    texts = _drift_texts(test, cfg.n_drift)
    configs = {m: method_config(m, cfg.ig_steps, cfg.shap_max_evals) for m in cfg.methods}
    tick(f"explaining {len(texts)} sentences with the original")
    reference = explain_texts(source, texts, cfg.methods, configs=configs)
    targets = [a.target for a in next(iter(reference.attributions.values()), [])] or None
    viewer: dict[str, Any] = {"texts": texts[: cfg.n_show], "targets": (targets or [])[: cfg.n_show],
                              "methods": list(cfg.methods), "attributions": {}, "drift": {}}
    for v in variants:
        if v.name != "original":
            tick(f"explaining with {v.name}")
        explained = reference if v.name == "original" else explain_texts(v.handle, texts, cfg.methods,
                                                                          targets=targets, configs=configs)
        summary = drift_summary(reference, explained)
        per_sentence = summary.pop("per_sentence")
        rows[v.name].update(summary)
        rows[v.name]["compression"] = {k: val for k, val in v.card.items() if k != "settings"}
        viewer["attributions"][v.name] = {m: [a.to_dict(extras=False) for a in attrs[: cfg.n_show]]
                                          for m, attrs in explained.attributions.items()}
        viewer["drift"][v.name] = {m: recs[: cfg.n_show] for m, recs in per_sentence.items()}
        if record is not None:
            record({"row": rows[v.name]})
        folder_name = dirs.get(v.name)
        if folder_name:
            save_variant_metrics(Path(folder_name), rows[v.name])
    tick("done")
    return {
        "model": cfg.model, "device": str(source.device), "threads": torch.get_num_threads(),
        "config": dataclasses.asdict(cfg), "columns": list(COLUMNS), "rows": [rows[v.name] for v in variants],
        "errors": errors, "viewer": viewer, "variant_dirs": dirs, "available_variants":
        available_variants(source.device), "eval_texts": len(test), "drift_texts": len(texts),
        "seconds": round(time.perf_counter() - started, 1),
    }


def save_variant_metrics(folder: Path, row: dict[str, Any]) -> None:
    """Put a variant's measured row (minus bulky fields) into its saved folder's card."""
    from model_zoo import store

    card = store.read_card(folder)
    keep = {k: v for k, v in row.items() if k not in ("compression", "drift")}
    card.setdefault("compression", {})["metrics"] = keep
    card["compression"]["drift"] = row.get("drift")
    card["metrics"] = {"test": {k: row[k] for k in ("accuracy", "f1_macro") if k in row}}
    store.write_card(folder, card)


def run_job(ctx: Any) -> dict[str, Any]:
    """The ``compress`` background job: ``ctx.config`` is a :class:`CompressConfig` dict."""
    def progress(frac: float, message: str) -> None:
        ctx.progress(frac, 1.0, message)
        ctx.log(message)

    return run_compression(ctx.config, ctx.dir, progress=progress, record=ctx.metric, cancelled=ctx.cancelled)


# --- CLI ---------------------------------------------------------------------------------------------------
def _cell(value: Any, column: str) -> str:
    if value is None:
        return "-"
    if column == "parameters":
        return f"{value / 1e6:.2f}M"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def format_table(result: dict[str, Any]) -> str:
    """The results table as aligned text (one row per variant, original first)."""
    heads = {"variant": "variant", "accuracy": "acc", "f1_macro": "F1", "agreement": "agree",
             "p50_ms_b1": "p50 b1 ms", "p95_ms_b1": "p95 b1 ms", "p50_ms_b32": "p50 b32 ms",
             "p95_ms_b32": "p95 b32 ms", "throughput_per_s": "texts/s", "size_mb": "size MB",
             "parameters": "params", "sparsity": "sparsity", "peak_memory_mb": "peak MB",
             "drift_spearman": "drift rho", "drift_top_k": "top-k", "drift_delta_comp": "d comp"}
    cols = list(result.get("columns") or COLUMNS)
    table = [[heads.get(c, c) for c in cols]] + [[_cell(r.get(c), c) for c in cols] for r in result["rows"]]
    widths = [max(len(r[i]) for r in table) for i in range(len(cols))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in table]
    for name, err in (result.get("errors") or {}).items():
        lines.append(f"{name}: not made: {err}")
    return "\n".join(lines)


def cmd_compress(args: argparse.Namespace) -> int:
    cfg = CompressConfig(model=args.model, variants=args.variants, methods=args.methods, n_eval=args.n_eval,
                         n_drift=args.n_drift, repeats=args.repeats, device=args.device,
                         save_variants=args.out is not None)
    workdir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="loupe-compress-"))
    quiet = args.json or args.quiet
    try:
        result = run_compression(cfg, workdir, progress=None if quiet else lambda f, m: print(
            f"[{f:4.0%}] {m}", file=sys.stderr, flush=True))
    finally:
        if args.out is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(format_table(result))
    return 0


def add_cli(subparsers: Any) -> None:
    """Add ``compress`` to ``python -m model_zoo``."""
    p = subparsers.add_parser("compress", help="make compressed variants and compare accuracy, speed, size, drift")
    p.add_argument("--model", default=DEFAULT_MODEL_ID)
    p.add_argument("--variants", default="int8,prune-50,distill-3l",
                   help="comma-separated: int8, fp16, bf16, prune-<pct>, layers-<n>, distill-<n>l")
    p.add_argument("--methods", default="ig,shap", help="explainers compared for drift")
    p.add_argument("--n-eval", type=int, default=500, help="test texts for accuracy (0: all)")
    p.add_argument("--n-drift", type=int, default=20, help="sentences explained for drift")
    p.add_argument("--repeats", type=int, default=30, help="timed batches per variant and batch size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="keep the variant folders here (default: discarded)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_compress)
