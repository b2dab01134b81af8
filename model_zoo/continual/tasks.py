"""The tasks of a sequence: each a training and a test split and its label set, and how they were made."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_zoo.continual.bundled import BUNDLED, bundled_splits
from model_zoo.continual.config import ContinualConfig, TaskSpec
from model_zoo.data import SPLIT_SEED, TextDataset, load_csv, split_dataset
from model_zoo.errors import DatasetError


@dataclass
class Task:
    """One step of the sequence: its training and test splits (disjoint), its labels, how it was split."""

    name: str
    source: str  # a bundled key, or the CSV file's name
    description: str
    train: TextDataset
    test: TextDataset
    how: str
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return list(self.train.label_names)

    def summary(self) -> dict[str, Any]:
        """Name, source, what it asks, labels, sizes and class balance per split, how it was split."""
        return {"name": self.name, "source": self.source, "description": self.description, "labels": self.labels,
                "train": {"size": len(self.train), "classes": self.train.class_counts()},
                "test": {"size": len(self.test), "classes": self.test.class_counts()},
                "split": self.how, "notes": list(self.notes)}


def _sample(ds: TextDataset, n: int, seed: int) -> TextDataset:
    if not n or n >= len(ds):
        return ds
    return ds.subset(sorted(random.Random(seed).sample(range(len(ds)), n)))


def _csv_task(t: TaskSpec) -> tuple[dict[str, TextDataset], str, str]:
    path = Path(t.source).expanduser()
    if not path.is_file():
        raise DatasetError(f"No data file at {path}.")
    full = load_csv(path, t.text_column, t.label_column, name=path.name)
    parts = split_dataset(full, {"test": t.test_fraction}, SPLIT_SEED)
    how = (f"{path.name} split {100 - round(100 * t.test_fraction)}% train / {round(100 * t.test_fraction)}% test, "
           f"stratified by label, seed {SPLIT_SEED}; copies of a text stay in one split")
    return parts, how, f"{t.label_column!r} of {path.name}"


def load_task(t: TaskSpec, index: int, limit: int = 0, test_limit: int = 0, seed: int = 13) -> Task:
    """Task ``index`` of a sequence: its splits, sampled to ``limit`` training and ``test_limit`` test texts.

    The training sample is drawn with ``seed + index``; the test sample with a fixed seed, so runs with other
    training seeds are scored on the same texts.
    """
    if t.source in BUNDLED:
        parts = bundled_splits(t.source)
        title, description, how = BUNDLED[t.source]
        name, source = t.name or title, t.source
    else:
        parts, how, description = _csv_task(t)
        name, source = t.name or Path(t.source).stem, Path(t.source).name
    train = _sample(parts["train"], limit, seed + index)
    test = _sample(parts["test"], test_limit, SPLIT_SEED + index)
    notes = list(parts["train"].notes)
    if limit and limit < len(parts["train"]):
        notes.append(f"training on a seeded sample of {limit:,} of {len(parts['train']):,} texts")
    if test_limit and test_limit < len(parts["test"]):
        notes.append(f"scored on a fixed sample of {test_limit:,} of {len(parts['test']):,} test texts")
    return Task(name, source, description, train, test, how, notes)


def load_tasks(cfg: ContinualConfig, seed: int = 13) -> list[Task]:
    """Every task of ``cfg``'s sequence, in order (names made unique)."""
    tasks = [load_task(t, i, cfg.limit, cfg.test_limit, seed) for i, t in enumerate(cfg.task_specs())]
    seen: dict[str, int] = {}
    for task in tasks:
        seen[task.name] = seen.get(task.name, 0) + 1
        if seen[task.name] > 1:
            task.name = f"{task.name} ({seen[task.name]})"
    return tasks
