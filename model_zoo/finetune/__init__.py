"""Fine-tuning as a background job: data, base model, method, training with live metrics, the saved model.

The Fine-tune page calls :func:`prepare_model` to show trainable parameters, :func:`start_job` to launch a
run in its own process (job kind ``finetune`` -> :func:`run_job`), and :func:`save_to_store` to publish a
model that was kept private to the job (``publish=False``). ``python -m model_zoo finetune`` runs the same
job in the terminal; the default model is built by it too (:mod:`model_zoo.recipe`).

Modules, one job each: :mod:`~model_zoo.finetune.config` (the settings), :mod:`~model_zoo.finetune.splits`
(the data), :mod:`~model_zoo.finetune.model` (set-up and export), :mod:`~model_zoo.finetune.job` (the job),
:mod:`~model_zoo.finetune.command` (the command line). The methods live in :mod:`model_zoo.methods`.
"""

from model_zoo.finetune.config import (
    DataSpec,
    FinetuneConfig,
    default_train_config,
    held_out_fractions,
    validate_config,
)
from model_zoo.finetune.job import run_here, run_job, save_to_store, start_job
from model_zoo.finetune.model import Prepared, export_model, prepare_model
from model_zoo.finetune.splits import ROLES, Splits, load_data
from model_zoo.methods import METHODS

from model_zoo.finetune import command  # noqa: E402,F401  isort: skip  (registers the subcommand)

__all__ = ["METHODS", "ROLES", "DataSpec", "FinetuneConfig", "Prepared", "Splits", "default_train_config",
           "export_model", "held_out_fractions", "load_data", "prepare_model", "run_here", "run_job",
           "save_to_store", "start_job", "validate_config"]
