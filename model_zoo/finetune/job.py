"""The ``finetune`` job: data, base model, method, training with live metrics, the saved model and its card.

While it trains, the job writes to its folder: progress and ETA (``status.json``), one record per training
log step (``{"split": "train", "step", "loss"}``) and per evaluation (``{"split": "validation", "step",
"loss", "accuracy", "f1"}``) in ``metrics.jsonl``, which rows went to which split (``splits.json``), and
checkpoints. A checkpoint counts once Trainer has finished writing it (a ``.complete`` marker); a resumed job
restarts from the last complete one and drops the metric records made after it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from model_zoo import jobs, spec, store
from model_zoo.card import ModelCard
from model_zoo.data import TextDataset
from model_zoo.errors import LoupeError
from model_zoo.finetune.config import FinetuneConfig, validate_config
from model_zoo.finetune.model import Prepared, export_model, prepare_model
from model_zoo.finetune.splits import ROLES, Splits, load_data
from model_zoo.handle import ModelHandle
from model_zoo.loading import load
from model_zoo.paths import models_dir, publish_dir_atomic, staging_dir, write_json_atomic
from model_zoo.training import TrainConfig, classification_metrics, make_trainer

COMPLETE = ".complete"


def _live_metrics(ctx: jobs.JobContext) -> Any:
    """A Trainer callback that reports to the job folder: progress + ETA, loss/validation records, checkpoint
    markers, and Cancel."""
    from transformers import TrainerCallback

    class LiveMetrics(TrainerCallback):
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
            if _cancel_requested(ctx):
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
            if ctx.main and folder.is_dir():  # the main process writes checkpoints
                (folder / COMPLETE).write_text(str(time.time()), encoding="utf-8")
                ctx.log(f"checkpoint saved at step {state.global_step}")

    return LiveMetrics()


def world() -> tuple[int, int]:
    """``(rank, number of processes)`` of a run started by ``torchrun`` or ``accelerate launch`` (else (0, 1))."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _cancel_requested(ctx: jobs.JobContext) -> bool:
    """Cancel, agreed by every process of a multi-process run (one stopping alone would leave the others waiting)."""
    flag = ctx.cancelled()
    if world()[1] > 1:
        import torch
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            agreed = torch.tensor([int(flag)])
            dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
            return bool(agreed.item())
    return flag


def _wait_for_everyone() -> None:
    if world()[1] > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


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


