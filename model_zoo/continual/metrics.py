"""The accuracy matrix of a task sequence and what it says: average accuracy, backward and forward transfer.

``R[i][j]`` is the accuracy on task ``j``'s test split after training on task ``i`` (0-based, rows in training
order), and ``b[j]`` the accuracy on task ``j`` of the model the sequence started from. With ``T`` tasks
(Lopez-Paz & Ranzato, 2017, "Gradient Episodic Memory"; Díaz-Rodríguez et al., 2018):

- average accuracy = mean over ``j`` of ``R[T-1][j]``: how good the final model is on every task;
- backward transfer BWT = mean over ``i < T-1`` of ``R[T-1][i] - R[i][i]``: how much learning the later tasks
  changed the earlier ones (negative: forgetting);
- forward transfer FWT = mean over ``i >= 1`` of ``R[i-1][i] - b[i]``: how much the earlier tasks helped a task
  before it was trained on (its columns of the head are still untrained in a class-incremental run).

A matrix with missing rows (a cancelled run) gives the figures its finished rows allow, and None for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

Matrix = Sequence[Sequence[float]]


@dataclass(frozen=True)
class Transfer:
    """The summary of one accuracy matrix; None where the rows needed are missing (or a single task)."""

    average_accuracy: float | None
    bwt: float | None
    fwt: float | None
    tasks: int
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _square(r: Matrix) -> list[list[float]]:
    rows = [list(map(float, row)) for row in r]
    if rows and any(len(row) != len(rows[0]) for row in rows):
        raise ValueError("Every row of the accuracy matrix must have one entry per task.")
    if len(rows) > (len(rows[0]) if rows else 0):
        raise ValueError("The accuracy matrix has more rows (training steps) than tasks.")
    return rows


def average_accuracy(r: Matrix) -> float | None:
    """Mean accuracy over all tasks after the last task (None until every task has been trained)."""
    rows = _square(r)
    if not rows or len(rows) < len(rows[0]):
        return None
    return sum(rows[-1]) / len(rows[-1])


def backward_transfer(r: Matrix) -> float | None:
    """BWT: mean of ``R[T-1][i] - R[i][i]`` over the tasks before the last (None for one task or missing rows)."""
    rows = _square(r)
    if not rows or len(rows) < len(rows[0]) or len(rows) < 2:
        return None
    last = rows[-1]
    return sum(last[i] - rows[i][i] for i in range(len(rows) - 1)) / (len(rows) - 1)


def forward_transfer(r: Matrix, b: Sequence[float]) -> float | None:
    """FWT: mean of ``R[i-1][i] - b[i]`` over the tasks after the first that the finished rows reach."""
    rows = _square(r)
    if not rows or len(b) != len(rows[0]):
        return None
    gains = [rows[i - 1][i] - float(b[i]) for i in range(1, min(len(rows) + 1, len(rows[0])))]
    return sum(gains) / len(gains) if gains else None


def transfer(r: Matrix, b: Sequence[float]) -> Transfer:
    """Average accuracy, BWT and FWT of ``R`` (with ``b``, the starting model's accuracy per task)."""
    rows = _square(r)
    tasks = len(rows[0]) if rows else len(b)
    def r4(v: float | None) -> float | None:
        return None if v is None else round(v, 4)

    return Transfer(r4(average_accuracy(rows)), r4(backward_transfer(rows)), r4(forward_transfer(rows, b)), tasks,
                    len(rows))
