"""Experience replay: a fixed-size buffer of earlier tasks' training examples, mixed into every later task's.

The buffer is all that is kept of a finished task (what a deployed system could store): after task ``t`` is
trained, the buffer is rebuilt from what it held plus task ``t``'s training examples, so an example of an old
task can stay in it but never come back once dropped. Every example draws a random key once (seeded), and:

- ``random``: the ``size`` examples with the smallest keys are kept: a uniform sample of every example seen
  so far (reservoir sampling), so larger tasks and classes get more places;
- ``balanced``: the places are shared out equally over the (task, class) groups seen so far (a group with fewer
  examples than its share keeps them all and leaves the rest to the others); within a group, smallest keys.

While task ``t`` trains, the buffer holds only tasks ``0 .. t-1``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

SAMPLING = ("balanced", "random")


@dataclass(frozen=True)
class Item:
    """One buffered example: its task, its row in that task's training split, its class there, its key."""

    task: int
    index: int
    label: int
    key: float


class ReplayBuffer:
    """The buffer (see the module docstring).

    Args:
        size: the most examples it holds (at least 1).
        sampling: ``balanced`` or ``random``.
        seed: draws the keys (one stream per task, so a task's keys do not depend on the others).
    """

    def __init__(self, size: int, sampling: str = "balanced", seed: int = 13) -> None:
        if size < 1:
            raise ValueError("A replay buffer holds at least one example.")
        if sampling not in SAMPLING:
            raise ValueError(f"Replay sampling must be one of {', '.join(SAMPLING)}, not {sampling!r}.")
        self.size, self.sampling, self.seed = int(size), sampling, int(seed)
        self.items: list[Item] = []

    def __len__(self) -> int:
        return len(self.items)

    @property
    def tasks(self) -> list[int]:
        return sorted({it.task for it in self.items})

    def add_task(self, task: int, labels: Sequence[int]) -> None:
        """Offer task ``task``'s training examples (their class ids, in row order) once it has been trained."""
        if any(it.task == task for it in self.items):
            raise ValueError(f"Task {task} is already in the replay buffer.")
        rng = random.Random(self.seed * 1_000_003 + task)
        pool = self.items + [Item(task, i, int(y), rng.random()) for i, y in enumerate(labels)]
        keep = self._select(pool)
        self.items = sorted(keep, key=lambda it: (it.task, it.index))

    def _select(self, pool: list[Item]) -> list[Item]:
        if self.sampling == "random":
            return sorted(pool, key=lambda it: it.key)[: self.size]
        groups: dict[tuple[int, int], list[Item]] = {}
        for it in sorted(pool, key=lambda it: it.key):
            groups.setdefault((it.task, it.label), []).append(it)
        taken = dict.fromkeys(groups, 0)
        remaining = min(self.size, len(pool))
        open_groups = sorted(groups)
        while remaining > 0 and open_groups:
            share = max(1, remaining // len(open_groups))
            for g in list(open_groups):
                take = min(share, len(groups[g]) - taken[g], remaining)
                taken[g] += take
                remaining -= take
                if taken[g] == len(groups[g]):
                    open_groups.remove(g)
                if remaining == 0:
                    break
        return [it for g, members in groups.items() for it in members[: taken[g]]]

    def counts(self) -> dict[tuple[int, int], int]:
        """How many examples of each (task, class) the buffer holds."""
        out: dict[tuple[int, int], int] = {}
        for it in self.items:
            out[(it.task, it.label)] = out.get((it.task, it.label), 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "sampling": self.sampling, "seed": self.seed,
                "items": [asdict(it) for it in self.items]}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ReplayBuffer:
        buf = cls(int(raw["size"]), str(raw["sampling"]), int(raw["seed"]))
        buf.items = [Item(int(d["task"]), int(d["index"]), int(d["label"]), float(d["key"])) for d in raw["items"]]
        return buf
