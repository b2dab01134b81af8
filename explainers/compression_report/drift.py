"""Explanation drift: whether a compressed variant still decides for the same reasons as the original.

On the same sentences each model is explained for the class the original predicted, and each variant's
explanation is compared with the original's (Spearman/Kendall of word scores, top-k overlap, change in ERASER
AOPC). Headline means average only over the explainers every compared variant ran (int8 passes no gradients).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explainers import metrics
from explainers.base import Attribution, get, make_config
from model_zoo import engine
from model_zoo.compression import at_batch_size
from model_zoo.handle import ModelHandle

DRIFT_BINS = (0.1, 0.2, 0.5)
DRIFT_BATCH_SIZE = 32  # texts per model pass while explaining; batch-dependent variants also at 1
DRIFT_STATS = ("spearman", "kendall", "top_k_overlap", "delta_comp_aopc", "delta_suff_aopc", "comp_aopc", "flipped",
               "n")
# Config fields by which explainers batch their own model calls (SHAP's masked texts, ablation's copies, IG's
# steps); the rest go through ``handle.predict_proba``, batched at ``handle.batch_size``.
BATCH_FIELDS = ("batch_size", "perturbations_per_eval", "internal_batch_size")


@dataclass
class Explained:
    """One model's explanations of a set of texts, per method, with their faithfulness."""

    attributions: dict[str, list[Attribution]]
    faithfulness: dict[str, list[metrics.Faithfulness]]
    skipped: dict[str, str] = field(default_factory=dict)


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


def _faithfulness(d: dict[str, Any]) -> metrics.Faithfulness:
    """A :class:`~explainers.metrics.Faithfulness` from its ``to_dict`` (lists back to tuples)."""
    d = dict(d)
    base = d.pop("baseline", None)
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return metrics.Faithfulness(**fields, baseline=_faithfulness(base) if base else None)


def drift_task(handle: ModelHandle, batch: list[Any], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The engine task: explain ``[text, target]`` items as :func:`explain_texts` does, at the report's batch size.

    Returns per item ``{"attributions": {method: dict}, "faithfulness": {method: dict}, "skipped": {...}}``.
    """
    configs = {m: make_config(m, c) for m, c in params["configs"].items()}
    texts = [str(t) for t, _ in batch]
    targets = [int(t) for _, t in batch] if all(t is not None for _, t in batch) else None
    done = explain_texts(at_batch_size(handle, int(params["batch_size"])), texts, params["methods"],
                         targets=targets, configs=configs)
    return [{"attributions": {m: a[i].to_dict(extras=False) for m, a in done.attributions.items()},
             "faithfulness": {m: f[i].to_dict() for m, f in done.faithfulness.items()},
             "skipped": done.skipped} for i in range(len(texts))]


def explain_texts_on(run_on: engine.EngineConfig, model: str, texts: Sequence[str], methods: Sequence[str], *,
                     batch_size: int, targets: Sequence[int] | None = None,
                     configs: dict[str, Any] | None = None) -> Explained:
    """:func:`explain_texts` with the model at ``model`` (a store id or folder), its sentences spread over the
    engine's workers (``run_on.batch_size`` sentences per task).

    The explanations are the same as in this process; the faithfulness of a variant whose outputs depend on the
    batch (dynamic int8) may differ by its rounding, as its perturbed texts are batched per task.
    """
    items = [[t, None if targets is None else int(targets[i])] for i, t in enumerate(texts)]
    params = {"methods": list(methods), "batch_size": batch_size,
              "configs": {m: dataclasses.asdict(c) for m, c in (configs or {}).items()}}
    out = Explained({}, {})
    for _, rec in engine.run(drift_task, items, params, model=model, engine=run_on):
        out.skipped.update(rec["skipped"])
        for m, a in rec["attributions"].items():
            out.attributions.setdefault(m, []).append(Attribution.from_dict(a))
        for m, f in rec["faithfulness"].items():
            out.faithfulness.setdefault(m, []).append(_faithfulness(f))
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
