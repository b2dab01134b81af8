"""Error analysis: a model's metrics, slices and worst examples on a labelled split (a Rotten Tomatoes split or an
uploaded CSV), its calibration, and global explanations (which words push it toward and away from each class).

The analysis of a split is cached with ``st.cache_data`` keyed on (model key, split) or (model key, the
uploaded texts' digest): one batched prediction per model and split, shared by the metrics, the slices, the
examples and the calibration. The temperature is always fitted on the Rotten Tomatoes validation split and
shown on the split being reported. Global explanations run as background jobs (kind ``global``); what is already
cached on disk for the current choices is shown without one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

import explainers.global_importance as gi  # registers the "global" job kind
from dashboard.services.finetuning import MAX_UPLOAD_MB
from dashboard.services.models import get_handle, model_key, model_revision, store_models
from dashboard.services.session import owner
from explainers.base import get as get_explainer
from explainers.base import make_config
from model_zoo import LoupeError, ModelHandle, calibration, engine, hosting, jobs, spec
from model_zoo.calibration import Calibration, CalibrationError
from model_zoo.data import RT_LABELS, TextDataset
from model_zoo.error_analysis import ErrorReport, SliceError, SliceResult, examples, labelled_csv, slices
from model_zoo.paths import discard_upload, reports_dir, stage_upload

ERROR_SPLITS = ("test", "validation")  # the Rotten Tomatoes splits the page reports on (train is what it learnt)
FIT_SPLIT = "validation"
UPLOAD = "upload"  # the split name of an uploaded CSV


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
    return gi.split_title(split)


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
    """Calibration before/after temperature scaling on ``split`` (a Rotten Tomatoes split or ``upload``); the
    temperature is fitted on the Rotten Tomatoes validation split (only "before" for a model of other classes)."""
    current = float(handle.temperature)
    probs = _own_probs(report.probs, current)
    before = calibration.measure(probs, report.labels)
    if split == UPLOAD and not rt_labels_ok(handle):
        return CalibrationView(report.split, before, None, None, report.split, current,
                               "A temperature is fitted on the Rotten Tomatoes validation split, whose classes are "
                               "not this model's, so only the model's own calibration is shown.")
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


# --- an uploaded CSV ------------------------------------------------------------------------------------------

@st.cache_data(max_entries=8, show_spinner=False)
def _upload_dataset(digest: str, name: str, text_column: str, label_column: str, labels: tuple[str, ...],
                    _raw: bytes) -> TextDataset:
    # digest (of the bytes), name, columns and labels form the key; _raw is fixed by the digest.
    return labelled_csv(_raw, text_column, label_column, list(labels), f"upload: {name}",
                        max_bytes=MAX_UPLOAD_MB * 1_000_000)


def digest(raw: bytes) -> str:
    """What identifies an uploaded file's bytes."""
    return hashlib.sha256(raw).hexdigest()[:24]


def upload_dataset(raw: bytes, name: str, text_column: str, label_column: str, labels: list[str]) -> TextDataset:
    """An uploaded labelled CSV as texts with the model's class ids (named ``upload: <name>``).

    Raises:
        DatasetError: unreadable, over the size limit, a missing column, or labels that are not the model's
            classes (see :func:`model_zoo.error_analysis.labelled_csv`).
    """
    return _upload_dataset(digest(raw), name, text_column, label_column, tuple(labels), raw)


@st.cache_data(max_entries=8, show_spinner=False)
def _analyse_upload(key: str, texts: str, _handle: ModelHandle, _dataset: TextDataset) -> ErrorReport:
    # key (model) and texts (the dataset's digest and name) form the cache key.
    from model_zoo.error_analysis import analyse as run

    return run(_handle, _dataset, f"{_dataset.name} ({len(_dataset):,} texts)")