def _evaluate(handle: ModelHandle, ds: TextDataset, split: str) -> dict[str, Any]:
    """Accuracy, macro F1 and confusion matrix on ``ds``, labelled with its split, size and role."""
    probs = handle.predict_proba(ds.texts)
    metrics = classification_metrics(np.asarray(ds.labels), probs.argmax(axis=1), len(ds.label_names))
    return {"split": split, "size": len(ds), "role": ROLES[split], **metrics}


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
    if ctx.main:
        write_json_atomic(ctx.dir / "splits.json", splits.rows())
    ctx.log(f"data: {len(splits.train)} training, {len(splits.validation)} validation, "
            f"{len(splits.test)} test (held out) texts; {splits.how}; labels {splits.labels}")
    ctx.progress(0, 1, "loading the base model")
    prep = prepare_model(cfg.base, cfg.method, cfg.method_config, splits.labels, seed=tcfg.seed)
    ctx.log(f"{prep.method.title}: {prep.trainable:,} of {prep.total:,} parameters train "
            f"({100 * prep.fraction:.3f}%){'; new head' if prep.new_head else ''}")
    if prep.base_folder is None and prep.method.saves_adapter(prep.method_config):
        raise LoupeError(f"{prep.method.title} saves an adapter that refers to its base, so the base must be on "
                         "disk (store, bundled or a folder), not a hub id.")
    tcfg.max_length = prep.method.max_length(prep.model.config, prep.method_config, tcfg.max_length)
    if cfg.dp.enabled or cfg.federated.enabled:  # private training runs its own loop, then _finish below
        from model_zoo.private_training.run import run_private

        return run_private(ctx, cfg, tcfg, prep, splits, started)
    out_dir = ctx.checkpoints
    if ctx.main and ctx.resuming:
        last_complete_checkpoint(out_dir)  # deletes unfinished checkpoints
    _wait_for_everyone()
    checkpoint = last_complete_checkpoint(out_dir) if ctx.resuming else None
    resumed_from = int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0
    if ctx.main and ctx.resuming:
        _trim_metrics(ctx.dir, resumed_from)
        ctx.metric({"event": "resumed", "step": resumed_from})
        ctx.log(f"resuming from step {resumed_from}" if checkpoint else "no complete checkpoint: starting over")
    if ctx.main and checkpoint is None:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir()
    _wait_for_everyone()
    trainer = make_trainer(prep.model, prep.tokenizer, splits.train, splits.validation, tcfg, out_dir,
                           [_live_metrics(ctx)], progress_bar=cfg.progress_bar)
    steps_per_epoch = -(-len(splits.train) // tcfg.batch_size)
    trainer.args.logging_steps = max(1, min(10, int(steps_per_epoch * tcfg.epochs) // 20))
    t_train = time.time()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = time.time() - t_train
    if ctx.cancelled() or not ctx.main:  # the main process of a multi-process run saves and scores the model
        return {"cancelled": True} if ctx.cancelled() else {}
    ctx.progress(result.global_step, result.global_step, "saving and evaluating the model")
    return _finish(ctx, cfg, tcfg, prep, splits, trainer, result, resumed_from, train_seconds, started)


def _finish(ctx: jobs.JobContext, cfg: FinetuneConfig, tcfg: TrainConfig, prep: Prepared, splits: Splits,
            trainer: Any, result: Any, resumed_from: int, train_seconds: float, started: float,
            card_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save into a staging folder, reload it with ``model_zoo.load``, measure, write the card, publish.

    The test split is scored here, once, on the model exactly as saved (the selected checkpoint).
    ``card_extra``: more card entries (private training's ``privacy`` / ``federated``), also in the result.
    """
    job_id = ctx.dir.name
    selection = _selection(tcfg, trainer, int(result.global_step))
    publish = cfg.publish and (cfg.overwrite or store.model_path(cfg.name) is None)
    parent = models_dir() if publish else ctx.dir
    final = models_dir() / cfg.name if publish else ctx.dir / "model"
    with staging_dir(parent, cfg.name or "model") as staging:
        entries = export_model(prep, trainer.model, staging)
        handle = load(staging, attn_implementation="sdpa")  # measure the model exactly as it was saved
        metrics = {"validation": _evaluate(handle, splits.validation, "validation"),
                   "test": _evaluate(handle, splits.test, "test")}
        card = ModelCard(
            id=cfg.name if publish else f"job:{job_id}", name=cfg.name, task=splits.task, labels=prep.labels,
            base_model=cfg.base, new_head=prep.new_head, method=prep.method.name, method_title=prep.method.title,
            method_config=spec.to_dict(prep.method_config), trainable_parameters=prep.trainable,
            total_parameters=prep.total, trainable_fraction=prep.fraction,
            data={**splits.summary(), "spec": spec.to_dict(cfg.data)}, hyperparameters=spec.to_dict(tcfg),
            seed=tcfg.seed, metrics=metrics, selection=selection, train_loss=float(result.training_loss),
            steps=int(result.global_step), resumed_from_step=resumed_from, train_seconds=round(train_seconds, 1),
            seconds=round(time.time() - started, 1), device=str(prep.device), job=job_id,
            peft=entries.get("peft"), merged=entries.get("merged"), **(card_extra or {}))
        card.write(staging)
        publish_dir_atomic(staging, final)
    shutil.rmtree(ctx.checkpoints, ignore_errors=True)  # the model is saved; checkpoints are only for resuming
    note = "" if publish or not cfg.publish else f"{cfg.name!r} was taken meanwhile; the model stays in the job."
    test = metrics["test"]
    ctx.log(f"test split ({test['size']} held-out texts): accuracy {test['accuracy']:.4f}, macro F1 "
            f"{test['f1_macro']:.4f}; saved to {final}")
    return {"model_id": cfg.name if publish else None, "path": str(final), "published": publish, "note": note,
            "metrics": metrics, "selection": selection, "data": card.data, "seconds": card.seconds,
            "train_seconds": card.train_seconds, "steps": card.steps, "train_loss": card.train_loss,
            "resumed_from_step": resumed_from, "trainable": prep.trainable, "total": prep.total,
            "method": prep.method.name, **(card_extra or {})}


# --- entry points for the page, the command line and the default model ---------------------------------------
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

    Under ``torchrun``/``accelerate launch`` every process calls this: the main one makes the job folder and
    tells the others (Trainer then trains data-parallel over the processes; the main one reports and saves).

    Returns ``(job_id, status)``; the result is in ``jobs.result(job_id)`` when the state is ``done``.
    """
    rank, processes = world()
    folder: Path | None = None
    refused: LoupeError | None = None
    if rank == 0:
        try:
            folder = _job_folder(cfg, resume_job)
        except LoupeError as err:
            refused = err
    if processes > 1:
        folder = _share_folder(folder)  # None when the main process refused: every process stops
    if refused is not None:
        raise refused
    if folder is None:
        raise LoupeError("The main process could not start the job (see its message).")
    jobs.run_in_process(folder, resume_=bool(resume_job), main=rank == 0)
    _wait_for_everyone()
    return folder.name, jobs.status(folder.name)


def _job_folder(cfg: FinetuneConfig, resume_job: str | None) -> Path:
    """The folder of the job to resume, or of a new job for ``cfg`` (checked first)."""
    if resume_job:
        folder = jobs.job_dir(resume_job)
        if jobs.status(resume_job).get("state") in jobs.ACTIVE:
            raise LoupeError(f"Job {resume_job} is still running.")
        return folder
    validate_config(cfg)
    return jobs.create("finetune", cfg.to_dict(), owner=None, pid=os.getpid())


def _share_folder(folder: Path | None) -> Path | None:
    """The main process's job folder, in every process (joins the launcher's process group)."""
    import torch.distributed as dist
    from accelerate import PartialState

    PartialState()  # sets up the process group from the launcher's environment (gloo on CPUs, nccl on GPUs)
    shared = [str(folder) if folder is not None else None]
    dist.broadcast_object_list(shared, src=0)
    return Path(shared[0]) if shared[0] is not None else None
