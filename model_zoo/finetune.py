"""Fine-tuning as a background job: data, base model, method, training with live metrics, the saved model.

The Fine-tune page calls :func:`prepare_model` to show trainable parameters, :func:`start_job` to launch a
run in its own process (``jobs`` kind ``finetune`` -> :func:`run_job`), and :func:`save_to_store` to
publish a model that was kept private to the job (``publish=False``). ``python -m model_zoo finetune``
runs the same job in the terminal with a progress bar.

While it trains, the job writes to its folder: progress and ETA (``status.json``), one record per training
log step (``{"split": "train", "step", "loss"}``) and per evaluation (``{"split": "validation", "step",
"loss", "accuracy", "f1"}``) in ``metrics.jsonl``, which rows went to which split (``splits.json``), and
checkpoints. A checkpoint counts once Trainer has finished writing it (a ``.complete`` marker); a resumed job
restarts from the last complete one and drops the metric records made after it.

Three splits, three roles: train fits the weights, validation only picks the checkpoint (early stopping) and
is watched while training, test is held out and scored once, on the model as saved. A CSV is split
train / validation / test (see ``data.split_dataset``) unless the user brings validation or test files;
Rotten Tomatoes has its own fixed split by movie. Every stored metric names its split.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_zoo import cli, jobs, store
from model_zoo.data import RT_LABELS, SPLIT_SEED, SPLITS, TextDataset, load_csv, rotten_tomatoes, split_dataset
from model_zoo.errors import DatasetError, LoupeError, UntrainedHeadError
from model_zoo.loading import BASE_ENCODER_ID, load, locate
from model_zoo.paths import loupe_home, models_dir, publish_dir_atomic, staging_dir, write_json_atomic
from model_zoo.peft_support import (
    METHODS,
    apply_method,
    count_parameters,
    get_method,
    head_names,
    is_adapter_method,
    method_config,
    peft_card,
    save_adapter,
)
from model_zoo.training import TrainConfig, classification_metrics, make_trainer

COMPLETE = ".complete"
_JOB_DEFAULTS: dict[str, Any] = {"eval_steps": 50, "save_steps": 100}


@dataclass
class DataSpec:
    """Where the examples come from: ``rt`` (bundled Rotten Tomatoes) or the path of a CSV file.

    A CSV gives ``validation_fraction`` of its rows to validation and ``test_fraction`` to test (stratified,
    seeded by ``split_seed``, which stays fixed when the training seed changes so runs share one test set).
    A separate ``validation_source`` or ``test_source`` file (same columns) replaces that share.
    """

    source: str = "rt"
    text_column: str = "text"
    label_column: str = "label"
    limit: int = 0  # training texts to use (0: all), a seeded random sample
    validation_limit: int = 0  # validation texts to use (0: all)
    validation_fraction: float = 0.1  # CSV only: held out to pick the checkpoint
    test_fraction: float = 0.1  # CSV only: held out for the test metrics, never trained on or used to choose
    validation_source: str = ""  # CSV only: a separate validation file
    test_source: str = ""  # CSV only: a separate test file
    split_seed: int = SPLIT_SEED


@dataclass
class FinetuneConfig:
    """One fine-tuning run; ``to_dict()`` is the job's JSON config.

    ``train`` overrides the method's recipe (:func:`default_train_config`). With ``publish`` the model goes
    to the store as ``name``; without, it stays in the job folder until :func:`save_to_store`.
    """

    base: str = BASE_ENCODER_ID
    method: str = "lora"
    name: str = ""
    data: DataSpec = field(default_factory=DataSpec)
    method_config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    publish: bool = True
    overwrite: bool = False
    progress_bar: bool = False  # a terminal progress bar (the CLI)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FinetuneConfig:
        raw = dict(raw)
        known = {f.name for f in fields(cls)}
        if set(raw) - known:
            raise LoupeError(f"Unknown fine-tuning setting(s): {', '.join(sorted(set(raw) - known))}.")
        raw["data"] = DataSpec(**raw.get("data", {}))
        return cls(**raw)

    def train_config(self) -> TrainConfig:
        return default_train_config(self.method, self.train)


def default_train_config(method: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The method's recipe (learning rate, epochs... see ``METHODS``), with ``overrides`` on top.

    With ``early_stopping_patience`` the run checkpoints at every evaluation (``save_steps = eval_steps``), so
    the checkpoint with the best validation accuracy is on disk to return to at the end.
    """
    values = {**asdict(TrainConfig()), **_JOB_DEFAULTS, **get_method(method).train_defaults, **(overrides or {})}
    unknown = set(values) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise LoupeError(f"Unknown training setting(s): {', '.join(sorted(unknown))}.")
    if values["early_stopping_patience"] and values["eval_steps"]:
        values["save_steps"] = int(values["eval_steps"])
    try:
        return TrainConfig(**values)
    except (TypeError, ValueError) as err:
        raise LoupeError(f"Bad training settings: {err}") from err


