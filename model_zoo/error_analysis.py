"""Where does the model go wrong? Metrics on a labelled split, slices of it, and its worst examples.

- :func:`analyse` runs the model once (one batched ``predict_proba``) over a split and keeps accuracy, macro F1,
  per-class precision and recall (scikit-learn), the confusion matrix, the probabilities and the predictions.
- :func:`slices` splits the texts by length (word-count terciles), by negation (a fixed word list) and by a
  keyword or regular expression a person types; each slice has its accuracy with a 95% Wilson interval.
- :func:`examples` lists the texts, misclassified first, then the least confident.
- :func:`labelled_csv` reads a person's labelled CSV for the analysis: its labels must be the model's classes
  (by name, any case, or as class numbers 0..k-1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_zoo.data import TextDataset, read_csv_frame
from model_zoo.errors import DatasetError, LoupeError
from model_zoo.handle import ModelHandle

NEGATIONS = ("not", "no", "never", "n't", "nothing", "nobody", "none", "neither", "nor", "without", "hardly")
# "n't" also ends a word ("don't", "isn't"); the other words count only as whole words.
_NEGATION_RE = re.compile(r"n't\b|\b(?:" + "|".join(w for w in NEGATIONS if w != "n't") + r")\b", re.IGNORECASE)
MAX_PATTERN = 200  # longest keyword or regular expression (characters)
Z95 = 1.959963984540054  # two-sided 95% normal quantile


class SliceError(LoupeError):
    """A keyword or regular expression cannot be used to slice the texts (too long, not a valid pattern)."""


@dataclass(frozen=True)
class ErrorReport:
    """A model's predictions on one labelled split and what they score.

    ``precision``/``recall``/``support`` are per class (index = class id); ``confusion[i][j]`` counts texts of
    true class ``i`` predicted as ``j``.
    """

    split: str
    texts: tuple[str, ...]
    labels: np.ndarray  # true class ids, shape (n,)
    probs: np.ndarray  # class probabilities, shape (n, classes)
    preds: np.ndarray  # predicted class ids, shape (n,)
    label_names: tuple[str, ...]
    accuracy: float
    f1_macro: float
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    support: tuple[int, ...]
    confusion: tuple[tuple[int, ...], ...]

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def correct(self) -> np.ndarray:
        return np.asarray(self.preds == self.labels)


@dataclass(frozen=True)
class SliceResult:
    """One slice of a split: its name, size, accuracy with a 95% Wilson interval, and which texts it holds."""

    name: str
    kind: str  # "length", "negation" or "keyword"
    size: int
    correct: int
    accuracy: float | None  # None for an empty slice
    low: float | None
    high: float | None
    members: tuple[int, ...]  # indices into the report's texts


def analyse(handle: ModelHandle, dataset: TextDataset, split_name: str) -> ErrorReport:
    """Predict every text of ``dataset`` (one batched call) and score the predictions.

    Args:
        handle: the model; its class ids must be the dataset's label ids.
        dataset: labelled texts.
        split_name: what the split is called in every figure (e.g. ``Rotten Tomatoes test``).

    Raises:
        LoupeError: an empty dataset.
    """
    from sklearn.metrics import precision_recall_fscore_support

    from model_zoo.training import classification_metrics

    if len(dataset) == 0:
        raise LoupeError(f"{split_name} has no texts to analyse.")
    probs = np.asarray(handle.predict_proba(list(dataset.texts)), dtype=float)
    labels = np.asarray(dataset.labels, dtype=int)
    preds = probs.argmax(axis=1)
    n_classes = probs.shape[1]
    metrics = classification_metrics(labels, preds, n_classes)
    precision, recall, _, support = precision_recall_fscore_support(
        labels, preds, labels=list(range(n_classes)), zero_division=0)
    names = tuple(dataset.label_names[i] if i < len(dataset.label_names) else handle.label_name(i)
                  for i in range(n_classes))
    return ErrorReport(split_name, tuple(dataset.texts), labels, probs, preds, names, metrics["accuracy"],
                       metrics["f1_macro"], tuple(float(p) for p in precision), tuple(float(r) for r in recall),
                       tuple(int(s) for s in support),
                       tuple(tuple(int(v) for v in row) for row in metrics["confusion_matrix"]))


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``correct / n`` (95% by default); (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact ends at 0 and n (the formula leaves rounding dust there)
    return (0.0 if correct == 0 else max(0.0, centre - half)), (1.0 if correct == n else min(1.0, centre + half))


def _slice(report: ErrorReport, name: str, kind: str, mask: np.ndarray) -> SliceResult:
    members = tuple(int(i) for i in np.flatnonzero(mask))
    size = len(members)
    right = int(report.correct[mask].sum()) if size else 0
    low, high = wilson(right, size) if size else (None, None)
    return SliceResult(name, kind, size, right, right / size if size else None, low, high, members)


def pattern(keyword: str, regex: bool = False) -> re.Pattern[str] | None:
    """The case-insensitive pattern for a keyword (matched as typed, anywhere) or a regular expression.

    Returns None for an empty keyword.

    Raises:
        SliceError: longer than :data:`MAX_PATTERN` characters, or not a valid regular expression.
    """
    if not keyword.strip():
        return None
    if len(keyword) > MAX_PATTERN:
        raise SliceError(f"The {'regular expression' if regex else 'keyword'} is {len(keyword):,} characters "
                         f"long; at most {MAX_PATTERN} are allowed.")
    if not regex:
        return re.compile(re.escape(keyword.strip()), re.IGNORECASE)
    try:
        return re.compile(keyword, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError) as err:
        raise SliceError(f"Not a valid regular expression: {err}.") from err


def slices(report: ErrorReport, keyword: str = "", regex: bool = False) -> list[SliceResult]:
    """The split's slices, worst accuracy first (empty slices last).

    Length: word-count terciles of this split (short / medium / long, the bounds in the name). Negation: a text
    holding one of :data:`NEGATIONS` (whole words; ``n't`` also at a word's end) or not. Keyword: a text that
    contains ``keyword`` (case-insensitive; with ``regex`` a regular expression searched anywhere) or not.

    Raises:
        SliceError: the keyword or regular expression cannot be used (see :func:`pattern`).
    """
    found = pattern(keyword, regex)
    words = np.array([len(t.split()) for t in report.texts])
    q1, q2 = (int(q) for q in np.floor(np.quantile(words, [1 / 3, 2 / 3])))
    out = [_slice(report, f"short (≤ {q1} words)", "length", words <= q1),
           _slice(report, f"medium ({q1 + 1}–{q2} words)", "length", (words > q1) & (words <= q2)),
           _slice(report, f"long (> {q2} words)", "length", words > q2)]
    negated = np.array([bool(_NEGATION_RE.search(t)) for t in report.texts])
    out += [_slice(report, "with negation", "negation", negated),
            _slice(report, "without negation", "negation", ~negated)]
    if found is not None:
        what = f"regex /{keyword}/" if regex else f"“{keyword.strip()}”"
        hit = np.array([bool(found.search(t)) for t in report.texts])
        out += [_slice(report, f"contains {what}", "keyword", hit),
                _slice(report, f"lacks {what}", "keyword", ~hit)]
    out = [s for s in out if s.size or s.kind == "keyword"]  # an empty length tercile says nothing
    return sorted(out, key=lambda s: (s.accuracy is None, s.accuracy if s.accuracy is not None else 0.0))


def examples(report: ErrorReport, only: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One row per text (text, true, predicted, confidence, correct): misclassified first, then least confident.

    Args:
        report: the analysed split.
        only: indices of the texts to list (a slice's ``members``); None lists all.
    """
    idx = list(range(report.n)) if only is None else [int(i) for i in only]
    conf = report.probs.max(axis=1)
    idx.sort(key=lambda i: (bool(report.correct[i]), float(conf[i])))
    return [{"text": report.texts[i], "true": report.label_names[int(report.labels[i])],
             "predicted": report.label_names[int(report.preds[i])], "confidence": round(float(conf[i]), 4),
             "correct": bool(report.correct[i])} for i in idx]


