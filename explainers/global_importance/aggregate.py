"""From per-sentence explanations to per-class word importance, and from two models' tables to what changed.

Each sentence is explained for the class the model predicts, so its scores say how much each word pushed the
model *toward* that class (every Loupe explainer attributes the target class's probability). For class ``c``
a word's use counts as:

- its score, in a sentence predicted ``c``;
- minus its score, in a sentence predicted as the other class of a two-class model (the two probabilities sum
  to one, so a push toward one is exactly the same push away from the other);
- nothing, in a sentence predicted as another class of a model with more classes (its effect on ``c`` was not
  measured).

A word's figures for a class: its uses (``count``), the sentences holding it (``sentences``), the mean and the
sum of its scores toward the class. The tables list, among words found in at least ``min_sentences``
sentences, the ``top_k`` with the highest mean (toward) and the lowest (away), each with up to ``examples``
sentences where it pushed hardest in that direction.

A listed word of a kind that should mean nothing for the task (:func:`~.words.shortcut_kind`: a name, a number,
punctuation) is a *possible shortcut* when it also carries high importance: a mean at least
:data:`SHORTCUT_SHARE` of the largest absolute mean listed for that class.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from explainers.global_importance.words import Casing, core_form, shortcut_kind, word_key
from model_zoo.errors import LoupeError

SHORTCUT_SHARE = 0.25  # a listed name/number/punctuation is flagged when |mean| >= this share of the class's top


@dataclass(frozen=True)
class WordStat:
    """One word's importance for one class over the explained sentences."""

    word: str
    count: int  # uses of the word
    sentences: int  # sentences holding it
    mean: float  # mean attribution toward the class over its uses
    total: float  # summed attribution toward the class
    kind: str = ""  # "name", "number", "punctuation" or "" (see words.shortcut_kind)
    why: str = ""
    examples: tuple[tuple[int, float], ...] = ()  # (sentence index, score toward the class there), strongest first
    shortcut: bool = False  # of such a kind and important (see SHORTCUT_SHARE): a possible shortcut


