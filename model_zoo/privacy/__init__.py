"""Personal data in the text that flows through Loupe: find it, redact it, keep it out of what is stored.

- :func:`find_pii` (one text) and :func:`find_pii_many` (a column, batched) return :class:`PiiSpan` s: names,
  places and organisations from a spaCy NER model, and e-mail addresses, phone numbers, card numbers (Luhn),
  IBANs (check digits), IP addresses, URLs, dates and street addresses from patterns (Presidio). Fully offline.
- :func:`redact` (or one :class:`Redactor` for a whole dataset) replaces them: ``placeholder`` (``<PERSON>``),
  ``mask`` (``█████``) or ``hash`` (stable salted pseudonyms, ``<PERSON_3f9a0c21>``), and returns the mapping.
- :func:`scan_csv` / :func:`scan_frame`: counts per entity type and column with masked examples;
  :func:`redact_csv` / :func:`redact_frame`: redacted copies. ``python -m model_zoo pii scan|redact``.
- :func:`fingerprint` names a text in a log without holding it.

The engine (Presidio + spaCy, several seconds to import) is built on first use and kept per process; importing
this package loads neither.
"""

from model_zoo.privacy.analyzer import (
    DEFAULT_MODEL,
    ENTITY_TYPES,
    MIN_SCORE,
    MODEL_ENV,
    EntityType,
    PrivacyUnavailableError,
    Status,
    engine,
    status,
)
from model_zoo.privacy.datasets import ScanResult, entity_titles, redact_csv, redact_frame, scan_csv, scan_frame
from model_zoo.privacy.detect import PiiSpan, UnknownEntityError, find_pii, find_pii_many
from model_zoo.privacy.logs import fingerprint
from model_zoo.privacy.redaction import (
    MASK,
    STYLES,
    RedactionStyleError,
    Redactor,
    Replacement,
    check_style,
    map_offset,
    redact,
)

from model_zoo.privacy import command  # noqa: E402,F401  isort: skip  (registers `python -m model_zoo pii`)

__all__ = ["DEFAULT_MODEL", "ENTITY_TYPES", "MASK", "MIN_SCORE", "MODEL_ENV", "STYLES", "EntityType", "PiiSpan",
           "PrivacyUnavailableError", "RedactionStyleError", "Redactor", "Replacement", "ScanResult", "Status",
           "UnknownEntityError", "check_style", "engine", "entity_titles", "find_pii", "find_pii_many",
           "fingerprint", "map_offset", "redact", "redact_csv", "redact_frame", "scan_csv", "scan_frame", "status"]