def analyse_dataset(handle: ModelHandle, dataset: TextDataset) -> ErrorReport:
    """The model's predictions and metrics on an uploaded split (cached per model and texts)."""
    with handle.use(False, "Error analysis"):
        return _analyse_upload(model_key(handle), f"{dataset.name}#{gi.dataset_digest(dataset)}#"
                               f"{hashlib.sha256(str(dataset.labels).encode()).hexdigest()[:12]}", handle, dataset)


# --- global explanations --------------------------------------------------------------------------------------

def global_methods(handle: ModelHandle) -> dict[str, str]:
    """name -> title of the explainers global explanations can use on this model (signed ones)."""
    return {m: get_explainer(m).title for m in gi.signed_methods(handle)}


def global_n_limits() -> tuple[int, int]:
    """(default, maximum) sentences a global explanation may take on this server (hosted: tighter)."""
    n = next(s for s in spec.settings(gi.GlobalConfig, "global") if s.name == "n")
    return int(n.default), int(n.max or n.default)


def _eval_cache_stamp() -> str:
    folder = reports_dir() / "eval-cache"
    if not folder.is_dir():
        return ""
    return "|".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in sorted(folder.glob("*.json")))


@st.cache_data(max_entries=32, show_spinner=False)
def _ranking(model: str, revision: str, stamp: str) -> gi.Ranking | None:
    return gi.cached_ranking(model, revision)


def global_default(model: str, handle: ModelHandle, n: int, workers: int = 1) -> gi.Choice:
    """The default explainer for ``n`` sentences and why (the most faithful affordable one; see
    :mod:`explainers.global_importance.choice`)."""
    ranking = _ranking(model, model_revision(model), _eval_cache_stamp())
    return gi.default_method(gi.signed_methods(handle), n, ranking, workers)


def compare_choices(model: str, handle: ModelHandle) -> list[str]:
    """Store models with the same classes as ``handle`` (other than ``model``): what it can be compared with."""
    labels = list(handle.label_names)
    return [str(c["id"]) for c in store_models() if c.get("id") and c["id"] != model and c.get("labels") == labels]


Upload = tuple[bytes, str, str, str]  # raw bytes, file name, text column, label column


def _dataset(split: str, upload: Upload | None, labels: list[str]) -> TextDataset:
    if split == UPLOAD:
        if upload is None:
            raise LoupeError("Upload a CSV first.")
        return upload_dataset(upload[0], upload[1], upload[2], upload[3], labels)
    return gi.load_split({"split": split})


