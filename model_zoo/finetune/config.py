"""A fine-tuning run's settings: the data (:class:`DataSpec`), the run (:class:`FinetuneConfig`) and the
training recipe of its method (:func:`default_train_config`), each declared once with ``spec.setting`` so
the page's widgets, the command line's flags, the job's JSON and validation all read the same spec."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model_zoo import spec, store
from model_zoo.data import SPLIT_SEED
from model_zoo.errors import DatasetError, LoupeError
from model_zoo.loading import BASE_ENCODER_ID, require_own_weights
from model_zoo.methods import METHODS
from model_zoo.private_training.config import DPConfig, FederatedConfig, check_private
from model_zoo.spec import setting
from model_zoo.training import TrainConfig

SCOPE = "finetune"
JOB_DEFAULTS: dict[str, Any] = {"eval_steps": 50, "save_steps": 100}  # a job watches validation, can resume


@dataclass
class DataSpec:
    """Where the examples come from: ``rt`` (bundled Rotten Tomatoes) or the path of a CSV file.

    A CSV gives ``validation_fraction`` of its rows to validation and ``test_fraction`` to test (stratified,
    seeded by ``split_seed``, which stays fixed when the training seed changes so runs share one test set).
    A separate ``validation_source`` or ``test_source`` file (same columns) replaces that share.
    """

    source: str = setting("rt", "rt (bundled Rotten Tomatoes) or a CSV file")
    text_column: str = setting("text", "CSV column holding the texts")
    label_column: str = setting("label", "CSV column holding the labels")
    limit: int = setting(0, "Use N training texts (a seeded sample; 0: all)", min=0)
    validation_limit: int = setting(0, "Use N validation texts (0: all)", min=0)
    validation_fraction: float = setting(0.1, "CSV only: share held out to pick the checkpoint", min=0.0, max=1.0)
    test_fraction: float = setting(0.1, "CSV only: share held out for the test metrics (never trained on or used "
                                        "to choose)", min=0.0, max=1.0)
    validation_source: str = setting("", "CSV only: a separate validation file (same columns)")
    test_source: str = setting("", "CSV only: a separate test file (same columns)")
    split_seed: int = setting(SPLIT_SEED, "CSV only: seed of the train/validation/test split (kept apart from the "
                                          "training seed, so runs share one test set)", min=0)
    redaction: dict[str, Any] = setting(help="CSV only: how personal data in the texts was replaced before the run "
                                             "({}: it was not); recorded on the model card", factory=dict)


@dataclass
class FinetuneConfig:
    """One fine-tuning run; ``to_dict()`` is the job's JSON config and :meth:`from_dict` reads it back, checked.

    ``train`` overrides the method's recipe (:func:`default_train_config`). With ``publish`` the model goes
    to the store as ``name``; without, it stays in the job folder until ``save_to_store``.
    """

    base: str = setting(BASE_ENCODER_ID, f"Store id, model folder, or {BASE_ENCODER_ID} (the bundled encoder; a "
                                         "new head)")
    method: str = setting("lora", "Fine-tuning method (a name in the methods registry)")
    name: str = setting("", "Store id of the new model")
    data: DataSpec = setting(help="The examples", factory=DataSpec)
    method_config: dict[str, Any] = setting(help="The method's settings", factory=dict)
    train: dict[str, Any] = setting(help="Training settings over the method's recipe", factory=dict)
    publish: bool = setting(True, "Put the model in the store (else it stays with the job)")
    overwrite: bool = setting(False, "Replace a store model of the same name")
    progress_bar: bool = setting(False, "Show a terminal progress bar")
    dp: DPConfig = setting(help="Differential privacy (DP-SGD with Opacus); off by default", factory=DPConfig)
    federated: FederatedConfig = setting(help="Federated training (Flower); off by default", factory=FederatedConfig)

    def to_dict(self) -> dict[str, Any]:
        return spec.to_dict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FinetuneConfig:
        """The config from its JSON form (unknown keys, wrong types, bad bounds: ``ConfigError``)."""
        config: FinetuneConfig = spec.build(cls, raw, scope=SCOPE)
        return config

    def train_config(self) -> TrainConfig:
        return default_train_config(self.method, self.train)


def default_train_config(method: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The method's recipe (learning rate, epochs... see ``METHODS[method].recipe``), with ``overrides`` on top.

    With ``early_stopping_patience`` the run checkpoints at every evaluation (``save_steps = eval_steps``), so
    the checkpoint with the best validation accuracy is on disk to return to at the end.
    """
    values = {**asdict(TrainConfig()), **JOB_DEFAULTS, **METHODS.lookup(method).recipe, **(overrides or {})}
    if values.get("early_stopping_patience") and values.get("eval_steps"):
        values["save_steps"] = int(values["eval_steps"])
    config: TrainConfig = spec.build(TrainConfig, values, scope="train")
    return config


def held_out_fractions(data: DataSpec) -> dict[str, float]:
    """The splits carved out of the CSV itself (those without a file of their own), with their fractions."""
    wanted = {"validation": (data.validation_source, data.validation_fraction),
              "test": (data.test_source, data.test_fraction)}
    return {k: float(f) for k, (own, f) in wanted.items() if not own}


def validate_config(cfg: FinetuneConfig, check_name: bool = True) -> FinetuneConfig:
    """Check a run's settings before it starts (each problem raises a LoupeError with a message)."""
    method = METHODS.lookup(cfg.method)
    spec.check(cfg, SCOPE)
    method.config(cfg.method_config)
    cfg.train_config()
    check_private(cfg)
    require_own_weights(cfg.base, "fine-tune")
    if cfg.publish or cfg.name:
        if not store.valid_id(cfg.name) or cfg.name == BASE_ENCODER_ID:
            raise LoupeError(f"{cfg.name!r} is not a usable model name (letters, digits, '.', '_', '-').")
        if check_name and cfg.publish and not cfg.overwrite and store.model_path(cfg.name) is not None:
            raise LoupeError(f"The store already has a model called {cfg.name!r}; pick another name.")
    data = cfg.data
    if data.source == "rt":
        if data.validation_source or data.test_source:
            raise DatasetError("Rotten Tomatoes comes with its own validation and test splits; separate files "
                               "go with a CSV.")
        return cfg
    for f in (data.source, data.validation_source, data.test_source):
        if f and not Path(f).expanduser().is_file():
            raise DatasetError(f"No data file at {f}.")
    carved = held_out_fractions(data)
    for split, share in carved.items():
        if not 0.0 < share < 1.0:
            raise DatasetError(f"The {split} fraction must be between 0 and 1.")
    if sum(carved.values()) >= 1.0:
        raise DatasetError("The validation and test fractions together must leave rows for training.")
    return cfg