# --- data ----------------------------------------------------------------------------------------
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
    method: str = ""  # how the rows were split, in words
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return list(self.train.label_names)

    def parts(self) -> dict[str, TextDataset]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def summary(self) -> dict[str, Any]:
        """Size, class balance and role per split, the source, the split method, notes (page and card)."""
        out: dict[str, Any] = {k: {"size": len(v), "classes": v.class_counts(), "role": ROLES[k]}
                               for k, v in self.parts().items()}
        out.update(source=self.source, split=self.method, notes=list(self.notes))
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


def held_out_fractions(spec: DataSpec) -> dict[str, float]:
    """The splits carved out of the CSV itself (those without a file of their own), with their fractions."""
    wanted = {"validation": (spec.validation_source, spec.validation_fraction),
              "test": (spec.test_source, spec.test_fraction)}
    return {k: float(f) for k, (own, f) in wanted.items() if not own}


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


def load_data(spec: DataSpec, seed: int = 13) -> Splits:
    """The splits a run trains, selects and tests on.

    Args:
        spec: the data (source file or ``rt``, columns, fractions, separate files, split seed).
        seed: draws the ``limit`` / ``validation_limit`` samples (the training seed); the split itself
            depends only on ``spec.split_seed``.

    Raises:
        DatasetError: a file cannot be used (see ``data.load_csv``), the fractions are bad, or a class is too
            small to appear in every split.
    """
    if spec.source == "rt":
        if spec.validation_source or spec.test_source:
            raise DatasetError("Rotten Tomatoes comes with its own validation and test splits; separate files "
                               "go with a CSV.")
        train, val, test = (rotten_tomatoes(s) for s in SPLITS)
        return Splits(_sample(train, spec.limit, seed), _sample(val, spec.validation_limit, seed), test,
                      "Rotten Tomatoes review snippets (bundled)",
                      "fixed split by movie (about 80/10/10; no movie in two splits)")
    path = _data_file(spec.source)
    full = load_csv(path, spec.text_column, spec.label_column, name=path.name)
    own = {k: load_csv(_data_file(f), spec.text_column, spec.label_column, name=Path(f).name,
                       label_names=full.label_names)
           for k, f in (("validation", spec.validation_source), ("test", spec.test_source)) if f}
    carved = held_out_fractions(spec)
    parts = {**(split_dataset(full, carved, spec.split_seed) if carved else {"train": full}), **own}
    notes = [*full.notes, *(f"{v.name}: {n}" for v in own.values() for n in v.notes), *_split_notes(parts, carved)]
    repeats = len(full) - len(set(full.texts))
    if carved and repeats:
        notes.append(f"{repeats} row(s) of {path.name} repeat an earlier text; every copy of a text stays in one "
                     "split, so no held-out text of the file was trained on.")
    if carved:
        shares = {k: round(100 * f) for k, f in carved.items()}
        method = (f"{path.name} split {100 - sum(shares.values())}% train / "
                  + " / ".join(f"{v}% {k}" for k, v in shares.items())
                  + f", stratified by label, seed {spec.split_seed}; copies of a text stay in one split")
    else:
        method = f"{path.name} is all training data"
    method += "".join(f"; {k} from {v.name}" for k, v in own.items())
    return Splits(_sample(parts["train"], spec.limit, seed), _sample(parts["validation"], spec.validation_limit, seed),
                  parts["test"], f"CSV file {path.name}", method, notes)


def save_upload(raw: bytes, filename: str = "upload.csv") -> Path:
    """Store uploaded CSV bytes under ``LOUPE_HOME/uploads`` (content-addressed) for a job to read."""
    folder = loupe_home() / "uploads"
    folder.mkdir(exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(filename).name)[-60:] or "upload.csv"
    path = folder / f"{hashlib.sha256(raw).hexdigest()[:16]}-{safe}"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, path)
    return path


