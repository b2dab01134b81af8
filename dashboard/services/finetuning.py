"""Fine-tuning seen from the app: the methods and their settings, reading the data (uploads included),
counting what trains, starting a run and saving its model to the store.

Fine-tuning names come from :mod:`model_zoo.finetune` only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import pandas as pd
import streamlit as st

from dashboard.services.models import model_revision
from dashboard.services.session import owner
from model_zoo import BASE_ENCODER_ID as BASE_ENCODER_ID  # re-exported: the bundled encoder, a base to pick
from model_zoo import LoupeError, spec
from model_zoo.data import few_examples, preview_frame, read_csv_frame
from model_zoo.finetune import METHODS, DataSpec, FinetuneConfig, default_train_config, load_data, prepare_model
from model_zoo.finetune import save_to_store as _save_to_store
from model_zoo.finetune import start_job as _start_job
from model_zoo.finetune.redaction import redact_files
from model_zoo.paths import discard_upload, stage_upload, temporary_upload
from model_zoo.training import TrainConfig as TrainConfig  # re-exported: the hyper-parameters' spec

Files = dict[str, tuple[bytes, str]]  # DataSpec field (source, validation_source, test_source) -> bytes, name


def method_titles() -> dict[str, str]:
    """name -> title of the fine-tuning methods (registry order)."""
    return {name: METHODS[name].title for name in METHODS}


def method_summary(method: str) -> str:
    """What the method is, and what trains (with the recipe it starts from)."""
    m = METHODS[method]
    recipe = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in m.recipe.items())
    return f"{m.summary} **What trains:** {m.trains}" + (f" Recipe: {recipe}." if recipe else "")


def has_settings(method: str) -> bool:
    """Whether the method has settings of its own (its expander opens when it does)."""
    return bool(spec.settings(METHODS[method].Config, method))


def method_config_class(method: str) -> type:
    """The method's settings dataclass (its spec drives the widgets)."""
    return METHODS[method].Config


def train_defaults(method: str) -> dict[str, Any]:
    """The training hyper-parameters this method starts from (its recipe on top of TrainConfig's)."""
    return dataclasses.asdict(default_train_config(method))


MAX_UPLOAD_MB = 20  # an uploaded CSV's size limit (Fine-tune, Continual fine-tuning, Error analysis)


def read_csv(raw: bytes, max_bytes: int) -> pd.DataFrame:
    """An uploaded CSV as a frame; raises ``LoupeError`` saying why it cannot be read."""
    return read_csv_frame(raw, max_bytes=max_bytes)


def preview(frame: pd.DataFrame) -> pd.DataFrame:
    """The first rows and columns of a frame, long cells cut short (safe to show)."""
    return preview_frame(frame)


def thin_classes(counts: Mapping[str, int]) -> str | None:
    """A warning when some class has too few examples to learn from (None when all have enough)."""
    return few_examples(counts)


@contextlib.contextmanager
def _on_disk(spec: DataSpec, files: Files) -> Iterator[DataSpec]:
    """``spec`` reading the uploads from temporary files, removed after the block: nothing is kept on the
    server until a job starts."""
    with contextlib.ExitStack() as stack:
        paths = {k: str(stack.enter_context(temporary_upload(raw, name))) for k, (raw, name) in files.items()}
        yield _with_sources(spec, paths)


def _with_sources(spec: DataSpec, paths: Mapping[str, str]) -> DataSpec:
    """``spec`` reading its files (``source``, ``validation_source``, ``test_source``) from ``paths``."""
    return dataclasses.replace(spec, source=paths.get("source", spec.source),
                               validation_source=paths.get("validation_source", spec.validation_source),
                               test_source=paths.get("test_source", spec.test_source))


class Splits(Protocol):
    """What the page shows of the splits a :class:`DataSpec` makes."""

    @property
    def labels(self) -> list[str]: ...

    def summary(self) -> dict[str, Any]: ...


def load_splits(spec: DataSpec, files: Files) -> Splits:
    """The training, validation and test splits ``spec`` makes (``.summary()``, ``.labels``); the uploads in
    ``files`` are read from temporary files. Raises ``LoupeError`` saying what is wrong with the data."""
    with _on_disk(spec, files) as readable:
        return load_data(readable)


@st.cache_data(max_entries=64, show_spinner="Counting trainable parameters…")
def _trainable(base: str, revision: str, method: str, config: str, labels: tuple[str, ...]) -> tuple[int, int]:
    prep = prepare_model(base, method, json.loads(config), list(labels), device="cpu")
    return prep.trainable, prep.total


def trainable_parameters(base: str, method: str, config: Any, labels: list[str]) -> tuple[int, int]:
    """(trainable, total) parameters of ``base`` set up for ``method`` with settings ``config`` (built on the
    CPU, then dropped; cached per base model revision, method, settings and labels)."""
    return _trainable(base, model_revision(base), method, json.dumps(dataclasses.asdict(config), sort_keys=True),
                      tuple(labels))


def start_finetune(cfg: FinetuneConfig, files: Files, redact: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> str:
    """Save the uploads for the job (it removes them when it ends) and start it; the job's id.

    Args:
        redact: a redaction style: the job gets copies of the uploads with the personal data in the text column
            replaced (text and label columns only), and the run's card records how. None: the files as they are.
        progress: called with (texts done, texts in all) while redacting.

    Raises:
        LoupeError, ValueError: the settings are refused (the saved uploads are removed again).
    """
    if redact and files:
        files, record = redact_files(files, cfg.data.text_column, cfg.data.label_column, redact, progress)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, redaction=record))
    staged = {k: stage_upload(raw, name) for k, (raw, name) in files.items()}
    data = _with_sources(cfg.data, {k: str(v) for k, v in staged.items()})
    try:
        return _start_job(dataclasses.replace(cfg, data=data), owner=owner())
    except (LoupeError, ValueError):
        for path in staged.values():
            discard_upload(path)
        raise


def save_model(job_id: str, name: str) -> None:
    """Save the model a finished job kept private to the store as ``name``; raises ``LoupeError`` if it cannot."""
    _save_to_store(job_id, name)
