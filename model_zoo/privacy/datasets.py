"""Personal data in a dataset: counts per entity type and column with masked examples, and redacted copies.

:func:`scan_frame` / :func:`scan_csv` say what a file holds (for the Fine-tune and Error analysis pages and
``python -m model_zoo pii scan``); :func:`redact_frame` / :func:`redact_csv` replace it (``pii redact``, and
before a fine-tuning run). Both find the data once per cell, in batches, calling ``progress(done, total)``.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from model_zoo.data import read_csv_frame
from model_zoo.errors import DatasetError
from model_zoo.privacy.analyzer import ENTITY_TYPES, MIN_SCORE, engine
from model_zoo.privacy.detect import PiiSpan, Progress, check_entities, find_pii_many
from model_zoo.privacy.redaction import MASK, Redactor, apply

EXAMPLE_CHARS = 160


@dataclass
class ScanResult:
    """What a scan found.

    Attributes:
        rows: rows scanned (per column).
        columns: the columns scanned.
        counts: entity type -> column -> spans found (only types found).
        rows_with_pii: column -> rows holding at least one span.
        examples: masked cells, until each entity type found shows in N of them: ``{"column", "row" (0-based
            data row), "entity" (the type it was picked for), "found" (types in that cell), "masked" (the cell,
            every span masked, cut to 160 characters around that type's first span)}``.
        seconds: detection time; ``ner``/``model``: whether names, places and organisations were looked for.
    """

    rows: int
    columns: list[str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    rows_with_pii: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    ner: bool = True
    model: str | None = None

    @property
    def total(self) -> int:
        """Spans found in all."""
        return sum(n for per_column in self.counts.values() for n in per_column.values())

    @property
    def ms_per_text(self) -> float:
        cells = self.rows * max(1, len(self.columns))
        return 1000 * self.seconds / cells if cells else 0.0

    def table(self) -> list[dict[str, Any]]:
        """One row per entity type found: its count in each column, and in all."""
        return [{"personal data": entity, **{c: per_column.get(c, 0) for c in self.columns},
                 "total": sum(per_column.values())}
                for entity, per_column in sorted(self.counts.items(), key=lambda kv: -sum(kv[1].values()))]

    def sentence(self) -> str:
        """One line for people."""
        if not self.total:
            found = "No personal data found"
        else:
            found = (f"{self.total:,} piece{'s' if self.total != 1 else ''} of personal data in "
                     + ", ".join(f"{n:,} of {self.rows:,} rows of {c!r}" for c, n in self.rows_with_pii.items() if n))
        missing = "" if self.ner else " Names, places and organisations were not looked for (no NER model)."
        return f"{found} ({self.ms_per_text:.1f} ms per text).{missing}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total, "ms_per_text": round(self.ms_per_text, 3)}


def _masked(text: str, spans: Sequence[PiiSpan], around: int) -> str:
    masked, reps = apply(text, spans, lambda entity, value: MASK)
    first = reps[around].new_start if reps else 0
    lo = max(0, first - EXAMPLE_CHARS // 3)
    cut = masked[lo:lo + EXAMPLE_CHARS]
    return ("…" if lo else "") + cut + ("…" if lo + EXAMPLE_CHARS < len(masked) else "")


def _columns(frame: pd.DataFrame, columns: Iterable[str] | None) -> list[str]:
    wanted = list(frame.columns) if columns is None else list(dict.fromkeys(columns))
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DatasetError(f"No column(s) {', '.join(map(repr, missing))}; the file has: "
                           f"{', '.join(map(repr, list(frame.columns)[:12]))}.")
    if not wanted:
        raise DatasetError("Pick at least one column to scan.")
    return wanted


def _detect(frame: pd.DataFrame, columns: list[str], entities: list[str] | None, min_score: float,
            progress: Progress | None) -> tuple[dict[str, list[list[PiiSpan]]], float]:
    total = len(frame) * len(columns)
    found: dict[str, list[list[PiiSpan]]] = {}
    start = time.perf_counter()
    for i, column in enumerate(columns):
        texts = frame[column].fillna("").astype(str).tolist()
        found[column] = find_pii_many(texts, entities, min_score, _shifted(progress, i * len(frame), total))
    return found, time.perf_counter() - start


def _shifted(progress: Progress | None, offset: int, total: int) -> Progress | None:
    """``progress`` for one column of several: cells done before it are added."""
    if progress is None:
        return None
    report = progress
    return lambda done, _n: report(offset + done, total)


def _result(frame: pd.DataFrame, columns: list[str], found: dict[str, list[list[PiiSpan]]], seconds: float,
            examples: int) -> ScanResult:
    eng = engine()
    result = ScanResult(len(frame), columns, seconds=round(seconds, 3), ner=eng.ner, model=eng.model)
    shown: dict[str, int] = {}
    for column in columns:
        texts = frame[column].fillna("").astype(str).tolist()
        result.rows_with_pii[column] = sum(bool(s) for s in found[column])
        for row, (text, spans) in enumerate(zip(texts, found[column])):
            for span in spans:
                result.counts.setdefault(span.entity, {}).setdefault(column, 0)
                result.counts[span.entity][column] += 1
            kinds = list(dict.fromkeys(s.entity for s in spans))
            wanted = [i for i, s in enumerate(spans) if shown.get(s.entity, 0) < examples]
            if wanted:  # one example per cell, counted for every kind it shows
                for kind in kinds:
                    shown[kind] = shown.get(kind, 0) + 1
                result.examples.append({"column": column, "row": row, "entity": spans[wanted[0]].entity,
                                        "found": ", ".join(kinds), "masked": _masked(text, spans, wanted[0])})
    return result


def scan_frame(frame: pd.DataFrame, columns: Iterable[str] | None = None, *, entities: Iterable[str] | None = None,
               min_score: float = MIN_SCORE, progress: Progress | None = None, examples: int = 3) -> ScanResult:
    """Count the personal data in ``columns`` of ``frame`` (all columns when None).

    Args:
        entities: only these entity types (None: all detected here).
        progress: called as ``progress(done, total)`` with cells scanned (every 64 cells).
        examples: masked examples kept per entity type.

    Raises:
        DatasetError: a column is missing. ``UnknownEntityError``: an unknown entity type.
    """
    cols = _columns(frame, columns)
    found, seconds = _detect(frame, cols, check_entities(entities), min_score, progress)
    return _result(frame, cols, found, seconds, examples)


def scan_csv(source: str | Path | bytes, columns: Iterable[str] | None = None, *,
             entities: Iterable[str] | None = None, min_score: float = MIN_SCORE, progress: Progress | None = None,
             examples: int = 3, max_bytes: int | None = None) -> ScanResult:
    """:func:`scan_frame` on a CSV file (a path or its bytes; UTF-8, read as :func:`model_zoo.data.read_csv_frame`).

    Raises:
        DatasetError: the file cannot be read, is over ``max_bytes``, or lacks a column.
    """
    return scan_frame(read_csv_frame(source, max_bytes), columns, entities=entities, min_score=min_score,
                      progress=progress, examples=examples)


def redact_frame(frame: pd.DataFrame, columns: Iterable[str], redactor: Redactor, *,
                 progress: Progress | None = None, examples: int = 3) -> tuple[pd.DataFrame, ScanResult]:
    """A copy of ``frame`` with the personal data in ``columns`` replaced by ``redactor`` (one salt for the
    whole frame, so a hash-style pseudonym stands for the same value in every row), and what was found."""
    cols = _columns(frame, columns)
    found, seconds = _detect(frame, cols, redactor.entities, redactor.min_score, progress)
    out = frame.copy()
    for column in cols:
        out[column] = redactor.redact_many(frame[column].fillna("").astype(str).tolist(), found[column])
    return out, _result(frame, cols, found, seconds, examples)


def redact_csv(source: str | Path | bytes, columns: Iterable[str], redactor: Redactor, *,
               keep: Iterable[str] | None = None, progress: Progress | None = None,
               max_bytes: int | None = None) -> tuple[bytes, ScanResult]:
    """A CSV file with the personal data in ``columns`` replaced: its UTF-8 bytes, and what was found.

    Args:
        keep: the columns to write (default: all). Fine-tuning keeps only the text and label columns, so no
            other column of the upload reaches the server's disk.
    """
    frame = read_csv_frame(source, max_bytes)
    cols = _columns(frame, columns)
    kept = _columns(frame, keep) if keep is not None else list(frame.columns)
    redacted, result = redact_frame(frame, cols, redactor, progress=progress)
    buffer = io.StringIO()
    redacted[kept].to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8"), result


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (never half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def entity_titles() -> dict[str, str]:
    """entity type -> the phrase for people (``PERSON`` -> "a person's name")."""
    return {name: e.phrase for name, e in ENTITY_TYPES.items()}


__all__ = ["EXAMPLE_CHARS", "ScanResult", "entity_titles", "redact_csv", "redact_frame", "scan_csv", "scan_frame",
           "write_atomic"]
