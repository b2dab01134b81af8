"""The whole comparison: make every variant, measure it, explain it, and compare its explanations.

Drift is reported per explainer and per variant (``result["drift_rows"]``). The headline drift columns average
only over the explainers that ran on EVERY compared variant (``result["drift_compared_on"]``): int8 passes no
gradients, so a run with IG and SHAP compares all variants on SHAP alone rather than int8 on SHAP and the
others on IG and SHAP. Explanations are computed with the model scoring :data:`DRIFT_BATCH_SIZE` texts per
pass; a variant whose outputs depend on the batch (dynamic int8) is explained again at batch 1
(``row["drift_b1"]``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explainers.compression_report.config import CompressConfig, build_config
from explainers.compression_report.drift import (
    DRIFT_BATCH_SIZE,
    Explained,
    drift_rows,
    drift_summary,
    explain_texts,
    explain_texts_on,
    method_config,
    shared_methods,
)
from model_zoo import engine, load, store
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
from model_zoo.loading import require_own_weights

COLUMNS = ("variant", "accuracy_b1", "accuracy_b32", "f1_macro_b32", "agreement_b1", "agreement_b32", "p50_ms_b1",
           "p95_ms_b1", "p50_ms_b32", "p95_ms_b32", "throughput_per_s", "size_mb", "parameters",
           "sparsity_all_weights", "sparsity_pruned_layers", "peak_memory_mb", "drift_spearman", "drift_top_k",
           "drift_delta_comp")


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
                    cancelled: Callable[[], bool] | None = None,
                    run_on: engine.EngineConfig | dict[str, Any] | None = None) -> dict[str, Any]:
    """Make every variant, measure it, explain it, and return the results table and viewer data.

    Args:
        config: a :class:`CompressConfig` or its dict.
        workdir: where variant folders go (``<workdir>/variants/<name>``); reused when they exist, so an
            interrupted job resumes. None: no folders are kept.
        progress: ``progress(fraction, message)``.
        record: called with each finished row (the job appends it to ``metrics.jsonl``).
        cancelled: polled between steps; when it returns True the run stops with a CompressionError.
        run_on: where the drift sentences are explained (:mod:`model_zoo.engine`; default this process). On Ray
            the original and every saved variant are explained by workers that load their folders; a variant
            without a folder (``save_variants`` off) is explained here.

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
    cfg = build_config(config)
    where = engine.config(run_on)
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
    require_own_weights(cfg.model, "compress")
    attn = "eager" if "attention" in cfg.methods else "sdpa"
    source = load(cfg.model, device=cfg.device, attn_implementation=attn)
    original = make_variant(source, "original")
    variants: list[Variant] = [original]
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

    def explain(v: Variant, folder: str | None, targets: list[int] | None) -> Explained:
        if where.engine != "local" and folder:
            return explain_texts_on(where, folder, texts, cfg.methods, batch_size=DRIFT_BATCH_SIZE, targets=targets,
                                    configs=configs)
        if where.engine != "local":
            note(f"{v.name} has no saved folder for Ray workers to load: explained in this process")
        return explain_texts(at_batch_size(v.handle, DRIFT_BATCH_SIZE), texts, cfg.methods, targets=targets,
                             configs=configs)

    started_ray = where.engine != "local" and engine.start(where)  # one Ray for every model's explanations
    try:
        tick(f"explaining {len(texts)} sentences with the original")
        reference = explain(original, cfg.model, None)
        targets = [a.target for a in next(iter(reference.attributions.values()), [])] or None
        viewer: dict[str, Any] = {"texts": texts[: cfg.n_show], "targets": (targets or [])[: cfg.n_show],
                                  "methods": list(cfg.methods), "attributions": {}, "drift": {},
                                  "batch_size": DRIFT_BATCH_SIZE}
        all_drift_rows: list[dict[str, Any]] = []
        for v in variants:
            if v is not original:
                tick(f"explaining with {v.name}")
            explained = reference if v is original else explain(v, dirs.get(v.name), targets)
            summary = drift_summary(reference, explained, compared_on)
            per_sentence = summary.pop("per_sentence")
            rows[v.name].update(summary, drift_batch_size=DRIFT_BATCH_SIZE)
            if v is not original:
                all_drift_rows += drift_rows(v.name, summary["drift"], DRIFT_BATCH_SIZE)
            if v is not original and outputs_depend_on_batch(v.handle.model):
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
    finally:
        if started_ray:
            engine.stop()
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
    card = store.read_card(folder)
    keep = {k: v for k, v in row.items() if k not in ("compression", "drift", "drift_b1")}
    card.setdefault("compression", {})["metrics"] = keep
    card["compression"]["drift"] = row.get("drift")
    if "drift_b1" in row:
        card["compression"]["drift_b1"] = row["drift_b1"]
    card["metrics"] = {"test": card_test_metrics(row)}
    store.write_card(folder, card)
