"""Compression report: variants compared on accuracy, latency, size AND explanation drift.

``model_zoo.compression`` makes and measures the variants; this module adds what no compression tool
reports: whether a variant still decides for the same reasons. On N test sentences each variant is
explained with the chosen explainers, for the class the original predicted, and compared with the
original's explanation (Spearman/Kendall of word scores, top-k overlap, change in ERASER AOPC).

Drift is reported per explainer and per variant (``result["drift_rows"]``). The headline drift columns
average only over the explainers that ran on EVERY compared variant (``result["drift_compared_on"]``):
int8 passes no gradients, so a run with IG and SHAP compares all variants on SHAP alone rather than int8
on SHAP and the others on IG and SHAP. Explanations are computed with the model scoring
:data:`DRIFT_BATCH_SIZE` texts per pass; a variant whose outputs depend on the batch (dynamic int8) is
explained again at batch 1 (``row["drift_b1"]``).

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
from model_zoo import DEFAULT_MODEL_ID, cli, jobs, load
from model_zoo.compression import (
    EVAL_BATCH_SIZES,
    CompressionError,
    UnsupportedVariantError,
    Variant,
    VariantSpec,
    at_batch_size,
    available_variants,
    card_test_metrics,
    make_variant,
    measure,
    outputs_depend_on_batch,
    parse_variants,
    save_variant,
)
from model_zoo.data import TextDataset, rotten_tomatoes
from model_zoo.handle import ModelHandle

DRIFT_BINS = (0.1, 0.2, 0.5)
DRIFT_BATCH_SIZE = 32  # texts per model pass while explaining; batch-dependent variants also at 1
COLUMNS = ("variant", "accuracy_b1", "accuracy_b32", "f1_macro_b32", "agreement_b1", "agreement_b32", "p50_ms_b1",
           "p95_ms_b1", "p50_ms_b32", "p95_ms_b32", "throughput_per_s", "size_mb", "parameters",
           "sparsity_all_weights", "sparsity_pruned_layers", "peak_memory_mb", "drift_spearman", "drift_top_k",
           "drift_delta_comp")
DRIFT_STATS = ("spearman", "kendall", "top_k_overlap", "delta_comp_aopc", "delta_suff_aopc", "comp_aopc", "flipped",
               "n")


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


# Config fields by which explainers batch their own model calls (SHAP's masked texts, ablation's copies, IG's
# steps); the rest go through ``handle.predict_proba``, batched at ``handle.batch_size``.
BATCH_FIELDS = ("batch_size", "perturbations_per_eval", "internal_batch_size")


def method_config(name: str, ig_steps: int = 20, shap_max_evals: int = 64, batch_size: int | None = None) -> Any:
    """The explainer's default Config with the report's cheaper settings where they apply.

    Args:
        batch_size: when given, the explainer's own batching fields (:data:`BATCH_FIELDS`) are set to it,
            so that with :func:`~model_zoo.compression.at_batch_size` every model pass holds at most this
            many texts.
    """
    cfg = get(name).Config()
    overrides: dict[str, Any] = {"n_steps": ig_steps, "max_evals": shap_max_evals}
    if batch_size is not None:
        overrides.update(dict.fromkeys(BATCH_FIELDS, int(batch_size)))
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


def shared_methods(handles: Sequence[ModelHandle], methods: Sequence[str]) -> list[str]:
    """The explainers of ``methods`` that run on every one of ``handles`` (int8 ones take no gradients)."""
    return [m for m in methods if all(_skip_reason(h, m) is None for h in handles)]


def drift_summary(reference: Explained, variant: Explained, compared_on: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-method mean drift of ``variant`` against ``reference`` (same texts, same targets), per-sentence
    drift records, and headline means over the explainers in ``compared_on``.

    Args:
        compared_on: the explainers the headline averages over; default every explainer the reference ran.
            When the variant lacks any of them the headline is None, never a mean over fewer explainers:
            a mean over a different set per variant compares unlike things.

    Returns:
        ``{"drift_spearman", "drift_top_k", "drift_delta_comp", "drift_delta_suff", "drift_compared_on",
        "drift": {method: stats or {"skipped": reason}}, "per_sentence": {method: [records]}}``. A model
        compared with itself scores Spearman 1.0, top-k overlap 1.0 and AOPC change 0.0 exactly.
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
    names = list(reference.attributions) if compared_on is None else list(compared_on)
    done = [per_method.get(n) or {"skipped": "not explained"} for n in names]
    complete = bool(names) and all("skipped" not in m for m in done)

    def headline(key: str) -> float | None:
        return _mean([m[key] for m in done]) if complete else None

    return {
        "drift_spearman": headline("spearman"), "drift_top_k": headline("top_k_overlap"),
        "drift_delta_comp": headline("delta_comp_aopc"), "drift_delta_suff": headline("delta_suff_aopc"),
        "drift_compared_on": names if complete else [],
        "drift": per_method,
        "per_sentence": per_sentence,
    }


def drift_rows(variant: str, per_method: dict[str, Any], batch_size: int) -> list[dict[str, Any]]:
    """One flat record per explainer of a variant's drift (or why it was skipped), saying the batch size."""
    out = []
    for method, stats in per_method.items():
        rec: dict[str, Any] = {"variant": variant, "explainer": method, "batch_size": batch_size}
        if "skipped" in stats:
            rec["skipped"] = stats["skipped"]
        else:
            rec.update({k: stats.get(k) for k in DRIFT_STATS})
        out.append(rec)
    return out


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
        "model", "device", "threads", "config", "seconds", "eval_batch_sizes", "drift_batch_size",
        "drift_compared_on", "drift_rows"}``. Accuracy and agreement keys end in their batch size
        (``accuracy_b1``); the headline drift columns average over ``drift_compared_on`` only, at
        ``drift_batch_size``; ``drift_rows`` has one record per variant, explainer and batch size (int8
        at batch 1 too). ``viewer`` holds the texts, targets, and
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

    def configs_at(batch_size: int) -> dict[str, Any]:
        return {m: method_config(m, cfg.ig_steps, cfg.shap_max_evals, batch_size) for m in cfg.methods}

    configs = configs_at(DRIFT_BATCH_SIZE)
    compared_on = shared_methods([v.handle for v in variants], cfg.methods)
    tick(f"explaining {len(texts)} sentences with the original")
    reference = explain_texts(at_batch_size(source, DRIFT_BATCH_SIZE), texts, cfg.methods, configs=configs)
    targets = [a.target for a in next(iter(reference.attributions.values()), [])] or None
    viewer: dict[str, Any] = {"texts": texts[: cfg.n_show], "targets": (targets or [])[: cfg.n_show],
                              "methods": list(cfg.methods), "attributions": {}, "drift": {},
                              "batch_size": DRIFT_BATCH_SIZE}
    all_drift_rows: list[dict[str, Any]] = []
    for v in variants:
        if v.name != "original":
            tick(f"explaining with {v.name}")
        explained = reference if v.name == "original" else explain_texts(
            at_batch_size(v.handle, DRIFT_BATCH_SIZE), texts, cfg.methods, targets=targets, configs=configs)
        summary = drift_summary(reference, explained, compared_on)
        per_sentence = summary.pop("per_sentence")
        rows[v.name].update(summary, drift_batch_size=DRIFT_BATCH_SIZE)
        if v.name != "original":
            all_drift_rows += drift_rows(v.name, summary["drift"], DRIFT_BATCH_SIZE)
        if v.name != "original" and outputs_depend_on_batch(v.handle.model):
            note(f"explaining with {v.name} at batch size 1 (its outputs depend on the batch)")
            at_one = explain_texts(at_batch_size(v.handle, 1), texts, cfg.methods, targets=targets,
                                   configs=configs_at(1))
            rows[v.name]["drift_b1"] = drift_summary(reference, at_one, compared_on)["drift"]
            all_drift_rows += drift_rows(v.name, rows[v.name]["drift_b1"], 1)
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
        "eval_batch_sizes": list(EVAL_BATCH_SIZES), "drift_batch_size": DRIFT_BATCH_SIZE,
        "drift_compared_on": compared_on, "drift_rows": all_drift_rows,
        "seconds": round(time.perf_counter() - started, 1),
    }