def _short(value: object, n: int = 40) -> str:
    text = str(value)
    return text if len(text) <= n else text[:n - 1] + "…"


def labelled_csv(source: str | Path | bytes, text_column: str, label_column: str, label_names: Sequence[str],
                 name: str = "upload", max_bytes: int | None = None) -> TextDataset:
    """A labelled CSV (path or bytes) as a :class:`TextDataset` whose label ids are the model's class ids.

    A label is read as the class of the same name (any case), or, when every label is a whole number below the
    number of classes and none is a class name, as the class number. Rows with an empty text or label are
    dropped and counted in ``notes``.

    Args:
        label_names: the model's classes, in class-id order.
        name: how the split is called in every figure (e.g. ``upload: reviews.csv``).
        max_bytes: the upload limit (a bigger file is refused).

    Raises:
        DatasetError: unreadable file, missing or identical columns, no rows, or a label that is not a class of
            the model (the message names the model's classes).
    """
    if text_column == label_column:
        raise DatasetError(f"The text and the label column are the same ({_short(text_column)!r}); pick the column "
                           "that holds the texts and the one that holds their classes.")
    frame = read_csv_frame(source, max_bytes)
    missing = [c for c in (text_column, label_column) if c not in frame.columns]
    if missing:
        raise DatasetError(f"Missing column(s): {', '.join(repr(_short(c)) for c in missing)}. The file has: "
                           f"{', '.join(repr(_short(c)) for c in list(frame.columns)[:12])}.")
    texts = frame[text_column].astype(str).str.strip()
    labels = frame[label_column].astype(str).str.strip()
    keep = (texts.str.len() > 0) & (labels.str.len() > 0)
    dropped = int((~keep).sum())
    texts, labels = texts[keep], labels[keep]
    if texts.empty:
        raise DatasetError(f"Every row has an empty {_short(text_column)!r} or {_short(label_column)!r}; there is "
                           "nothing to analyse.")
    by_name = {str(n).lower(): i for i, n in enumerate(label_names)}
    values = sorted(set(labels))
    notes = [f"Dropped {dropped} row(s) with empty text or label."] if dropped else []
    if all(v.lower() in by_name for v in values):
        ids = [by_name[v.lower()] for v in labels]
    elif all(v.isdigit() and int(v) < len(label_names) for v in values):
        ids = [int(v) for v in labels]
        notes.append("Labels read as class numbers: " + ", ".join(f"{i} = {n}" for i, n in enumerate(label_names))
                     + ".")
    else:
        unknown = [v for v in values if v.lower() not in by_name][:5]
        raise DatasetError(f"Label(s) {', '.join(repr(_short(v)) for v in unknown)} in {_short(label_column)!r} are "
                           f"not classes of this model (its classes: {', '.join(map(str, label_names))}). Use those "
                           f"names, or the class numbers 0–{len(label_names) - 1}; or pick the right label column.")
    return TextDataset(texts.tolist(), ids, [str(n) for n in label_names], name, notes, texts.index.tolist())
