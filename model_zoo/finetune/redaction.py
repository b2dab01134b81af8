"""Personal data out of a run's files before they reach the server's disk: redacted copies of the CSVs and the
record the model card keeps (``DataSpec.redaction``).

One :class:`~model_zoo.privacy.Redactor` serves the training, validation and test files, so a hash-style
pseudonym means the same person in all three. Only the text and label columns are written: no other column of
an upload is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from model_zoo.errors import DatasetError
from model_zoo.privacy import Redactor, redact_csv
from model_zoo.privacy.detect import Progress

Files = Mapping[str, tuple[bytes, str]]  # DataSpec field (source, validation_source, test_source) -> bytes, name


def redact_files(files: Files, text_column: str, label_column: str, style: str, progress: Progress | None = None,
                 salt: bytes | str | None = None) -> tuple[dict[str, tuple[bytes, str]], dict[str, Any]]:
    """Redacted copies of the run's CSV files (text and label columns only), and the record for the card.

    Args:
        files: the uploads, by the DataSpec field they fill.
        style: ``placeholder``, ``mask`` or ``hash`` (one random salt for the run unless ``salt`` is given).
        progress: called with (texts done, texts in all) per file.

    Raises:
        DatasetError: a file cannot be read or lacks the columns. ``RedactionStyleError``: a bad style.
    """
    if text_column == label_column:
        raise DatasetError("The text and the label column are the same; pick the column that holds the texts.")
    redactor = Redactor(style, salt)
    out: dict[str, tuple[bytes, str]] = {}
    spans: dict[str, int] = {}
    texts = 0
    ner, model = True, None
    for key, (raw, name) in files.items():
        data, result = redact_csv(raw, [text_column], redactor, keep=[text_column, label_column], progress=progress)
        out[key] = (data, name)
        texts += result.rows
        ner, model = result.ner, result.model
        for entity, per_column in result.counts.items():
            spans[entity] = spans.get(entity, 0) + sum(per_column.values())
    record = {"style": style, "column": text_column, "texts": texts, "spans": dict(sorted(spans.items())),
              "names_detected": ner, "detector": f"Presidio + {model}" if model else "Presidio (patterns only)"}
    return out, record


def redaction_note(record: Mapping[str, Any]) -> str:
    """One sentence for the split notes and the card: how the texts were redacted ('' when they were not)."""
    if not record:
        return ""
    spans = record.get("spans") or {}
    found = ", ".join(f"{k} {v}" for k, v in spans.items()) or "none found"
    names = "" if record.get("names_detected", True) else " Names, places and organisations were not looked for."
    return (f"Personal data in {record.get('column', 'the texts')!r} was replaced ({record.get('style')} style) "
            f"before training: {sum(spans.values())} span(s) in {record.get('texts', 0)} texts ({found}); only the "
            f"text and label columns were kept.{names}")


__all__ = ["redact_files", "redaction_note"]
