"""Continual fine-tuning seen from the app: the bundled sequences and strategies, the tasks a choice makes (uploads
included), starting a run (the ``forgetting`` job: training plus explanation drift), what a run has finished so
far (read from its records, so a running or cancelled run shows its finished steps), and saving a strategy's
final model to the store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import streamlit as st

import explainers.continual_drift as drift  # registers the "forgetting" job kind
from dashboard.services.session import owner
from model_zoo import BASE_ENCODER_ID, LoupeError, jobs, store
from model_zoo.continual import SCENARIOS, SEQUENCES, STRATEGIES, ContinualConfig, TaskSpec, load_task, slug
from model_zoo.continual.bundled import BUNDLED
from model_zoo.paths import discard_upload, stage_upload, temporary_upload

KIND = drift.KIND  # the page's runs: training and explanation drift
CLI_KIND = "continual"  # runs of ``python -m model_zoo continual`` (no drift); the page shows them too
DriftConfig = drift.DriftConfig  # re-exported: the drift settings' spec drives the page's widgets
Files = dict[int, tuple[bytes, str]]  # task index -> (bytes, file name) of an uploaded CSV task


def sequences() -> dict[str, str]:
    """name -> the bundled sequence in words (its tasks in order, and what it shows)."""
    return {name: " → ".join(BUNDLED[k][0] for k in keys) + f": {what}" for name, (keys, what) in SEQUENCES.items()}


def strategies() -> dict[str, str]:
    """name -> what the strategy does."""
    return dict(STRATEGIES)


def scenarios() -> dict[str, str]:
    """class / task -> what the scenario means."""
    return dict(SCENARIOS)


def bases() -> list[str]:
    """Models a run may start from: the bundled encoder, then the store's plain classifiers."""
    return [BASE_ENCODER_ID] + [c["id"] for c in store.list_models() if not c.get("peft") and not c.get("quantization")]


def labels_of(model_id: str) -> list[str]:
    """The labels of a store model (its card), [] for the bundled encoder."""
    return [] if model_id == BASE_ENCODER_ID else [str(x) for x in store.read_card(store.model_path(model_id))
                                                     .get("labels", [])]


@st.cache_data(max_entries=16, show_spinner="Reading the tasks…")
def _bundled(sequence: str, limit: int, test_limit: int) -> list[dict[str, Any]]:
    cfg = ContinualConfig(sequence=sequence, limit=limit, test_limit=test_limit)
    return [load_task(t, i, limit, test_limit).summary() for i, t in enumerate(cfg.task_specs())]


@contextlib.contextmanager
def _on_disk(tasks: list[dict[str, Any]], files: Files) -> Iterator[list[dict[str, Any]]]:
    """The task dicts with each uploaded file in a temporary file, removed after the block."""
    with contextlib.ExitStack() as stack:
        paths = {i: str(stack.enter_context(temporary_upload(raw, name))) for i, (raw, name) in files.items()}
        yield [{**t, "source": paths.get(i, t.get("source", ""))} for i, t in enumerate(tasks)]


def task_rows(sequence: str, tasks: list[dict[str, Any]], files: Files, limit: int,
              test_limit: int) -> list[dict[str, Any]]:
    """The tasks a choice makes (summaries: name, labels, sizes and class balance per split, how split): a bundled
    ``sequence``, or ``tasks`` (TaskSpec dicts) read from the uploads in ``files``.

    Raises:
        LoupeError: a file cannot be used (columns, encoding, one class...), said per file.
    """
    if sequence:
        return _bundled(sequence, limit, test_limit)
    out = []
    with _on_disk(tasks, files) as readable:
        for i, (t, name) in enumerate(zip(readable, [n for _, n in files.values()] or [""] * len(tasks))):
            try:
                spec = TaskSpec(**{k: v for k, v in t.items() if k in TaskSpec.__dataclass_fields__})
                task = load_task(spec, i, limit, test_limit)
            except LoupeError as err:
                raise LoupeError(f"Task {i + 1} ({name}): {err}") from err
            out.append({**task.summary(), "source": name or task.source})
    return out


def start(continual: Mapping[str, Any], drift_values: Mapping[str, Any], files: Files) -> str:
    """Save the uploads for the job (it removes them when it ends), check every setting and start the run.

    Raises:
        LoupeError: a setting is refused (the saved uploads are removed again).
    """
    staged = {i: stage_upload(raw, name) for i, (raw, name) in files.items()}
    tasks = [{**t, "source": str(staged[i]) if i in staged else t.get("source", "")}
             for i, t in enumerate(continual.get("tasks") or [])]
    try:
        return drift.start_job({**continual, "tasks": tasks}, dict(drift_values), owner=owner())
    except (LoupeError, ValueError):
        for path in staged.values():
            discard_upload(path)
        raise


def progress(job_id: str) -> dict[str, Any]:
    """What a run has finished so far, from its records: ``{"start": {...} | None, "reference": {...} | None,
    "rows": {strategy: {step: row}}, "observed": {strategy: {step: record}}}`` (a step's last record wins)."""
    out: dict[str, Any] = {"start": None, "reference": None, "rows": {}, "observed": {}}
    for rec in jobs.metrics(job_id):
        kind = rec.get("kind")
        if kind in ("start", "reference"):
            out[kind] = rec
        elif kind in ("row", "observed") and isinstance(rec.get("step"), int):
            key = "rows" if kind == "row" else "observed"
            out[key].setdefault(str(rec.get("strategy")), {})[rec["step"]] = rec.get("row") if kind == "row" else rec
    return out


def save_model(job_id: str, strategy: str, name: str) -> Path:
    """Copy a finished run's final model of ``strategy`` to the store as ``name``; raises ``LoupeError`` if it cannot
    (call only with a job this person may open)."""
    source = jobs.job_dir(job_id) / "models" / slug(strategy)
    if not (source / store.CARD).exists():
        raise LoupeError(f"The run has no saved model for {strategy}.")
    return store.publish_copy(source, name, name=name)
