"""Finding personal data: :func:`find_pii` for one text, :func:`find_pii_many` for a column (batched NER).

Presidio reports overlapping candidates (the ``example.com`` inside an e-mail address is also a URL; spaCy
sometimes calls an IBAN's digits an organisation). One span is kept per stretch of text: pattern matches
(validated by checksums and formats) beat NER guesses, then the higher score, then the longer match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from model_zoo.errors import LoupeError
from model_zoo.privacy.analyzer import ENTITY_TYPES, LANGUAGE, MIN_SCORE, engine, loupe_entity

Progress = Callable[[int, int], None]  # (texts done, texts in all)
BATCH = 64


class UnknownEntityError(LoupeError, ValueError):
    """An entity type that Loupe does not detect was asked for."""


@dataclass(frozen=True)
class PiiSpan:
    """One piece of personal data in a text: ``text[start:end]`` is ``value``, of type ``entity``.

    ``value`` is the original: keep spans in memory only (they are what must not be stored).
    """

    start: int
    end: int
    entity: str
    score: float
    value: str

    @property
    def kind(self) -> str:
        """``pattern`` or ``ner`` (how this type is found)."""
        return ENTITY_TYPES[self.entity].kind


def check_entities(entities: Iterable[str] | None) -> list[str] | None:
    """The entity types asked for, checked (None: all)."""
    if entities is None:
        return None
    wanted = [str(e).strip().upper() for e in entities if str(e).strip()]
    unknown = [e for e in wanted if e not in ENTITY_TYPES]
    if unknown:
        raise UnknownEntityError(f"Unknown kind(s) of personal data: {', '.join(unknown)}; known: "
                                 f"{', '.join(ENTITY_TYPES)}.")
    return wanted


def _resolve(text: str, results: Iterable[Any], wanted: set[str] | None, min_score: float) -> list[PiiSpan]:
    """Presidio's results as non-overlapping spans (see the module docstring), in text order."""
    candidates = []
    for r in results:
        entity = loupe_entity(r.entity_type)
        if entity is None or r.score < min_score or (wanted is not None and entity not in wanted):
            continue
        start, end = int(r.start), int(r.end)
        while end > start and text[end - 1] in " \t\r\n.,;:!?)'\"":  # trailing punctuation is not the name
            end -= 1
        if end > start:
            candidates.append(PiiSpan(start, end, entity, float(r.score), text[start:end]))
    candidates.sort(key=lambda s: (s.kind != "pattern", -s.score, -(s.end - s.start), s.start))
    kept: list[PiiSpan] = []
    for span in candidates:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def find_pii(text: str, entities: Iterable[str] | None = None, min_score: float = MIN_SCORE) -> list[PiiSpan]:
    """The personal data in ``text``: non-overlapping spans in text order.

    Args:
        text: any text (an empty one has none).
        entities: only these Loupe entity types (``PERSON``, ``EMAIL``... see ``ENTITY_TYPES``); None: all
            that this server detects.
        min_score: drop detections scoring below this (0..1).

    Raises:
        UnknownEntityError: an entity type Loupe does not know.
        PrivacyUnavailableError: Presidio is not installed.
    """
    return find_pii_many([text], entities, min_score)[0]


def find_pii_many(texts: Sequence[str], entities: Iterable[str] | None = None, min_score: float = MIN_SCORE,
                  progress: Progress | None = None, batch_size: int = BATCH) -> list[list[PiiSpan]]:
    """:func:`find_pii` for many texts, the NER run in batches (about twice as fast as one by one).

    ``progress(done, total)`` is called after each batch. The engine is held one batch at a time, so other
    callers get their turn during a long scan.
    """
    wanted = check_entities(entities)
    wanted_set = set(wanted) if wanted is not None else None
    eng = engine()
    out: list[list[PiiSpan]] = []
    total = len(texts)
    for lo in range(0, total, max(1, batch_size)):
        batch = [t if isinstance(t, str) else "" if t is None else str(t) for t in texts[lo:lo + batch_size]]
        with eng.lock:
            if eng.nlp is not None:
                artifacts = [a for _, a in eng.analyzer.nlp_engine.process_batch(batch, LANGUAGE,
                                                                                  batch_size=len(batch))]
            else:
                artifacts = [None] * len(batch)
            for text, arts in zip(batch, artifacts):
                if not text.strip():
                    out.append([])
                    continue
                results = eng.analyzer.analyze(text, language=LANGUAGE, nlp_artifacts=arts)
                out.append(_resolve(text, results, wanted_set, min_score))
        if progress is not None:
            progress(len(out), total)
    return out


__all__ = ["BATCH", "PiiSpan", "Progress", "UnknownEntityError", "check_entities", "find_pii", "find_pii_many"]