# --- the model -------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A model ready to train: which weights train, and how it relates to its base."""

    model: Any
    tokenizer: Any
    trainable: int
    total: int
    labels: list[str]
    new_head: bool
    base_folder: Path | None
    device: torch.device

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0


def _with_new_head(model: Any, labels: list[str]) -> Any:
    """A copy of ``model`` whose head (every ``HEAD_MODULES`` weight) is new and sized for ``labels``."""
    from transformers import AutoModelForSequenceClassification

    cfg = copy.deepcopy(model.config)
    cfg.num_labels = len(labels)
    cfg.id2label = dict(enumerate(labels))
    cfg.label2id = {n: i for i, n in enumerate(labels)}
    fresh = AutoModelForSequenceClassification.from_config(cfg, attn_implementation=cfg._attn_implementation)
    heads = tuple(f"{h}." for h in head_names(model))
    keep = {k: v for k, v in model.state_dict().items() if not k.startswith(heads)}
    result = fresh.load_state_dict(keep, strict=False)
    if any(not k.startswith(heads) for k in result.missing_keys):
        raise LoupeError(f"Could not give {type(model).__name__} a new head: {result.missing_keys[:4]}")
    return fresh.to(next(model.parameters()).device)


def prepare_model(base: str, method: str, config: Any = None, labels: list[str] | None = None,
                  device: str | torch.device = "auto", seed: int = 13) -> Prepared:
    """Load ``base``, fit its head to ``labels`` and set it up for ``method``; counts are ready before training.

    Args:
        base: ``minilm-base`` (the bundled encoder: always a new head) or any store id / model folder.
        method: a key of :data:`model_zoo.peft_support.METHODS`.
        config: the method's settings (dict or its Config dataclass; None: defaults).
        labels: the dataset's label names (default: Rotten Tomatoes'). A base whose labels differ gets a
            new head.
        device: where to put the model (``auto``: CUDA, MPS, then CPU).
        seed: seeds the new head and any new adapter weights.
    """
    torch.manual_seed(seed)
    labels = list(labels or RT_LABELS)
    folder, _ = locate(base)
    if store.read_card(folder).get("peft"):
        raise LoupeError(f"{base} is an adapter on another model; fine-tune that base model instead.")
    try:
        handle = load(base, device, allow_untrained=base == BASE_ENCODER_ID, labels=labels
                      if base == BASE_ENCODER_ID else None, attn_implementation="sdpa")
    except UntrainedHeadError:  # a bare encoder folder: it gets a head for these labels
        handle = load(base, device, allow_untrained=True, labels=labels, attn_implementation="sdpa")
    model = handle.model
    new_head = bool(handle.info.get("head_untrained"))
    if [handle.labels[i] for i in range(handle.num_labels)] != labels:
        model, new_head = _with_new_head(model, labels), True
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {n: i for i, n in enumerate(labels)}
    model = apply_method(model, method, config)
    trainable, total = count_parameters(model)
    return Prepared(model, handle.tokenizer, trainable, total, labels, new_head, folder, handle.device)


