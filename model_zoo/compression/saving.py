"""Saving a made variant as a store-style folder that ``model_zoo.load`` reads back, and publishing it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from model_zoo import store
from model_zoo.compression.base import Variant
from model_zoo.compression.measure import EVAL_BATCH_SIZES


def card_test_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The model card's ``metrics.test`` from a measured row: accuracy and macro F1 at batch 1 (one text per
    pass, as the dashboard predicts a typed text), the batch-32 figures beside them, and the batch size said.
    A dict with plain ``accuracy``/``f1_macro`` is passed through."""
    if "accuracy_b1" not in metrics:
        return {k: metrics[k] for k in ("accuracy", "f1_macro") if k in metrics}
    out: dict[str, Any] = {"accuracy": metrics["accuracy_b1"], "f1_macro": metrics.get("f1_macro_b1"),
                           "batch_size": 1}
    for bs in EVAL_BATCH_SIZES[1:]:
        out.update({f"{k}_b{bs}": metrics.get(f"{k}_b{bs}") for k in ("accuracy", "f1_macro")})
    return out


def save_variant(variant: Variant, folder: Path, source_folder: Path | None = None,
                 metrics: dict[str, Any] | None = None) -> Path:
    """Write ``variant`` as a store-style folder that ``model_zoo.load`` reads back.

    The variant's kind writes the weights (:meth:`~model_zoo.compression.base.VariantKind.save_weights`: fp32
    safetensors; an int8 variant reuses its source's fp32 weights and ``load`` quantises again) and adds the
    card entries that change how it loads (:meth:`~model_zoo.compression.base.VariantKind.card_entries`).

    Args:
        folder: where to write (created; replaced if it exists).
        source_folder: the source model's folder, whose fp32 weights an int8 variant reuses; without it the
            variant's handle must still hold an fp32 model, which int8 handles do not.
        metrics: a measured row (or ``{"accuracy", "f1_macro"}``) for the card.
    """
    kind = variant.spec.variant_kind
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    kind.save_weights(variant, folder, source_folder)
    handle = variant.handle
    source_card = {k: v for k, v in handle.info.items() if k not in ("id", "source", "path", "compression",
                                                                     "head_untrained", "architecture")}
    card = {**source_card, "id": folder.name, "labels": [handle.labels[i] for i in range(handle.num_labels)],
            "method": variant.card.get("method", variant.spec.kind), "compression": dict(variant.card),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    card.pop("metrics", None)
    if metrics:
        card["compression"]["metrics"] = metrics
        card["metrics"] = {"test": card_test_metrics(metrics)}
    card.update(kind.card_entries(variant))
    stored_as = kind.stored_as(variant)
    if stored_as:
        card["compression"]["stored_as"] = stored_as
    store.write_card(folder, card)
    return folder


def publish_variant(folder: Path, model_id: str) -> Path:
    """Copy a saved variant folder into the model store as ``model_id`` (atomically)."""
    return store.publish_copy(folder, model_id)
