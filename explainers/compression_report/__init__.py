"""Compression report: variants compared on accuracy, latency, size AND explanation drift.

``model_zoo.compression`` makes and measures the variants; this package adds what no compression tool reports:
whether a variant still decides for the same reasons (:mod:`.drift`). :mod:`.config` holds the job's settings,
:mod:`.run` the whole comparison (:func:`run_compression`), :mod:`.job` the ``compress`` background job
(:func:`run_job`) and the ``python -m explainers compress`` command (:func:`add_cli`).
"""

from explainers.compression_report.config import SCOPE, CompressConfig, build_config
from explainers.compression_report.drift import (
    BATCH_FIELDS,
    DRIFT_BATCH_SIZE,
    DRIFT_BINS,
    DRIFT_STATS,
    Explained,
    drift_rows,
    drift_summary,
    explain_texts,
    method_config,
    shared_methods,
)
from explainers.compression_report.job import add_cli, cmd_compress, format_table, run_job
from explainers.compression_report.run import COLUMNS, run_compression, save_variant_metrics

__all__ = [
    "BATCH_FIELDS", "COLUMNS", "DRIFT_BATCH_SIZE", "DRIFT_BINS", "DRIFT_STATS", "SCOPE", "CompressConfig",
    "Explained", "add_cli", "build_config", "cmd_compress", "drift_rows", "drift_summary", "explain_texts",
    "format_table", "method_config", "run_compression", "run_job", "save_variant_metrics", "shared_methods",
]
