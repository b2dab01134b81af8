"""What counts as one word across sentences, and which words are likely shortcuts (names, numbers, punctuation).

A *word* is one of the explainer's whitespace words (:attr:`explainers.Attribution.words`: what it perturbs and
scores), lower-cased, with curly apostrophes made straight and the punctuation at its ends stripped, so that
``"Film,"`` and ``film`` are one word; a word made only of punctuation (``--``, ``...``) keeps it.

A word that carries high importance but no meaning for the task is a possible *shortcut*. Three kinds are
flagged, by fixed rules (no model, no network):

- ``punctuation``: no letter or digit at all (``--``, ``!``, ``…``, an emoji);
- ``number``: digits, optionally with separators, a currency sign, ``%`` or an ordinal/decade ending
  (``146``, ``2.5``, ``$10``, ``90%``, ``1970s``, ``3rd``);
- ``name``: a word in :data:`FIRST_NAMES` (a short list of common English first names that are not also
  ordinary words), or a word written capitalised in at least :data:`NAME_SHARE` of its uses *inside* a
  sentence (not its first word, not after ``. ! ? …``), seen there at least once: proper nouns such as actors,
  directors, places and titles. ``I`` and its contractions are never names.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

_EDGES = string.punctuation + "“”‘’«»…–—¡¿"
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'"})
_NUMBER_RE = re.compile(r"^[#$£€¥]?\d[\d,.:/\-]*(?:%|s|'s|st|nd|rd|th|k|m|bn)?$")
_SENTENCE_END = ".!?…"
_OPENERS = "\"'“‘([{«"
NAME_SHARE = 0.8  # a word written capitalised in at least this share of its mid-sentence uses is a likely name
NOT_NAMES = frozenset({"i", "i'm", "i've", "i'd", "i'll"})
# Common English first names that are not also ordinary words (no "will", "mark", "grace", "frank", "bill").
FIRST_NAMES = frozenset("""
aaron adam alan albert alex alice amanda amy andrew angela ann anna anne anthony arnold barbara ben benjamin
brad brian bruce carl carol catherine charles charlie chris christopher clint daniel david debra denzel diane
donald dorothy edward elizabeth emily emma eric frances gary george harrison harry helen henry jack james
jane jason jeff jeffrey jennifer jessica jim joe john johnny jonathan joseph joshua julia julie karen kate
keanu kenneth kevin laura leonardo linda lisa margaret maria mary matt matthew meryl michael michelle nancy
nicole nicolas patricia paul peter quentin rachel richard robert robin ryan samuel sandra sarah scarlett sean
stanley stephen steve steven susan ted thomas tim timothy tom tony walter william woody
""".split())


def word_key(word: str) -> str:
    """The word as counted across sentences: lower-cased, apostrophes straightened, end punctuation stripped.

    >>> word_key("Film,"), word_key("“Iwai’s"), word_key("--")
    ('film', "iwai's", '--')
    """
    low = word.translate(_APOSTROPHES).lower()
    core = low.strip(_EDGES)
    return core or low


def core_form(word: str) -> str:
    """The word as written (case kept), end punctuation stripped: what capitalisation is judged on."""
    form = word.translate(_APOSTROPHES)
    return form.strip(_EDGES) or form


def starts_sentence(text: str, start: int) -> bool:
    """Whether the word at ``start`` opens ``text`` or a sentence (after ``. ! ? …``, quotes and brackets)."""
    before = text[:start].rstrip().rstrip(_OPENERS).rstrip()
    return not before or before[-1] in _SENTENCE_END


def is_punctuation(key: str) -> bool:
    return not any(ch.isalnum() for ch in key)


def is_number(key: str) -> bool:
    return bool(_NUMBER_RE.match(key))


@dataclass
class Casing:
    """How a word was written inside sentences: uses there, and how many of those were capitalised."""

    mid: int = 0
    capitalised: int = 0

    def add(self, text: str, start: int, written: str) -> None:
        if starts_sentence(text, start):
            return
        self.mid += 1
        self.capitalised += bool(written[:1].isupper())


def shortcut_kind(key: str, casing: Casing | None = None) -> tuple[str, str]:
    """``(kind, why)`` for a word: kind is ``punctuation``, ``number``, ``name`` or ``""`` (none).

    Args:
        key: the word (:func:`word_key`).
        casing: how it was written inside sentences (None: judged on the first-name list only).
    """
    if is_punctuation(key):
        return "punctuation", "punctuation or a symbol: no letter or digit"
    if is_number(key):
        return "number", "a number"
    if key in NOT_NAMES:
        return "", ""
    if key in FIRST_NAMES:
        return "name", "a common first name"
    if casing is not None and casing.mid and casing.capitalised >= NAME_SHARE * casing.mid:
        return "name", (f"a likely name: capitalised inside a sentence in {casing.capitalised} of its "
                        f"{casing.mid} use{'s' if casing.mid != 1 else ''} there")
    return "", ""
