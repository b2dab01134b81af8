"""The data of a run: train / validation / test splits with three roles, and how they were made.

Train fits the weights, validation only picks the checkpoint (early stopping) and is watched while training,
test is held out and scored once, on the model as saved. A CSV is split train / validation / test (see
``data.split_dataset``) unless the user brings validation or test files; Rotten Tomatoes has its own fixed
split by movie. Every stored metric names its split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_zoo.data import SPLITS, TextDataset, load_csv, rotten_tomatoes, split_dataset
from model_zoo.errors import DatasetError
from model_zoo.finetune.config import DataSpec, held_out_fractions
from model_zoo.finetune.redaction import redaction_note

ROLES = {
    "train": "fits the weights",
    "validation": "checkpoint selection (early stopping) and monitoring; not a test score",
    "test": "held out: scored once, on the final model",
}


@dataclass
class Splits:
    """Training, validation and test sets, disjoint, and how they were made."""

    train: TextDataset
    validation: TextDataset
    test: TextDataset
    source: str
    how: str = ""  # how the rows were split, in words
    notes: list[str] = field(default_factory=list)
    task: str = "text classification"

    @property
    def labels(self) -> list[str]:
        return list(self.train.label_names)

    def parts(self) -> dict[str, TextDataset]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def summary(self) -> dict[str, Any]:
        """Size, class balance and role per split, the sizes together, the source, the split method, notes."""
        out: dict[str, Any] = {k: {"size": len(v), "classes": v.class_counts(), "role": ROLES[k]}
                               for k, v in self.parts().items()}
        out.update(sizes={k: len(v) for k, v in self.parts().items()}, source=self.source, split=self.how,
                   notes=list(self.notes))
        return out

    def rows(self) -> dict[str, Any]:
        """Which rows of which file went to which split (``splits.json`` in the job folder)."""
        return {k: {"from": v.name, "rows": v.rows} for k, v in self.parts().items()}


def _sample(ds: TextDataset, n: int, seed: int) -> TextDataset:
    if not n or n >= len(ds):
        return ds
    return ds.subset(sorted(random.Random(seed).sample(range(len(ds)), n)))


def _data_file(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.is_file():
        raise DatasetError(f"No data file at {path}; use `rt` for the bundled Rotten Tomatoes data or a CSV path.")
    return path


def _split_notes(parts: dict[str, TextDataset], carved: dict[str, float]) -> list[str]:
    notes: list[str] = []
    train = set(parts["train"].texts)
    for split in ("validation", "test"):
        ds = parts[split]
        if split not in carved:
            shared = sum(t in train for t in ds.texts)
            if shared:
                notes.append(f"{shared} of the {len(ds)} {split} texts also occur in the training file; "
                             f"they make the {split} score look better than it is.")
            missing = [k for k, n in ds.class_counts().items() if not n]
            if missing:
                notes.append(f"The {split} file has no texts of class(es) {', '.join(missing)}.")
        thin = {k: n for k, n in ds.class_counts().items() if 0 < n < 5}
        if thin:
            notes.append(f"Few {split} texts for class(es) {', '.join(f'{k} ({n})' for k, n in thin.items())}: "
                         f"per-class {split} results rest on very few examples.")
    if len(parts["test"]) < 100:
        notes.append(f"The test split has {len(parts['test'])} texts: one text moves the test accuracy by "
                     f"{1 / max(1, len(parts['test'])):.3f}.")
    return notes


def load_data(data: DataSpec, seed: int = 13) -> Splits:
    """The splits a run trains, selects and tests on.

    Args:
        data: the data (source file or ``rt``, columns, fractions, separate files, split seed).
        seed: draws the ``limit`` / ``validation_limit`` samples (the training seed); the split itself
            depends only on ``data.split_seed``.

    Raises:
        DatasetError: a file cannot be used (see ``data.load_csv``), the fractions are bad, or a class is too
            small to appear in every split.
    """
    if data.source == "rt":
        if data.validation_source or data.test_source:
            raise DatasetError("Rotten Tomatoes comes with its own validation and test splits; separate files "
                               "go with a CSV.")
        train, val, test = (rotten_tomatoes(s) for s in SPLITS)
        return Splits(_sample(train, data.limit, seed), _sample(val, data.validation_limit, seed), test,
                      "Rotten Tomatoes review snippets (bundled)",
                      "fixed split by movie (about 80/10/10; no movie in two splits)",
                      task="sentiment (text classification)")
    path = _data_file(data.source)
    full = load_csv(path, data.text_column, data.label_column, name=path.name)
    own = {k: load_csv(_data_file(f), data.text_column, data.label_column, name=Path(f).name,
                       label_names=full.label_names)
           for k, f in (("validation", data.validation_source), ("test", data.test_source)) if f}
    carved = held_out_fractions(data)
    parts = {**(split_dataset(full, carved, data.split_seed) if carved else {"train": full}), **own}
    notes = [*full.notes, *(f"{v.name}: {n}" for v in own.values() for n in v.notes), *_split_notes(parts, carved)]
    if data.redaction:
        notes.insert(0, redaction_note(data.redaction))
    repeats = len(full) - len(set(full.texts))
    if carved and repeats:
        notes.append(f"{repeats} row(s) of {path.name} repeat an earlier text; every copy of a text stays in one "
                     "split, so no held-out text of the file was trained on.")
    if carved:
        shares = {k: round(100 * f) for k, f in carved.items()}
        how = (f"{path.name} split {100 - sum(shares.values())}% train / "
               + " / ".join(f"{v}% {k}" for k, v in shares.items())
               + f", stratified by label, seed {data.split_seed}; copies of a text stay in one split")
    else:
        how = f"{path.name} is all training data"
    how += "".join(f"; {k} from {v.name}" for k, v in own.items())
    return Splits(_sample(parts["train"], data.limit, seed), _sample(parts["validation"], data.validation_limit, seed),
                  parts["test"], f"CSV file {path.name}", how, notes)
