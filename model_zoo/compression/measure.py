"""How variants compare: accuracy and agreement at each batch size, latency, size, sparsity and peak memory.

Dynamic int8 computes one activation scale per padded batch, so an int8 model's outputs depend on what else is
in the batch. Accuracy and agreement are measured at each of :data:`EVAL_BATCH_SIZES` (batch 1: one text per
pass, as a typed text is served; batch 32: length-sorted batches, as ``predict_proba`` serves a list) and every
key names its batch size.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from model_zoo.compression.base import Progress, Variant, no_progress
from model_zoo.compression.weights import size_on_disk, weight_bytes, weight_sparsity
from model_zoo.data import TextDataset
from model_zoo.handle import ModelHandle, is_quantized
from model_zoo.params import count_parameters
from model_zoo.training import classification_metrics

EVAL_BATCH_SIZES = (1, 32)  # accuracy/agreement are measured at each; keys end in _b1, _b32


def _batches(handle: ModelHandle, texts: Sequence[str], batch_size: int) -> list[dict[str, torch.Tensor]]:
    out = []
    for start in range(0, len(texts), batch_size):
        enc = handle.tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                               max_length=handle.max_length, return_tensors="pt")
        out.append({k: v.to(handle.device) for k, v in enc.items()})
    return out


def _forward(handle: ModelHandle, batch: dict[str, torch.Tensor]) -> None:
    with torch.inference_mode():
        handle.model(**batch)
    if handle.device.type == "cuda":
        torch.cuda.synchronize()


def benchmark_latency(handles: dict[str, ModelHandle], texts: Sequence[str], batch_sizes: Sequence[int] = (1, 32),
                      repeats: int = 30, warmup: int = 3,
                      progress: Progress | None = None) -> dict[str, dict[str, float]]:
    """Model latency, warm, interleaved across variants in one run (same inputs, same thread count).

    Each round runs every variant once on the same pre-tokenized batch, in a rotated order, so drift in
    machine load hits all variants alike. Tokenization is excluded (it is the same for every variant).

    Returns:
        ``{name: {"p50_ms_b1", "p95_ms_b1", "p50_ms_b32", ..., "throughput_per_s"}}``; throughput is texts
        per second at the largest batch size.
    """
    say = progress or no_progress
    names = list(handles)
    out: dict[str, dict[str, float]] = {n: {} for n in names}
    for bs in batch_sizes:
        pool = [texts[i % len(texts)] for i in range(max(bs * repeats, bs))]
        inputs = {n: _batches(h, pool, bs) for n, h in handles.items()}
        times: dict[str, list[float]] = {n: [] for n in names}
        for n in names:
            for b in inputs[n][:warmup]:
                _forward(handles[n], b)
        rounds = len(inputs[names[0]])
        for r in range(rounds):
            for j in range(len(names)):
                n = names[(r + j) % len(names)]
                t0 = time.perf_counter()
                _forward(handles[n], inputs[n][r])
                times[n].append(time.perf_counter() - t0)
        for n in names:
            ms = np.asarray(times[n]) * 1000
            out[n][f"p50_ms_b{bs}"] = round(float(np.percentile(ms, 50)), 3)
            out[n][f"p95_ms_b{bs}"] = round(float(np.percentile(ms, 95)), 3)
            out[n]["throughput_per_s"] = round(float(bs * len(ms) / (ms.sum() / 1000)), 1)
        say(f"latency at batch {bs}: done")
    return out


def _cpu_forward_peak(handle: ModelHandle, batch: dict[str, torch.Tensor]) -> int:
    """Peak bytes the PyTorch CPU allocator holds during one forward, above what it held before.

    Read from the profiler's public event list (``profile(profile_memory=True).events()``): each op's
    ``self_cpu_memory_usage`` (bytes it allocated minus bytes it freed), summed in start order. That is
    PyTorch's own tensors (activations, workspaces); buffers private to a math library are not seen.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _forward(handle, batch)
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def peak_memory(handle: ModelHandle, texts: Sequence[str], batch_size: int = 32) -> dict[str, float]:
    """Peak memory of inference at ``batch_size``: weights in memory plus the forward pass's peak allocation.

    On CUDA the forward's peak is ``torch.cuda.max_memory_allocated`` over what was allocated before; on the
    CPU the peak the profiler's events record (:func:`_cpu_forward_peak`).
    """
    batch = _batches(handle, list(texts[:batch_size]), batch_size)[0]
    weights = weight_bytes(handle.model)
    if handle.device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        _forward(handle, batch)
        forward_peak = torch.cuda.max_memory_allocated() - before
    else:
        forward_peak = _cpu_forward_peak(handle, batch)
    return {"weights_mb": round(weights / 2**20, 2), "forward_peak_mb": round(forward_peak / 2**20, 2),
            "peak_memory_mb": round((weights + forward_peak) / 2**20, 2)}


