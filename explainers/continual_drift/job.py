"""The ``forgetting`` background job: a continual run (:func:`model_zoo.continual.run_continual`) that also
explains the first task after every step (:class:`~explainers.continual_drift.drift.DriftObserver`).

Its config is ``{"continual": ContinualConfig dict, "drift": DriftConfig dict}``.
"""

from __future__ import annotations

from typing import Any

from explainers.continual_drift.drift import DriftObserver, build_drift_config
from model_zoo import jobs
from model_zoo.continual import ContinualConfig, run_continual, validate_config

KIND = "forgetting"


def job_config(continual: ContinualConfig | dict[str, Any], drift: Any = None) -> dict[str, Any]:
    """The job's JSON config, both parts checked (each problem a LoupeError saying what to change)."""
    cfg = continual if isinstance(continual, ContinualConfig) else ContinualConfig.from_dict(continual)
    return {"continual": validate_config(cfg).to_dict(), "drift": dict(vars(build_drift_config(drift)))}


@jobs.register_kind(KIND, "a continual fine-tuning job")
def run_job(ctx: jobs.JobContext) -> dict[str, Any]:
    """Train the sequence with each strategy and measure explanation drift on the first task."""
    observer = DriftObserver(build_drift_config(ctx.config.get("drift")))
    result = run_continual(ctx.config["continual"], ctx, observer)
    return {**result, "drift_config": ctx.config.get("drift")}


def start_job(continual: ContinualConfig | dict[str, Any], drift: Any = None, owner: str | None = None) -> str:
    """Check both parts and start the job in the background; its id."""
    return jobs.start(KIND, job_config(continual, drift), owner=owner)