# --- the job -----------------------------------------------------------------------------------------
def _callbacks(ctx: jobs.JobContext, progress_bar: bool) -> list[Any]:
    from transformers import TrainerCallback

    class LiveMetrics(TrainerCallback):  # type: ignore[misc]
        """Progress + ETA, loss/validation records, checkpoint markers, and Cancel."""

        t0 = 0.0
        step0 = 0
        last = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.t0, self.step0 = time.time(), state.global_step
            ctx.progress(state.global_step, state.max_steps, "training")

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            now, done = time.time(), state.global_step
            # The ETA follows this run's pace only, so a resumed job does not count the steps it skipped.
            ctx._started = now - (now - self.t0) / max(1, done - self.step0) * done
            if now - self.last > 0.5 or done >= state.max_steps:
                self.last = now
                ctx.progress(done, state.max_steps, f"training: step {done} of {state.max_steps}")
            if ctx.cancelled():
                control.should_training_stop, control.should_save = True, False

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                ctx.metric({"split": "train", "step": state.global_step, "epoch": state.epoch,
                            "loss": logs["loss"], "learning_rate": logs.get("learning_rate")})

        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any) -> None:
            m = metrics or {}
            ctx.metric({"split": "validation", "step": state.global_step, "epoch": state.epoch,
                        "loss": m.get("eval_loss"), "accuracy": m.get("eval_accuracy"), "f1": m.get("eval_f1")})
            ctx.log(f"step {state.global_step}: validation loss {m.get('eval_loss', float('nan')):.4f}, "
                    f"accuracy {m.get('eval_accuracy', float('nan')):.4f}")

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                (folder / COMPLETE).write_text(str(time.time()), encoding="utf-8")
                ctx.log(f"checkpoint saved at step {state.global_step}")

    cbs: list[Any] = [LiveMetrics()]
    if progress_bar:
        from model_zoo.recipe import TqdmCallback

        cbs.append(TqdmCallback("fine-tuning"))
    return cbs


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint Trainer finished writing; newer, unfinished ones are deleted."""
    found = sorted((int(p.name.rsplit("-", 1)[1]), p) for p in folder.glob("checkpoint-*")
                   if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit())
    while found and not (found[-1][1] / COMPLETE).exists():
        shutil.rmtree(found.pop()[1], ignore_errors=True)
    return found[-1][1] if found else None


def _trim_metrics(job: Path, step: int) -> None:
    """Drop metric records made after ``step`` (they are about to be redone)."""
    path = job / "metrics.jsonl"
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= step:
                keep.append(line)
        except (ValueError, TypeError, AttributeError):
            continue
    fd, tmp = tempfile.mkstemp(dir=job, prefix=".metrics.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(f"{line}\n" for line in keep))
    os.replace(tmp, path)


def _evaluate(handle: Any, ds: TextDataset, split: str) -> dict[str, Any]:
    """Accuracy, macro F1 and confusion matrix on ``ds``, labelled with its split, size and role."""
    probs = handle.predict_proba(ds.texts)
    metrics = classification_metrics(np.asarray(ds.labels), probs.argmax(axis=1), len(ds.label_names))
    return {"split": split, "size": len(ds), "role": ROLES[split], **metrics}


def export_model(prep: Prepared, model: Any, cfg: FinetuneConfig, folder: Path) -> dict[str, Any]:
    """Write the trained model into ``folder`` with a minimal card that ``model_zoo.load`` can read.

    LoRA with ``merge`` and the other full-model methods save a plain Hugging Face model; prompt tuning,
    bottleneck adapters and unmerged LoRA save the adapter with a reference to the base (card ``peft``).

    Returns:
        The card entries that say how the model was saved (``peft`` or ``merged``).
    """
    model.eval()
    tokenizer = prep.tokenizer
    entries: dict[str, Any]
    if is_adapter_method(cfg.method, cfg.method_config):
        if cfg.method == "prompt_tuning":  # the virtual tokens take positions from the text
            n = method_config("prompt_tuning", cfg.method_config).num_virtual_tokens
            positions = int(getattr(model.config, "max_position_embeddings", 512))
            tokenizer.model_max_length = min(int(tokenizer.model_max_length), positions - n)
        save_adapter(model, cfg.method, folder)
        model.config.save_pretrained(folder)
        if prep.base_folder is None:
            raise LoupeError("An adapter needs its base model on disk (store, bundled or a folder), not a hub id.")
        # Store and bundled ids stay ids; a folder is pinned by its absolute path (a relative one would
        # depend on the working directory of whoever loads the adapter).
        ref = cfg.base if locate(cfg.base)[1] in ("store", "bundled") else str(prep.base_folder.resolve())
        entries = {"peft": peft_card(cfg.method, cfg.method_config, ref, prep.base_folder)}
    else:
        if cfg.method == "lora":
            model = model.merge_and_unload()
        model.save_pretrained(folder, safe_serialization=True)
        entries = {"merged": cfg.method == "lora"}
    tokenizer.save_pretrained(folder)
    store.write_card(folder, {"labels": prep.labels, **entries})
    return entries


@jobs.register_kind("finetune", "a fine-tuning job")
def run_job(ctx: jobs.JobContext) -> dict[str, Any]:
    """The ``finetune`` job: train (validation picks the checkpoint), score the held-out test split once, save.

    Returns:
        ``{"model_id", "path", "published", "metrics": {"validation", "test"}, "selection", "data", "seconds",
        "steps", "trainable", "total", "method"}``; each metrics entry names its ``split``, ``size`` and
        ``role``; ``model_id`` is None when the model stayed in the job folder.
    """
    started = time.time()
    cfg = validate_config(FinetuneConfig.from_dict(ctx.config), check_name=not ctx.resuming)
    tcfg = cfg.train_config()
    ctx.progress(0, 1, "loading data")
    splits = load_data(cfg.data, tcfg.seed)
    write_json_atomic(ctx.dir / "splits.json", splits.rows())
    ctx.log(f"data: {len(splits.train)} training, {len(splits.validation)} validation, "
            f"{len(splits.test)} test (held out) texts; {splits.method}; labels {splits.labels}")
    ctx.progress(0, 1, "loading the base model")
    prep = prepare_model(cfg.base, cfg.method, cfg.method_config, splits.labels, seed=tcfg.seed)
    ctx.log(f"{get_method(cfg.method).title}: {prep.trainable:,} of {prep.total:,} parameters train "
            f"({100 * prep.fraction:.3f}%){'; new head' if prep.new_head else ''}")
    if prep.base_folder is None and is_adapter_method(cfg.method, cfg.method_config):
        raise LoupeError(f"{get_method(cfg.method).title} saves an adapter that refers to its base, so the base "
                         "must be on disk (store, bundled or a folder), not a hub id.")
    if cfg.method == "prompt_tuning":
        n = method_config("prompt_tuning", cfg.method_config).num_virtual_tokens
        room = int(getattr(prep.model.config, "max_position_embeddings", 512)) - n
        tcfg.max_length = min(tcfg.max_length, room)
    out_dir = ctx.checkpoints
    checkpoint = last_complete_checkpoint(out_dir) if ctx.resuming else None
    resumed_from = int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0
    if ctx.resuming:
        _trim_metrics(ctx.dir, resumed_from)
        ctx.metric({"event": "resumed", "step": resumed_from})
        ctx.log(f"resuming from step {resumed_from}" if checkpoint else "no complete checkpoint: starting over")
    if checkpoint is None:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()
    trainer = make_trainer(prep.model, prep.tokenizer, splits.train, splits.validation, tcfg, out_dir,
                           _callbacks(ctx, cfg.progress_bar))
    steps_per_epoch = -(-len(splits.train) // tcfg.batch_size)
    trainer.args.logging_steps = max(1, min(10, int(steps_per_epoch * tcfg.epochs) // 20))
    t_train = time.time()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = time.time() - t_train
    if ctx.cancelled():
        return {"cancelled": True}
    ctx.progress(result.global_step, result.global_step, "saving and evaluating the model")
    return _finish(ctx, cfg, tcfg, prep, splits, trainer, result, resumed_from, train_seconds, started)


def _selection(tcfg: TrainConfig, trainer: Any, steps: int) -> dict[str, Any]:
    """How the saved weights were chosen, on which split, and the step they come from."""
    best = trainer.state.best_model_checkpoint  # the checkpoint Trainer reloaded at the end, if any
    if tcfg.early_stopping_patience:
        return {"split": "validation", "metric": "accuracy",
                "step": int(str(best).rsplit("-", 1)[1]) if best else steps,
                "rule": f"best validation accuracy, early stopping after {tcfg.early_stopping_patience} "
                        "evaluations without gain"}
    return {"split": None, "metric": None, "step": steps,
            "rule": "the last step (validation is only watched, not used to choose)"}


def _finish(ctx: jobs.JobContext, cfg: FinetuneConfig, tcfg: TrainConfig, prep: Prepared, splits: Splits,
            trainer: Any, result: Any, resumed_from: int, train_seconds: float, started: float) -> dict[str, Any]:
    """Save into a staging folder, reload it with ``model_zoo.load``, measure, write the card, publish.

    The test split is scored here, once, on the model exactly as saved (the selected checkpoint).
    """
    job_id = ctx.dir.name
    model = trainer.model
    selection = _selection(tcfg, trainer, int(result.global_step))
    publish = cfg.publish and (cfg.overwrite or store.model_path(cfg.name) is None)
    parent = models_dir() if publish else ctx.dir
    final = models_dir() / cfg.name if publish else ctx.dir / "model"
    with staging_dir(parent, cfg.name or "model") as staging:
        entries = export_model(prep, model, cfg, staging)
        handle = load(staging, attn_implementation="sdpa")  # measure the model exactly as it was saved
        metrics = {"validation": _evaluate(handle, splits.validation, "validation"),
                   "test": _evaluate(handle, splits.test, "test")}
        card = {
            "id": cfg.name if publish else f"job:{job_id}",
            "name": cfg.name,
            "task": "text classification",
            "labels": prep.labels,
            "base_model": cfg.base,
            "new_head": prep.new_head,
            "method": cfg.method,
            "method_title": get_method(cfg.method).title,
            "method_config": asdict(method_config(cfg.method, cfg.method_config)),
            "trainable_parameters": prep.trainable,
            "total_parameters": prep.total,
            "trainable_fraction": prep.fraction,
            "data": {**splits.summary(), "spec": asdict(cfg.data)},
            "hyperparameters": asdict(tcfg),
            "seed": tcfg.seed,
            "metrics": metrics,
            "selection": selection,
            "train_loss": float(result.training_loss),
            "steps": int(result.global_step),
            "resumed_from_step": resumed_from,
            "train_seconds": round(train_seconds, 1),
            "seconds": round(time.time() - started, 1),
            "device": str(prep.device),
            "job": job_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **entries,
        }
        store.write_card(staging, card)
        publish_dir_atomic(staging, final)
    shutil.rmtree(ctx.checkpoints, ignore_errors=True)  # the model is saved; checkpoints are only for resuming
    note = "" if publish or not cfg.publish else f"{cfg.name!r} was taken meanwhile; the model stays in the job."
    test = metrics["test"]
    ctx.log(f"test split ({test['size']} held-out texts): accuracy {test['accuracy']:.4f}, macro F1 "
            f"{test['f1_macro']:.4f}; saved to {final}")
    return {"model_id": cfg.name if publish else None, "path": str(final), "published": publish, "note": note,
            "metrics": metrics, "selection": selection, "data": card["data"],
            "seconds": card["seconds"], "train_seconds": card["train_seconds"],
            "steps": card["steps"], "train_loss": card["train_loss"], "resumed_from_step": resumed_from,
            "trainable": prep.trainable, "total": prep.total, "method": cfg.method}


# --- entry points for the page and the CLI -------------------------------------------------------------
def validate_config(cfg: FinetuneConfig, check_name: bool = True) -> FinetuneConfig:
    """Check a run's settings before it starts (each problem raises a LoupeError with a message)."""
    method_config(cfg.method, cfg.method_config)
    cfg.train_config()
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


