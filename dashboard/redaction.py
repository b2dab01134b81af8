"""Explanations seen through redaction: what the pages, links and reports show in the *hide* mode, and how much
of an explanation falls on personal data. No Streamlit here: the pages, the report and the CLI share it.

- :func:`redact_attribution`: a display copy of an explanation of the original text in which every piece of
  personal data is its token (``<PERSON>``, ``█████``...). Words that were one name become one word carrying
  their summed score; the first word-piece of a span shows the token, the others ``…`` with no width.
- :func:`pii_share`: the share of an explanation's attribution (by magnitude) on words overlapping personal
  data, per entity type, beside the share of the words they are.
- :func:`dependence_sentences`: the plain sentences of the "Does the decision depend on personal data?" panel.
- :func:`marked_html`: the text with its personal data marked (escaped).
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dashboard.components.highlight import esc_block, esc_html
from explainers import Attribution
from explainers.base import Word
from model_zoo.privacy import ENTITY_TYPES, PiiSpan, Replacement, map_offset

LARGE_SHARE = 0.2  # at or above: the panel says the prediction leans on personal data
CONTINUATION = "…"

Range = tuple[int, int, str]  # (start, end, entity type) in an attribution's text


def _overlaps(a: int, b: int, ranges: Sequence[Range]) -> list[Range]:
    return [r for r in ranges if a < r[1] and r[0] < b]


def redact_attribution(a: Attribution, replacements: Sequence[Replacement], shown_text: str) -> Attribution:
    """A copy of ``a`` (an explanation of the original text) that shows ``shown_text`` (the same text with
    ``replacements`` made) and holds nothing of what was replaced: text, tokens, word texts, offsets."""
    if not replacements:
        return a
    ranges = [(r.start, r.end, r.entity) for r in replacements]
    tokens, offsets = list(a.tokens), list(a.offsets)
    seen: set[int] = set()
    for i, ((s, e), special) in enumerate(zip(a.offsets, a.special)):
        hits = [k for k, r in enumerate(ranges) if s < r[1] and r[0] < e] if not special and e > s else []
        if not hits:
            start = map_offset(s, replacements)
            offsets[i] = (start, map_offset(e, replacements, end=True) if e > s else start)
            continue
        rep = replacements[hits[0]]
        if hits[0] in seen:  # a later piece of the same value: no text, no width
            tokens[i], offsets[i] = CONTINUATION, (rep.new_end, rep.new_end)
        else:
            seen.add(hits[0])
            tokens[i] = rep.token
            offsets[i] = (min(map_offset(s, replacements), rep.new_start), replacements[hits[-1]].new_end)
    words: list[Word] = []
    touched: list[bool] = []
    for w in a.words:
        start, end = map_offset(w.start, replacements), map_offset(w.end, replacements, end=True)
        hit = bool(_overlaps(w.start, w.end, ranges))
        if hit and words and touched[-1] and start < words[-1].end:  # one value over several words: one word
            last = words[-1]
            words[-1] = Word(shown_text[last.start:max(end, last.end)], last.start, max(end, last.end),
                             last.score + w.score, last.tokens + w.tokens)
            continue
        words.append(Word(shown_text[start:end], start, end, w.score, w.tokens))
        touched.append(hit)
    extras = {k: v for k, v in a.extras.items() if isinstance(v, (int, float, np.ndarray)) and not isinstance(v, bool)}
    return dataclasses.replace(a, text=shown_text, tokens=tuple(tokens), offsets=tuple(offsets), words=tuple(words),
                               extras=extras)


@dataclass(frozen=True)
class Share:
    """How much of one explanation falls on personal data.

    ``share``: the words overlapping personal data, as a fraction of the sum of all word-score magnitudes;
    ``by_entity``: the same per entity type; ``words``: the fraction of the words that are personal data.
    """

    method: str
    share: float
    by_entity: dict[str, float]
    words: float

    @property
    def top_entity(self) -> str | None:
        return max(self.by_entity, key=self.by_entity.__getitem__) if self.by_entity else None


def pii_share(a: Attribution, ranges: Sequence[Range]) -> Share:
    """The share of ``a``'s attribution on the words overlapping ``ranges`` (offsets into ``a.text``)."""
    mass = np.abs(a.word_scores())
    total = float(mass.sum())
    by_entity: dict[str, float] = {}
    pii_words = 0
    for w, m in zip(a.words, mass):
        hit = _overlaps(w.start, w.end, ranges)
        if hit:
            pii_words += 1
            by_entity[hit[0][2]] = by_entity.get(hit[0][2], 0.0) + (float(m) / total if total > 0 else 0.0)
    return Share(a.method, sum(by_entity.values()), by_entity, pii_words / len(a.words) if a.words else 0.0)


def phrase(entity: str | None) -> str:
    """"a person's name" for ``PERSON``; "personal data" for none or an unknown type."""
    return ENTITY_TYPES[entity].phrase if entity in ENTITY_TYPES else "personal data"


def dependence_sentences(labels: Sequence[str], with_pii: Sequence[float], without: Sequence[float],
                         shares: Sequence[Share], titles: dict[str, str], placeholders: bool = False) -> list[str]:
    """The panel's sentences (plain text; escape before Markdown): the prediction with and without the personal
    data, then the largest share of an explanation on personal data (pass the explainers that claim to be
    faithful: attention's share says little).

    Args:
        placeholders: the explanations are of the redacted text (the *redact input* mode), so the shares are
            those of the tokens standing for the personal data.
    """
    before, after = int(np.argmax(with_pii)), int(np.argmax(without))
    label = labels[before]
    moved = without[before] - with_pii[before]
    out = [f"With the personal data the model predicts {label} (p {with_pii[before]:.2f}); without it, p({label}) "
           f"is {without[before]:.2f} ({moved:+.2f}) and the prediction "
           + (f"stays {label}." if before == after else f"changes to {labels[after]}.")]
    if shares:
        top = max(shares, key=lambda s: s.share)
        what = phrase(top.top_entity) if top.top_entity and top.by_entity[top.top_entity] >= 0.6 * top.share \
            else "personal data"
        what = f"the placeholder for {what}" if placeholders else what
        source = titles.get(top.method, top.method)
        if top.share >= LARGE_SHARE:
            out.append(f"{top.share:.0%} of what drove this prediction is {what} (by {source}; personal data is "
                       f"{top.words:.0%} of the words).")
        else:
            out.append(f"At most {top.share:.0%} of what drove this prediction is {what} (by {source}; personal data "
                       f"is {top.words:.0%} of the words): the decision does not rest on it.")
    return out


def marked_html(text: str, spans: Sequence[PiiSpan]) -> str:
    """``text`` (escaped) with each span in a ``<mark>`` titled with its type, the type after it."""
    parts, pos = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        if s.start < pos:
            continue
        parts.append(esc_block(text[pos:s.start]))
        parts.append(f'<mark class="loupe-pii" title="{esc_html(s.entity)}">{esc_block(text[s.start:s.end])}'
                     f'<sup>{html.escape(s.entity)}</sup></mark>')
        pos = s.end
    parts.append(esc_block(text[pos:]))
    return f'<div class="loupe-text">{"".join(parts)}</div>'


PII_CSS = """
<style>
mark.loupe-pii{background:#fde68a;border-radius:4px;padding:0 2px}
mark.loupe-pii sup{font-size:.62em;color:#7c5800;margin-left:2px}
</style>
"""

__all__ = ["CONTINUATION", "LARGE_SHARE", "PII_CSS", "Range", "Share", "dependence_sentences", "marked_html",
           "phrase", "pii_share", "redact_attribution"]
