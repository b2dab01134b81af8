"""Continual fine-tuning: teach a model a sequence of tasks (new labels, new domains) and measure what it forgot.

A run trains one base model on the tasks in order, once per strategy — naive fine-tuning, experience replay
(:mod:`.replay`), elastic weight consolidation (:mod:`.ewc`), or both — with full fine-tuning or LoRA, one head
over every task's labels (:mod:`.heads`: class- or task-incremental), and scores every task after every step:
the accuracy matrix and its average accuracy, backward and forward transfer (:mod:`.metrics`). Each strategy's
final model is saved with a card recording the sequence, the strategy and the matrix.

Modules: :mod:`.config` (the settings and bundled sequences), :mod:`.bundled` and :mod:`.tasks` (the data),
:mod:`.model` (the extended model), :mod:`.steps` (training a step, scoring), :mod:`.run` (:func:`run_continual`),
:mod:`.job` (the ``continual`` job kind and ``python -m model_zoo continual``). Explanation drift on the first
task is an :class:`~model_zoo.continual.run.Observer` the explainers layer passes in.
"""

from model_zoo.continual.config import (
    SCOPE,
    SEQUENCES,
    STRATEGIES,
    ContinualConfig,
    TaskSpec,
    store_name,
    validate_config,
)
from model_zoo.continual.ewc import EWC, fisher_diagonal
from model_zoo.continual.heads import SCENARIOS, extend_head, label_union, predict, restrict_head, task_columns
from model_zoo.continual.metrics import Transfer, average_accuracy, backward_transfer, forward_transfer, transfer
from model_zoo.continual.replay import SAMPLING, ReplayBuffer
from model_zoo.continual.run import Observer, run_continual, slug
from model_zoo.continual.tasks import Task, load_task, load_tasks

from model_zoo.continual import job  # noqa: E402  isort: skip  (registers the job kind and the subcommand)
from model_zoo.continual.job import format_result, run_here, start_job  # noqa: E402  isort: skip

__all__ = ["EWC", "SAMPLING", "SCENARIOS", "SCOPE", "SEQUENCES", "STRATEGIES", "ContinualConfig", "Observer",
           "ReplayBuffer", "Task", "TaskSpec", "Transfer", "average_accuracy", "backward_transfer", "extend_head",
           "fisher_diagonal", "format_result", "forward_transfer", "job", "label_union", "load_task", "load_tasks",
           "predict", "restrict_head", "run_continual", "run_here", "slug", "start_job", "store_name",
           "task_columns", "transfer", "validate_config"]