def start_job(cfg: FinetuneConfig, owner: str | None = None) -> str:
    """Validate ``cfg`` and start it as a background job; returns the job id."""
    return jobs.start("finetune", validate_config(cfg).to_dict(), owner=owner)


def save_to_store(job_id: str, name: str, overwrite: bool = False) -> Path:
    """Publish the model a ``publish=False`` job kept in its folder to the store as ``name`` (atomic copy)."""
    source = jobs.job_dir(job_id) / "model"
    if not (source / store.CARD).exists():
        raise LoupeError(f"Job {job_id} has no finished model to save.")
    return store.publish_copy(source, name, overwrite=overwrite, name=name)


def run_here(cfg: FinetuneConfig, resume_job: str | None = None) -> tuple[str, dict[str, Any]]:
    """Run a fine-tuning job in this process (same job folder and code as a background job).

    Returns ``(job_id, status)``; the result is in ``jobs.result(job_id)`` when the state is ``done``.
    """
    if resume_job:
        folder = jobs.job_dir(resume_job)
        if jobs.status(resume_job).get("state") in jobs.ACTIVE:
            raise LoupeError(f"Job {resume_job} is still running.")
    else:
        validate_config(cfg)
        folder = jobs.create("finetune", cfg.to_dict(), owner=None, pid=os.getpid())
    jobs.run_in_process(folder, resume_=bool(resume_job))
    return folder.name, jobs.status(folder.name)


