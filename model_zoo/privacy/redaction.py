"""Redacting personal data: three styles, and a record of every replacement.

- ``placeholder``: the entity type in angle brackets (``<PERSON>``, ``<EMAIL>``);
- ``mask``: ``█████`` (five blocks whatever the length, so the mask does not tell the length either);
- ``hash``: a stable pseudonym, ``<PERSON_3f9a0c21>``: the same value gets the same token for as long as the
  :class:`Redactor` (its salt) lives, so "Ann Lee" in row 3 and "ann  lee" in row 900 of one dataset read as
  one person, while another redactor (another salt) gives other tokens. Names are compared case- and
  space-insensitively, numbers (phones, cards, IBANs) by their letters and digits only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from model_zoo.errors import LoupeError
from model_zoo.privacy.analyzer import MIN_SCORE
from model_zoo.privacy.detect import PiiSpan, check_entities, find_pii

STYLES = ("placeholder", "mask", "hash")
MASK = "█████"
_NUMBERS = {"PHONE", "CREDIT_CARD", "IBAN", "IP_ADDRESS"}
_SPACES = re.compile(r"\s+")


class RedactionStyleError(LoupeError, ValueError):
    """A redaction style other than placeholder, mask or hash."""


@dataclass(frozen=True)
class Replacement:
    """One replaced span: where it was in the original (``start``, ``end``), where its token is in the redacted
    text (``new_start``, ``new_end``), its type, the original value and the token.

    It holds the original: keep replacements in memory only.
    """

    start: int
    end: int
    new_start: int
    new_end: int
    entity: str
    original: str
    token: str


def check_style(style: object) -> str:
    """``style`` if it is one of :data:`STYLES`."""
    if style not in STYLES:
        raise RedactionStyleError(f"Unknown redaction style {style!r}; use one of {', '.join(STYLES)}.")
    return str(style)


def _normalise(entity: str, value: str) -> str:
    if entity in _NUMBERS:
        return "".join(c for c in value if c.isalnum()).upper()
    return _SPACES.sub(" ", value).strip().casefold()


class Redactor:
    """Replaces personal data in one style; in ``hash`` style, one salt for all the texts it sees.

    Args:
        style: ``placeholder``, ``mask`` or ``hash``.
        salt: the hash style's salt (bytes or text); None: 16 random bytes, so pseudonyms are stable within
            this redactor only. Give one to get the same pseudonyms across runs.
        entities: only these entity types (None: all that are detected).
        min_score: detections below this score are left alone.
    """

    def __init__(self, style: str = "placeholder", salt: bytes | str | None = None,
                 entities: Iterable[str] | None = None, min_score: float = MIN_SCORE) -> None:
        self.style = check_style(style)
        self.salt = salt.encode("utf-8") if isinstance(salt, str) else (salt or secrets.token_bytes(16))
        self.entities = check_entities(entities)
        self.min_score = min_score

    def token(self, entity: str, value: str) -> str:
        """The replacement of ``value`` (of type ``entity``) in this redactor's style."""
        if self.style == "mask":
            return MASK
        if self.style == "placeholder":
            return f"<{entity}>"
        digest = hmac.new(self.salt, f"{entity}\0{_normalise(entity, value)}".encode(), hashlib.sha256).hexdigest()
        return f"<{entity}_{digest[:8]}>"

    def redact(self, text: str, spans: Sequence[PiiSpan] | None = None) -> tuple[str, list[Replacement]]:
        """``text`` with its personal data replaced, and one :class:`Replacement` per span (text order).

        Args:
            spans: the spans to replace (default: :func:`find_pii` with this redactor's entities and score);
                overlapping ones after the first are skipped.
        """
        if spans is None:
            spans = find_pii(text, self.entities, self.min_score)
        return apply(text, spans, self.token)

    def redact_many(self, texts: Sequence[str], spans: Sequence[Sequence[PiiSpan]]) -> list[str]:
        """Each text with its (already found) spans replaced."""
        return [apply(t, s, self.token)[0] for t, s in zip(texts, spans)]


def apply(text: str, spans: Sequence[PiiSpan], token: Callable[[str, str], str]) -> tuple[str, list[Replacement]]:
    """Replace ``spans`` of ``text`` by ``token(entity, value)``; the redacted text and the replacements."""
    parts: list[str] = []
    out: list[Replacement] = []
    pos = length = 0
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.start < pos or span.end > len(text):
            continue
        before = text[pos:span.start]
        parts.append(before)
        length += len(before)
        new = token(span.entity, text[span.start:span.end])
        out.append(Replacement(span.start, span.end, length, length + len(new), span.entity,
                               text[span.start:span.end], new))
        parts.append(new)
        length += len(new)
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts), out


def redact(text: str, mode: str = "placeholder", *, spans: Sequence[PiiSpan] | None = None,
           salt: bytes | str | None = None, entities: Iterable[str] | None = None,
           min_score: float = MIN_SCORE) -> tuple[str, list[Replacement]]:
    """``text`` with its personal data replaced in style ``mode``, and the mapping (one :class:`Replacement`
    per span, in text order: original span and value, redacted span and token).

    Example: ``redact("Mail ann@x.org", "placeholder")`` -> ``("Mail <EMAIL>", [Replacement(5, 14, 5, 12,
    "EMAIL", "ann@x.org", "<EMAIL>")])``. For pseudonyms shared by many texts, use one :class:`Redactor`.

    Raises:
        RedactionStyleError: ``mode`` is not one of :data:`STYLES`.
    """
    return Redactor(mode, salt, entities, min_score).redact(text, spans)


def map_offset(pos: int, replacements: Sequence[Replacement], end: bool = False) -> int:
    """Where position ``pos`` of the original text is in the redacted one. A position inside a replaced span
    goes to the start of its token (or, with ``end``, to the token's end)."""
    shift = 0
    for r in replacements:
        if pos <= r.start:  # before this span: a word ending where the span starts stays before its token
            break
        if pos < r.end:  # inside the span
            return r.new_end if end else r.new_start
        shift = r.new_end - r.end
    return pos + shift


__all__ = ["MASK", "STYLES", "RedactionStyleError", "Redactor", "Replacement", "apply", "check_style",
           "map_offset", "redact"]
