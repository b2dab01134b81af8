"""A continual run's settings, declared once with ``spec.setting``: the page's widgets, the command line's flags,
the job's JSON and validation all read them (:class:`ContinualConfig`, :class:`TaskSpec`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model_zoo import spec, store
from model_zoo.continual.bundled import BUNDLED
from model_zoo.continual.heads import SCENARIOS
from model_zoo.continual.replay import SAMPLING
from model_zoo.errors import DatasetError, LoupeError
from model_zoo.loading import BASE_ENCODER_ID, require_own_weights
from model_zoo.methods import METHODS
from model_zoo.spec import setting
from model_zoo.training import TrainConfig

SCOPE = "continual"  # scope of the settings in messages and in LOUPE_LIMITS ("continual.replay_size")
STRATEGIES = {
    "naive": "fine-tune on each new task alone",
    "replay": "mix a buffer of earlier tasks' examples into each new task's training set",
    "ewc": "penalise changes to the weights the earlier tasks relied on (elastic weight consolidation)",
    "replay+ewc": "both: a replay buffer and the EWC penalty",
}
METHOD_CHOICES = ("full", "lora")
# Bundled sequences: name -> (tasks in order, what it shows).
SEQUENCES: dict[str, tuple[tuple[str, ...], str]] = {
    "politics": (("rt", "debates", "conventions"),
                 "film-review sentiment, then the speaker's party in the 2016 debates (new labels), then in the 2012 "
                 "convention speeches (same labels, new domain)"),
    "party": (("debates", "conventions"),
              "the speaker's party in the 2016 debates, then in the 2012 convention speeches (a new domain only)"),
}
JOB_TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 1.0}  # per task; a method's recipe is per single run


@dataclass
class TaskSpec:
    """One task of a sequence: a bundled dataset (``rt``, ``debates``, ``conventions``) or a CSV file.

    A CSV is split train / test (stratified by label, seeded, copies of a text in one split); its labels are
    matched by name with the other tasks' (equal names share the head's columns).
    """

    source: str = setting("rt", "rt, debates, conventions (bundled) or a CSV file")
    name: str = setting("", "Short name shown in the matrix (default: the dataset's)")
    text_column: str = setting("text", "CSV only: the column holding the texts")
    label_column: str = setting("label", "CSV only: the column holding the labels")
    test_fraction: float = setting(0.2, "CSV only: share held out as the task's test split", min=0.05, max=0.5)


@dataclass
class ContinualConfig:
    """One continual run: a base model trained on a sequence of tasks, once per strategy.

    ``sequence`` names a bundled sequence; when it is empty, ``tasks`` (TaskSpec dicts, at least two) is the
    sequence. ``train`` overrides the method's recipe (and the job's default of one epoch per task).
    """

    base: str = setting(BASE_ENCODER_ID, f"Store id, model folder, or {BASE_ENCODER_ID} (the bundled encoder)")
    method: str = setting("lora", "How the weights train", choices=METHOD_CHOICES)
    method_config: dict[str, Any] = setting(help="The method's settings", factory=dict)
    sequence: str = setting("politics", "A bundled sequence (politics, party), or empty to give the tasks")
    tasks: list[Any] = setting(help="The tasks in order (TaskSpec dicts), when no bundled sequence is named",
                               factory=list)
    scenario: str = setting("class", "class: one extended head, the task unknown when predicting; task: each task "
                                     "its own columns, the task known", choices=tuple(SCENARIOS))
    strategies: list[str] = setting(help="Strategies run one after the other (naive, replay, ewc, replay+ewc)",
                                    factory=lambda: ["naive", "replay", "ewc"])
    replay_size: int = setting(200, "Replay: examples kept from the earlier tasks", min=1, max=20000,
                               hosted_max=2000)
    replay_sampling: str = setting("balanced", "Replay: balanced (equal share per task and class) or random "
                                               "(uniform over every example seen)", choices=SAMPLING)
    # At 1e3 the penalty was 0.3% of the loss on MiniLM (full fine-tuning): it changed nothing. The job logs the
    # mean penalty of each step, to set lambda by.
    ewc_lambda: float = setting(1e5, "EWC: strength of the penalty (lambda); each step logs its mean penalty",
                                min=0.0, max=1e12)
    ewc_gamma: float = setting(1.0, "EWC: decay of earlier tasks' Fisher information (online EWC; 1: keep all)",
                               min=0.0, max=1.0)
    fisher_samples: int = setting(200, "EWC: training examples the Fisher information is estimated on", min=1,
                                  max=5000, hosted_max=1000)
    limit: int = setting(600, "Training texts per task (a seeded sample; 0: all)", min=0, max=200000,
                         hosted_max=5000)
    test_limit: int = setting(500, "Test texts per task (a seeded sample; 0: all)", min=0, max=200000,
                              hosted_max=2000)
    first_task: str = setting("auto", "train: train on the first task too; known: the base already learned it "
                                      "(evaluate it and go on); auto: known when the base's labels are the first "
                                      "task's", choices=("auto", "train", "known"))
    train: dict[str, Any] = setting(help="Training settings over the method's recipe (per task)", factory=dict)
    name: str = setting("", "Store id of the final model (several strategies: <name>-<strategy>)")
    publish: bool = setting(False, "Put the final models in the store (else they stay with the job)")
    overwrite: bool = setting(False, "Replace store models of the same names")
    progress_bar: bool = setting(False, "Show progress lines in the terminal")

    def to_dict(self) -> dict[str, Any]:
        return spec.to_dict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ContinualConfig:
        """The config from its JSON form, checked (``ConfigError`` for unknown keys, wrong types, bad bounds)."""
        config: ContinualConfig = spec.build(cls, raw, scope=SCOPE)
        return config

    def task_specs(self) -> list[TaskSpec]:
        """The tasks in order (a bundled sequence's, or ``tasks`` built and checked)."""
        if self.sequence:
            if self.sequence not in SEQUENCES:
                raise LoupeError(f"No bundled sequence {self.sequence!r}; bundled: {', '.join(SEQUENCES)}.")
            return [TaskSpec(source=key) for key in SEQUENCES[self.sequence][0]]
        return [spec.build(TaskSpec, t, scope=SCOPE) for t in self.tasks]

    def train_config(self) -> TrainConfig:
        """The per-task training settings: TrainConfig's defaults, the method's recipe, one epoch, ``train``."""
        values = {**asdict(TrainConfig()), **METHODS.lookup(self.method).recipe, **JOB_TRAIN_DEFAULTS,
                  **self.train, "eval_steps": 0, "save_steps": 0, "early_stopping_patience": 0}
        config: TrainConfig = spec.build(TrainConfig, values, scope="train")
        return config

    def uses(self, part: str) -> bool:
        """Whether any strategy uses ``replay`` or ``ewc``."""
        return any(part in s.split("+") for s in self.strategies)


def store_name(name: str, strategy: str, several: bool) -> str:
    """The store id of a strategy's final model: ``name``, or ``name-<strategy>`` when several ran."""
    return f"{name}-{strategy.replace('+', '-')}" if several else name


def validate_config(cfg: ContinualConfig, check_names: bool = True) -> ContinualConfig:
    """Check a run before it starts; each problem raises a LoupeError saying what to change."""
    spec.check(cfg, SCOPE)
    METHODS.lookup(cfg.method).config(cfg.method_config)
    cfg.train_config()
    require_own_weights(cfg.base, "continue training")
    if not cfg.strategies:
        raise LoupeError("Pick at least one strategy (naive, replay, ewc, replay+ewc).")
    unknown = [s for s in cfg.strategies if s not in STRATEGIES]
    if unknown:
        raise LoupeError(f"Unknown strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}.")
    if len(set(cfg.strategies)) != len(cfg.strategies):
        raise LoupeError("A strategy is listed twice.")
    if cfg.sequence and cfg.tasks:
        raise LoupeError("Give a bundled sequence or your own tasks, not both.")
    tasks = cfg.task_specs()
    if len(tasks) < 2:
        raise DatasetError("A sequence needs at least two tasks.")
    for t in tasks:
        if t.source not in BUNDLED and not Path(t.source).expanduser().is_file():
            raise DatasetError(f"No data file at {t.source} (bundled tasks: {', '.join(BUNDLED)}).")
    if cfg.publish or cfg.name:
        for strategy in cfg.strategies:
            name = store_name(cfg.name, strategy, len(cfg.strategies) > 1)
            if not store.valid_id(name) or name == BASE_ENCODER_ID:
                raise LoupeError(f"{name!r} is not a usable model name (letters, digits, '.', '_', '-').")
            if check_names and cfg.publish and not cfg.overwrite and store.model_path(name) is not None:
                raise LoupeError(f"The store already has a model called {name!r}; pick another name.")
    return cfg