@dataclass(frozen=True)
class ClassWords:
    """The words that push most toward and away from one class; ``means`` holds every word frequent enough
    (word -> ``(count, sentences, mean, kind)``), for comparing models."""

    label: str
    toward: tuple[WordStat, ...]
    away: tuple[WordStat, ...]
    means: dict[str, tuple[int, int, float, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class WordShift:
    """How one word's mean attribution toward a class changed from model A to model B (same sentences)."""

    word: str
    count: int
    sentences: int
    mean_a: float
    mean_b: float
    change: float  # mean_b - mean_a
    kind: str = ""


@dataclass(frozen=True)
class ClassShift:
    label: str
    gained: tuple[WordShift, ...]  # pushed more toward the class under model B
    lost: tuple[WordShift, ...]  # pushed less toward it (or further away)


@dataclass(frozen=True)
class Comparison:
    """Model B against model A on the same sentences, class by class."""

    model_a: str
    model_b: str
    classes: tuple[ClassShift, ...]
    common: int  # words frequent enough under both models

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _toward(score: float, target: int, cls: int, n_classes: int) -> float | None:
    if cls == target:
        return score
    return -score if n_classes == 2 else None


def aggregate(records: Mapping[int, Mapping[str, Any]], texts: Mapping[int, str] | Sequence[str],
              labels: Sequence[str], *, top_k: int = 15, min_sentences: int = 3,
              examples: int = 5) -> tuple[ClassWords, ...]:
    """Per class, the words that push most toward and away from it (see the module docstring).

    Args:
        records: sentence index -> ``{"target": class explained, "spans": [[start, end], ...], "scores": [...]}``
            (records holding ``"error"`` are skipped).
        texts: the sentences, by the same index.
        labels: the class names (their number decides whether signs flip for the other class).
        top_k: words listed toward and away.
        min_sentences: words found in fewer sentences are left out of the tables.
        examples: sentences kept per listed word.
    """
    n_classes = len(labels)
    uses: list[dict[str, list[tuple[int, float]]]] = [defaultdict(list) for _ in range(n_classes)]
    casing: dict[str, Casing] = defaultdict(Casing)
    for idx in sorted(records):
        rec = records[idx]
        if "error" in rec:
            continue
        text = texts[idx]
        target = int(rec["target"])
        if not 0 <= target < n_classes:
            raise LoupeError(f"Sentence {idx} was explained for class {target}, which the model does not have.")
        for (start, end), score in zip(rec["spans"], rec["scores"]):
            written = text[start:end]
            key = word_key(written)
            casing[key].add(text, start, core_form(written))
            for c in range(n_classes):
                value = _toward(float(score), target, c, n_classes)
                if value is not None:
                    uses[c][key].append((idx, value))
    kinds = {key: shortcut_kind(key, case) for key, case in casing.items()}
    return tuple(_class_words(labels[c], uses[c], kinds, top_k, min_sentences, examples) for c in range(n_classes))


def _stat(word: str, found: list[tuple[int, float]], kind: tuple[str, str], examples: int) -> WordStat:
    total = sum(v for _, v in found)
    mean = total / len(found)
    direction = 1.0 if mean >= 0 else -1.0
    strongest: dict[int, float] = {}
    for idx, value in found:  # a word used twice in a sentence: its stronger use there
        if idx not in strongest or direction * value > direction * strongest[idx]:
            strongest[idx] = value
    shown = sorted(strongest.items(), key=lambda kv: (-direction * kv[1], kv[0]))[:examples]
    return WordStat(word, len(found), len(strongest), round(mean, 6), round(total, 6), kind[0], kind[1],
                    tuple((i, round(v, 6)) for i, v in shown))


def _class_words(label: str, uses: Mapping[str, list[tuple[int, float]]], kinds: Mapping[str, tuple[str, str]],
                 top_k: int, min_sentences: int, examples: int) -> ClassWords:
    frequent = {w: found for w, found in uses.items() if len({i for i, _ in found}) >= min_sentences}
    means = {w: sum(v for _, v in found) / len(found) for w, found in frequent.items()}
    toward = sorted((w for w, m in means.items() if m > 0), key=lambda w: (-means[w], w))[:top_k]
    away = sorted((w for w, m in means.items() if m < 0), key=lambda w: (means[w], w))[:top_k]
    table = {w: (len(found), len({i for i, _ in found}), round(means[w], 6), kinds[w][0])
             for w, found in sorted(frequent.items())}
    scale = max((abs(means[w]) for w in toward + away), default=0.0)

    def stat(w: str) -> WordStat:
        important = scale > 0 and abs(means[w]) >= SHORTCUT_SHARE * scale
        return dataclasses.replace(_stat(w, frequent[w], kinds[w], examples), shortcut=bool(kinds[w][0]) and important)

    return ClassWords(label, tuple(stat(w) for w in toward), tuple(stat(w) for w in away), table)


def compare(a: Sequence[ClassWords], b: Sequence[ClassWords], model_a: str, model_b: str,
            top_k: int = 15) -> Comparison:
    """The words whose mean attribution toward each class rose (gained) or fell (lost) most from A to B.

    Only words frequent enough under both (``means`` of both tables) are compared; A and B must be tables of
    the same sentences with the same classes.

    Raises:
        LoupeError: the two have different classes.
    """
    if [c.label for c in a] != [c.label for c in b]:
        raise LoupeError(f"The two models have different classes ({', '.join(c.label for c in a)} against "
                         f"{', '.join(c.label for c in b)}), so their words cannot be compared class by class.")
    classes = []
    common = 0
    for ca, cb in zip(a, b):
        shared = sorted(ca.means.keys() & cb.means.keys())
        common = max(common, len(shared))
        shifts = [WordShift(w, ca.means[w][0], ca.means[w][1], ca.means[w][2], cb.means[w][2],
                            round(cb.means[w][2] - ca.means[w][2], 6), ca.means[w][3] or cb.means[w][3])
                  for w in shared]
        gained = sorted((s for s in shifts if s.change > 0), key=lambda s: (-s.change, s.word))[:top_k]
        lost = sorted((s for s in shifts if s.change < 0), key=lambda s: (s.change, s.word))[:top_k]
        classes.append(ClassShift(ca.label, tuple(gained), tuple(lost)))
    return Comparison(model_a, model_b, tuple(classes), common)