def _cli_config(args: Any) -> FinetuneConfig:
    options: dict[str, Any] = {}
    cls = get_method(args.method).config_cls
    types = {f.name: f.type for f in fields(cls)}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise LoupeError(f"--set {item!r}: use KEY=VALUE with KEY one of {', '.join(types) or '(none)'}.")
        kind = str(types[key])
        options[key] = (value.lower() in ("1", "true", "yes") if "bool" in kind else int(value) if "int" in kind
                        else float(value) if "float" in kind else value)
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr,
             "warmup_ratio": args.warmup, "weight_decay": args.weight_decay, "max_length": args.max_length,
             "seed": args.seed, "eval_steps": args.eval_steps, "early_stopping_patience": args.patience,
             "save_steps": args.save_steps}
    name = args.name or f"{args.method.replace('_', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    data = DataSpec(args.data, args.text_column, args.label_column, args.limit, args.validation_limit,
                    validation_fraction=args.validation_fraction, test_fraction=args.test_fraction,
                    validation_source=args.validation_data or "", test_source=args.test_data or "",
                    split_seed=args.split_seed)
    return FinetuneConfig(args.base, args.method, name, data, options,
                          {k: v for k, v in flags.items() if v is not None}, not args.no_publish, args.overwrite,
                          progress_bar=not args.quiet)