def _check_global(model: str, handle: ModelHandle, method: str, n: int, compare_with: str | None,
                  run_on: Mapping[str, Any] | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The checked (method, settings, engine) of a request; raises ``LoupeError`` saying what is wrong."""
    method = gi.resolve_method(method)
    if not get_explainer(method).supports(handle):
        raise LoupeError(f"{get_explainer(method).title} does not support this model; pick another explainer.")
    make_config(method)
    settings = dataclasses.asdict(gi.settings_config({"n": int(n)}))
    cfg = dataclasses.asdict(engine.config(dict(run_on or {})))
    if compare_with:
        if compare_with == model:
            raise LoupeError("Pick another model to compare with: this is the model in use.")
        other = get_handle(hosting.check_request(compare_with))  # hosted: only models people may load
        if list(other.label_names) != list(handle.label_names):
            raise LoupeError(f"{compare_with} has other classes ({', '.join(other.label_names)}), so its words "
                             "cannot be compared class by class with this model's.")
        if not get_explainer(method).supports(other):
            raise LoupeError(f"{get_explainer(method).title} does not support {compare_with}; pick another "
                             "explainer.")
    return method, settings, cfg


def _global_cache_stamp() -> int:
    """Changes whenever a global explanation writes its cache (every write renames a file into the folder)."""
    try:
        return (reports_dir() / "global-cache").stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(max_entries=16, show_spinner=False)
def _cached_global(model: str, revision: str, split: str, texts: str, method: str, n: int, compare_with: str,
                   other_revision: str, stamp: int, _handle: ModelHandle,
                   _dataset: TextDataset) -> dict[str, Any] | None:
    # everything but the handle and dataset forms the key (texts: the dataset's digest; stamp: the cache folder)
    result = gi.explain_global(model, _dataset, method, None, {"n": n}, compare_with=compare_with or None,
                               handle=_handle, cached_only=True)
    return None if result is None else {**result.to_dict(), "why": ""}


def cached_global(model: str, handle: ModelHandle, split: str, upload: Upload | None, method: str, n: int,
                  compare_with: str | None = None) -> dict[str, Any] | None:
    """The global explanation of these choices when every sentence is already cached on disk (None otherwise):
    shown at once, without a job. Raises ``LoupeError`` for choices that cannot be used."""
    method, settings, _ = _check_global(model, handle, method, n, compare_with, None)
    dataset = _dataset(split, upload, list(handle.label_names))
    return _cached_global(model, model_revision(model), split, gi.dataset_digest(dataset), method, settings["n"],
                          compare_with or "", model_revision(compare_with) if compare_with else "",
                          _global_cache_stamp(), handle, dataset)


def start_global(model: str, handle: ModelHandle, split: str, upload: Upload | None, method: str, n: int,
                 compare_with: str | None = None, run_on: Mapping[str, Any] | None = None) -> str:
    """Start a global explanation job (kind ``global``, owned by this person); the new job's id.

    Everything is checked here, so a bad choice is a message on the page rather than a failed job: the
    explainer (known, signed, supporting both models), n (this server's limit), the engine, the second model
    (same classes), the uploaded file (readable, the model's labels). An upload is saved for the job, which
    removes it when it ends.

    Raises:
        LoupeError: what is wrong, for a person.
    """
    method, settings, cfg = _check_global(model, handle, method, n, compare_with, run_on)
    labels = list(handle.label_names)
    _dataset(split, upload, labels)  # a bad file is refused before anything is saved
    config: dict[str, Any] = {"model": model, "method": method, "settings": settings, "engine": cfg,
                              "compare_with": compare_with or None, "labels": labels}
    staged = None
    if split == UPLOAD and upload is not None:
        staged = stage_upload(upload[0], upload[1])
        config["data"] = {"path": str(staged), "name": upload[1], "text_column": upload[2],
                          "label_column": upload[3]}
    else:
        config["data"] = {"split": split}
    try:
        return jobs.start("global", config, owner=owner())
    except (LoupeError, ValueError):
        if staged is not None:
            discard_upload(staged)
        raise


def global_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A global explanation as flat rows (model, class, direction, rank, word, figures, shortcut): its CSV."""
    rows = []
    for rep in result.get("reports") or []:
        for c in rep.get("classes") or []:
            for direction in ("toward", "away"):
                for rank, w in enumerate(c.get(direction) or [], start=1):
                    rows.append({"model": hosting.redact(rep.get("model")), "class": c.get("label"),
                                 "direction": direction, "rank": rank, "word": w.get("word"), "uses": w.get("count"),
                                 "sentences": w.get("sentences"), "mean attribution": w.get("mean"),
                                 "total attribution": w.get("total"), "kind": w.get("kind") or "",
                                 "possible shortcut": bool(w.get("shortcut")),
                                 "explainer": rep.get("title"), "split": rep.get("dataset")})
    return rows


def comparison_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The two-model comparison as flat rows (class, gained/lost, word, the two means, the change)."""
    cmp = result.get("comparison") or {}
    a, b = hosting.redact(cmp.get("model_a")), hosting.redact(cmp.get("model_b"))
    rows = []
    for c in cmp.get("classes") or []:
        for direction in ("gained", "lost"):
            for s in c.get(direction) or []:
                rows.append({"class": c.get("label"), "direction": direction, "word": s.get("word"),
                             "uses": s.get("count"), "sentences": s.get("sentences"),
                             f"mean · {a}": s.get("mean_a"), f"mean · {b}": s.get("mean_b"), "change": s.get("change"),
                             "kind": s.get("kind") or ""})
    return rows