def outputs_depend_on_batch(model: nn.Module) -> bool:
    """Whether a text's outputs change with the rest of its batch: dynamic int8 computes one activation
    scale per padded batch (fp32/fp16 outputs change only by rounding)."""
    return is_quantized(model)


def at_batch_size(handle: ModelHandle, batch_size: int) -> ModelHandle:
    """The same model (and lock) serving ``predict_proba`` ``batch_size`` texts per pass, so explainers and
    metrics that call it see that batch composition."""
    return dataclasses.replace(handle, batch_size=int(batch_size), total_passes=0)


def evaluate_predictions(probs: np.ndarray, labels: Sequence[int], reference: np.ndarray | None,
                         n_classes: int) -> dict[str, float]:
    """Accuracy, macro F1 and agreement with the reference (original) predictions."""
    preds = probs.argmax(axis=1)
    m = classification_metrics(np.asarray(labels), preds, n_classes)
    agree = float((preds == reference).mean()) if reference is not None else 1.0
    return {"accuracy": round(m["accuracy"], 4), "f1_macro": round(m["f1_macro"], 4), "agreement": round(agree, 4)}


def measure(variants: Sequence[Variant], test: TextDataset, latency_texts: int = 64, repeats: int = 30,
            batch_sizes: Sequence[int] = EVAL_BATCH_SIZES,
            progress: Progress | None = None) -> dict[str, dict[str, Any]]:
    """Every number of the results table except drift, per variant (the first one is the reference).

    Accuracy, macro F1 and agreement with the reference are measured at each of ``batch_sizes`` (keys
    ``accuracy_b1``, ``agreement_b32``...; agreement compares with the reference at the same batch size),
    because an int8 model's outputs depend on the rest of its batch. ``batch_dependent`` says whether the
    variant's outputs do.

    Args:
        variants: the original first, then the variants, all on the same device.
        test: the evaluation texts (the same for every variant).
        latency_texts: distinct texts cycled through in the latency runs.
        repeats: timed batches per variant and batch size.
        batch_sizes: texts per pass for the accuracy runs (``predict_proba``: length-sorted, padded per batch).
    """
    say = progress or no_progress
    rows: dict[str, dict[str, Any]] = {}
    reference: dict[int, np.ndarray] = {}
    for v in variants:
        say(f"{v.name}: accuracy on {len(test)} test texts at batch size {', '.join(map(str, batch_sizes))}")
        row: dict[str, Any] = {"variant": v.name, "kind": v.spec.kind,
                               "batch_dependent": outputs_depend_on_batch(v.handle.model)}
        for bs in batch_sizes:
            probs = v.handle.predict_proba(test.texts, batch_size=bs)
            reference.setdefault(bs, probs.argmax(axis=1))
            m = evaluate_predictions(probs, test.labels, reference[bs], len(test.label_names))
            row.update({f"{k}_b{bs}": val for k, val in m.items()})
        size, saved_as = size_on_disk(v.handle.model)
        rows[v.name] = {
            **row, "size_mb": round(size / 2**20, 2), "saved_as": saved_as,
            "parameters": count_parameters(v.handle.model).total, **weight_sparsity(v.handle.model),
            **peak_memory(v.handle, test.texts),
        }
    sample = test.texts[:: max(1, len(test) // latency_texts)][:latency_texts]
    latency = benchmark_latency({v.name: v.handle for v in variants}, sample, repeats=repeats, progress=say)
    base = latency[variants[0].name]
    for name, lat in latency.items():
        rows[name].update(lat)
        rows[name]["latency_x_b1"] = round(lat["p50_ms_b1"] / base["p50_ms_b1"], 3)
        rows[name]["latency_x_b32"] = round(lat["p50_ms_b32"] / base["p50_ms_b32"], 3)
    rows[variants[0].name]["threads"] = torch.get_num_threads()
    return rows