def save_variant_metrics(folder: Path, row: dict[str, Any]) -> None:
    """Put a variant's measured row (minus bulky fields) into its saved folder's card."""
    from model_zoo import store

    card = store.read_card(folder)
    keep = {k: v for k, v in row.items() if k not in ("compression", "drift", "drift_b1")}
    card.setdefault("compression", {})["metrics"] = keep
    card["compression"]["drift"] = row.get("drift")
    if "drift_b1" in row:
        card["compression"]["drift_b1"] = row["drift_b1"]
    card["metrics"] = {"test": card_test_metrics(row)}
    store.write_card(folder, card)


@jobs.register_kind("compress", "a compression job")
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
    """The results table as aligned text (one row per variant, original first), then drift per explainer."""
    heads = {"variant": "variant", "accuracy_b1": "acc@b1", "accuracy_b32": "acc@b32", "f1_macro_b32": "F1@b32",
             "agreement_b1": "agree@b1", "agreement_b32": "agree@b32", "p50_ms_b1": "p50 b1 ms",
             "p95_ms_b1": "p95 b1 ms", "p50_ms_b32": "p50 b32 ms", "p95_ms_b32": "p95 b32 ms",
             "throughput_per_s": "texts/s", "size_mb": "size MB", "parameters": "params",
             "sparsity_all_weights": "zeros/all", "sparsity_pruned_layers": "zeros/pruned",
             "peak_memory_mb": "peak MB", "drift_spearman": "drift rho", "drift_top_k": "top-k",
             "drift_delta_comp": "d comp"}
    cols = list(result.get("columns") or COLUMNS)
    table = [[heads.get(c, c) for c in cols]] + [[_cell(r.get(c), c) for c in cols] for r in result["rows"]]
    widths = [max(len(r[i]) for r in table) for i in range(len(cols))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in table]
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


@cli.command("explainers", "compress")
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
