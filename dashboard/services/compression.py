"""Compression seen from the app: which variants this device can make, their settings, starting a comparison,
and saving a variant to the store."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dashboard.services.session import owner
from explainers.compression_report import CompressConfig
from model_zoo import engine, jobs, resolve_device, spec
from model_zoo.compression import VariantSpec, available_variants, publish_variant
from model_zoo.loading import require_own_weights
from model_zoo.spec import Setting


def device_type() -> str:
    """The kind of device this server computes on (``cpu``, ``cuda``, ``mps``)."""
    return resolve_device().type


def variant_kinds() -> list[str]:
    """The kinds of variant this server's device can make, in registry order (no fp16/bf16 on a CPU)."""
    return available_variants(resolve_device())


def variant_settings() -> dict[str, Setting]:
    """name -> spec of every setting of a variant (:class:`VariantSpec`)."""
    return {s.name: s for s in spec.settings(VariantSpec)}


def start_compression(config: dict[str, Any], run_on: dict[str, Any] | None = None) -> str:
    """Check the settings (refused here, not minutes later in the job) and start the comparison; its job id.

    Args:
        config: the ``compress`` job's settings (:class:`CompressConfig` fields); the device is this server's
            (MPS runs on the CPU).
        run_on: where the drift sentences are explained (:class:`model_zoo.engine.EngineConfig` as a dict).

    Raises:
        LoupeError: a setting is refused.
    """
    device = device_type()
    config = {**config, "device": device if device != "mps" else "cpu"}
    require_own_weights(spec.build(CompressConfig, config, "compress").model, "compress")
    return jobs.start("compress", {**config, "engine": dataclasses.asdict(engine.config(run_on))}, owner=owner())


def save_variant(folder: str, model_id: str) -> None:
    """Copy a variant a comparison made into the store as ``model_id``; raises ``LoupeError`` if it cannot."""
    publish_variant(Path(folder), model_id)
