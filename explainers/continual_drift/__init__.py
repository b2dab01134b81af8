"""Continual fine-tuning, seen by the explainers: whether a model that learned new tasks still explains the
first task the same way (:mod:`.drift`), and the ``forgetting`` job that trains the sequence and measures it
(:mod:`.job`). The training itself is :mod:`model_zoo.continual`."""

from explainers.continual_drift.drift import (
    SCOPE,
    DriftConfig,
    DriftObserver,
    build_drift_config,
    changed_words,
    summarise,
)
from explainers.continual_drift.job import KIND, job_config, run_job, start_job

__all__ = ["KIND", "SCOPE", "DriftConfig", "DriftObserver", "build_drift_config", "changed_words", "job_config",
           "run_job", "start_job", "summarise"]
