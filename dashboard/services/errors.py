"""Error analysis: a model's metrics, slices and worst examples on a Rotten Tomatoes split, and its calibration.

The analysis of a split is cached with ``st.cache_data`` keyed on (model key, split): one batched prediction
per model and split, shared by the metrics, the slices, the examples and the calibration. The temperature is
always fitted on the validation split and shown on the split being reported.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

import numpy as np
import streamlit as st

from dashboard.services.models import model_key
from model_zoo import ModelHandle, calibration
from model_zoo.calibration import Calibration, CalibrationError
from model_zoo.data import RT_LABELS
from model_zoo.error_analysis import ErrorReport, SliceError, SliceResult, examples, slices

ERROR_SPLITS = ("test", "validation")  # the Rotten Tomatoes splits the page reports on (train is what it learnt)
FIT_SPLIT = "validation"


@dataclass(frozen=True)
class CalibrationView:
    """Calibration on the reported split: before (the model's own probabilities) and after a temperature fitted
    on :data:`FIT_SPLIT` (None when the reported split is that split, or fitting failed: ``note`` says why)."""

    reported_on: str
    before: Calibration
    after: Calibration | None
    temperature: float | None
    fitted_on: str
    card_temperature: float  # the temperature the loaded model already applies (1.0: none)
    note: str = ""


def rt_labels_ok(handle: ModelHandle) -> bool:
    """Whether the model's classes are Rotten Tomatoes' (negative, positive), in that order."""
    return handle.label_names == list(RT_LABELS)


def split_title(split: str) -> str:
    """How a bundled split is named in every figure."""
    return f"Rotten Tomatoes {split}"


@st.cache_data(max_entries=16, show_spinner=False)
def _analyse(key: str, split: str, _handle: ModelHandle) -> ErrorReport:
    # key and split form the cache key; the handle is fixed by `key` (model id + file stamp).
    from model_zoo.data import rotten_tomatoes
    from model_zoo.error_analysis import analyse as run

    data = rotten_tomatoes(split)
    return run(_handle, data, f"{split_title(split)} ({len(data):,} texts)")


def analyse(handle: ModelHandle, split: str) -> ErrorReport:
    """The model's predictions and metrics on a Rotten Tomatoes split (cached per model and split).

    Raises:
        LoupeError: an unknown split, or the data is missing.
    """
    if split not in ERROR_SPLITS:
        raise SliceError(f"Unknown split {split!r}; choose one of {', '.join(ERROR_SPLITS)}.")
    with handle.use(False, "Error analysis"):
        return _analyse(model_key(handle), split, handle)


def error_slices(report: ErrorReport, keyword: str = "", regex: bool = False) -> list[SliceResult]:
    """The report's slices, worst first; raises ``SliceError`` for a bad keyword or regular expression."""
    return slices(report, keyword, regex)


def error_examples(report: ErrorReport, only: list[int] | None = None) -> list[dict[str, object]]:
    """The report's texts as rows, misclassified first, then least confident (``only``: those indices)."""
    return examples(report, only)


def _own_probs(probs: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities without the temperature the model applies (softmax(log p * T) undoes softmax(z / T))."""
    return probs if temperature == 1.0 else calibration.scale(probs, 1.0 / temperature)


def calibration_view(handle: ModelHandle, report: ErrorReport, split: str) -> CalibrationView:
    """Calibration before/after temperature scaling on ``split``; the temperature is fitted on validation."""
    current = float(handle.temperature)
    probs = _own_probs(report.probs, current)
    before = calibration.measure(probs, report.labels)
    if split == FIT_SPLIT:
        return CalibrationView(report.split, before, None, None, report.split, current,
                               "This is the split the temperature is fitted on: figures after scaling would be "
                               "measured on the texts they were fitted to (and flatter it), so only “before” is "
                               "shown. Pick the test split to see the effect.")
    fit = analyse(handle, FIT_SPLIT)
    try:
        temperature = calibration.fit_temperature(_own_probs(fit.probs, current), fit.labels)
    except CalibrationError as err:
        return CalibrationView(report.split, before, None, None, fit.split, current, str(err))
    after = calibration.measure(calibration.scale(probs, temperature), report.labels)
    return CalibrationView(report.split, before, after, round(temperature, 4), fit.split, current)


def save_temperature(model_id: str, temperature: float, fitted_on: str, ece_before: float | None = None,
                     ece_after: float | None = None, reported_on: str | None = None) -> None:
    """Write ``temperature`` to the store model's card, as ``python -m model_zoo calibrate --save`` does
    (:func:`model_zoo.calibration.save_temperature`); every page sees it from then on.

    Raises:
        CalibrationError: the model is not in the store, or the temperature is not positive.
    """
    calibration.save_temperature(model_id, temperature, fitted_on, ece_before, ece_after, reported_on)


def explain_link(model: str, text: str) -> str:
    """A link opening the Explain page (the app's root) on ``text`` with ``model``."""
    url = (st.context.url or "").split("?")[0] or "http://localhost:8501/"
    parts = url.rstrip("/").rsplit("/", 1)
    base = parts[0] + "/" if len(parts) == 2 and parts[1] == "errors" else url
    return f"{base}?{urllib.parse.urlencode({'model': model, 'text': text})}"
