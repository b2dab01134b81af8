"""One classifier for the whole sequence: a head over the union of the tasks' label sets.

Labels are matched by name: tasks that share a label set (two party-prediction domains) share its columns, a
task with new labels adds columns. The base's head is *extended*: the rows of labels it already had are kept,
the new rows start as transformers initialises a head. Two scenarios (van de Ven et al., 2022):

- ``class`` (class-incremental): the task is not known when predicting. Training a task uses the columns of
  every label seen so far (later tasks' columns are left out until their task), and prediction is the argmax
  over all columns: what the saved model does on every Loupe page.
- ``task`` (task-incremental): the task is known when predicting. A task's loss and prediction use only its own
  columns, so each task has its own head: separate linear heads on one encoder are exactly separate rows of one
  weight matrix, and with the softmax restricted to a task's rows no other task's rows get a gradient from it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from model_zoo.errors import LoupeError
from model_zoo.methods import head_names

SCENARIOS = {"class": "class-incremental (one extended head; the task is not known when predicting)",
             "task": "task-incremental (each task its own columns of the head; the task is known when predicting)"}


def label_union(label_sets: Sequence[Sequence[str]]) -> list[str]:
    """Every label of the tasks, each once, in order of first appearance."""
    out: list[str] = []
    for labels in label_sets:
        out += [str(name) for name in labels if str(name) not in out]
    return out


def task_columns(label_sets: Sequence[Sequence[str]], union: Sequence[str]) -> list[list[int]]:
    """For each task, the head columns of its labels (in the task's own label order)."""
    index = {name: i for i, name in enumerate(union)}
    return [[index[str(name)] for name in labels] for labels in label_sets]


def allowed_columns(scenario: str, columns: Sequence[Sequence[int]], task: int, step: int) -> list[int]:
    """The columns an example of ``task`` is scored over while step ``step`` trains (see the module docstring)."""
    if scenario == "task":
        return list(columns[task])
    return sorted({c for cols in columns[: step + 1] for c in cols})


def predict(logits: np.ndarray, columns: Sequence[int] | None = None) -> np.ndarray:
    """The predicted head column per row: argmax over ``columns`` (task-incremental) or over all (None)."""
    logits = np.asarray(logits)
    if columns is None:
        return logits.argmax(axis=1)
    cols = np.asarray(list(columns), dtype=int)
    return cols[logits[:, cols].argmax(axis=1)]


def _head_linear(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """The head's output layer (its last Linear with one output per label), with its parent and attribute name."""
    n = int(getattr(model.config, "num_labels", 0))
    found: tuple[nn.Module, str, nn.Linear] | None = None
    for head in head_names(model):
        module = getattr(model, head)
        if isinstance(module, nn.Linear) and module.out_features == n:
            found = (model, head, module)
        for name, sub in module.named_modules():
            if name and isinstance(sub, nn.Linear) and sub.out_features == n:
                parent = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
                found = (parent, name.rsplit(".", 1)[-1], sub)
    if found is None:
        raise LoupeError(f"{type(model).__name__}: no output layer with {n} outputs in its head; Loupe cannot "
                         "extend it for new labels.")
    return found


def _set_labels(model: nn.Module, labels: Sequence[str]) -> None:
    config: Any = model.config
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: i for i, name in enumerate(labels)}
    if hasattr(model, "num_labels"):
        setattr(model, "num_labels", len(labels))  # noqa: B010  (nn.Module's attribute typing says Tensor | Module)


def extend_head(model: nn.Module, labels: Sequence[str], keep: bool = True) -> list[str]:
    """Give ``model`` (in place) one output per label of ``labels``.

    Args:
        labels: the union of the sequence's labels.
        keep: copy the trained rows of labels the model already has (matched by name); False: every row new
            (a base whose head is untrained).
    Returns:
        The labels whose rows were kept.
    """
    config: Any = model.config
    old = [str(config.id2label.get(i, i)) for i in range(int(config.num_labels))]
    parent, attr, layer = _head_linear(model)
    fresh = nn.Linear(layer.in_features, len(labels), bias=layer.bias is not None,
                      device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        fresh.weight.normal_(mean=0.0, std=float(getattr(config, "initializer_range", 0.02)))
        if fresh.bias is not None:
            fresh.bias.zero_()
        kept = []
        for j, name in enumerate(labels):
            if keep and name in old:
                i = old.index(name)
                fresh.weight[j] = layer.weight[i]
                if fresh.bias is not None and layer.bias is not None:
                    fresh.bias[j] = layer.bias[i]
                kept.append(str(name))
    setattr(parent, attr, fresh)
    _set_labels(model, list(labels))
    return kept


def restrict_head(model: nn.Module, columns: Sequence[int]) -> nn.Module:
    """A copy of a plain (not peft-wrapped) ``model`` whose head keeps only ``columns``: the model as one task
    answers it (task-incremental), a classifier over that task's labels alone."""
    config: Any = model.config
    labels = [str(config.id2label.get(c, c)) for c in columns]
    out = copy.deepcopy(model)
    parent, attr, layer = _head_linear(out)
    rows = torch.as_tensor(list(columns), dtype=torch.long, device=layer.weight.device)
    part = nn.Linear(layer.in_features, len(columns), bias=layer.bias is not None, device=layer.weight.device,
                     dtype=layer.weight.dtype)
    with torch.no_grad():
        part.weight.copy_(layer.weight[rows])
        if part.bias is not None and layer.bias is not None:
            part.bias.copy_(layer.bias[rows])
    setattr(parent, attr, part)
    _set_labels(out, labels)
    return out