def _cmd_finetune(args: Any) -> int:
    cfg = _cli_config(args) if not args.resume else FinetuneConfig()
    job_id, status = run_here(cfg, resume_job=args.resume)
    res = jobs.result(job_id) or {}
    if status.get("state") != "done":
        print(f"error: job {job_id} {status.get('state')}: {status.get('message')}")
        print(f"(log: {jobs.job_dir(job_id) / 'log.txt'}; continue with --resume {job_id})")
        return 1
    val, test = res["metrics"]["validation"], res["metrics"]["test"]
    print(f"{res['method']}: {res['trainable']:,} of {res['total']:,} parameters trained, {res['steps']} steps in "
          f"{res['train_seconds']} s")
    chose = ", picked the checkpoint" if (res.get("selection") or {}).get("split") else ""
    print(f"validation ({val['size']} texts{chose}): accuracy {val['accuracy']:.4f}; "
          f"test ({test['size']} held-out texts): accuracy {test['accuracy']:.4f}, macro F1 {test['f1_macro']:.4f}")
    print(f"saved to {res['path']}" + (f" (store id {res['model_id']})" if res["model_id"] else ""))
    return 0


@cli.command("model_zoo", "finetune")
def add_cli(sub: Any) -> None:
    """Add ``python -m model_zoo finetune``: the fine-tuning job, run headless with a progress bar."""
    p = sub.add_parser("finetune", help="fine-tune a model (full, LoRA, BitFit, adapters, prompt tuning, head only)")
    p.add_argument("--base", default=BASE_ENCODER_ID, help="store id, model folder, or minilm-base (new head)")
    p.add_argument("--data", default="rt", help="rt (bundled Rotten Tomatoes) or a CSV file")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="CSV only: share held out to pick the checkpoint")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="CSV only: share held out for the test metrics (never trained on or used to choose)")
    p.add_argument("--validation-data", metavar="CSV", help="CSV only: a separate validation file (same columns)")
    p.add_argument("--test-data", metavar="CSV", help="CSV only: a separate test file (same columns)")
    p.add_argument("--split-seed", type=int, default=SPLIT_SEED, help="CSV only: seed of the train/validation/test "
                   "split (kept apart from --seed, so runs share one test set)")
    p.add_argument("--limit", type=int, default=0, help="use N training texts (a seeded sample; 0: all)")
    p.add_argument("--validation-limit", type=int, default=0, help="use N validation texts (0: all)")
    p.add_argument("--method", default="lora", choices=list(METHODS))
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a method setting, e.g. --set r=16")
    for flag, kind in (("epochs", float), ("batch-size", int), ("lr", float), ("warmup", float),
                       ("weight-decay", float), ("max-length", int), ("seed", int), ("eval-steps", int),
                       ("patience", int), ("save-steps", int)):
        p.add_argument(f"--{flag}", type=kind, default=None, help="default: the method's recipe")
    p.add_argument("--name", default="", help="store id of the new model (default: <method>-<time>)")
    p.add_argument("--no-publish", action="store_true", help="keep the model in the job folder")
    p.add_argument("--overwrite", action="store_true", help="replace a store model of the same name")
    p.add_argument("--resume", metavar="JOB_ID", help="continue an interrupted job from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_finetune)


__all__ = ["METHODS", "ROLES", "DataSpec", "FinetuneConfig", "Prepared", "Splits", "default_train_config",
           "held_out_fractions", "load_data", "prepare_model", "run_job", "run_here", "save_to_store", "save_upload",
           "start_job", "validate_config"]
