"""One continual run: the base trained on a sequence of tasks, once per strategy, scored on every task after
every step; the accuracy matrices, their summary, and each strategy's final model with its card.

The first task is trained once (or, when the base already learned it, only scored) and every strategy starts
from that model, so the strategies differ only in how they learn the later tasks. While it runs, the job's
``metrics.jsonl`` gets one record per finished step (``{"kind": "row", "strategy", "step", "row"}``; rows of
the matrix), the observer's records (``{"kind": "observed", ...}``) and a ``{"kind": "start"}`` record with the
starting model's accuracies. Cancel stops between (and within) steps; the finished steps stay, checkpointed, and
Resume continues after the last of them.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from model_zoo import jobs, spec, store
from model_zoo.card import ModelCard
from model_zoo.continual.config import STRATEGIES, ContinualConfig, store_name, validate_config
from model_zoo.continual.ewc import EWC
from model_zoo.continual.heads import SCENARIOS, label_union, task_columns
from model_zoo.continual.metrics import transfer
from model_zoo.continual.model import Start, load_weights, prepare, save_weights, snapshot
from model_zoo.continual.replay import ReplayBuffer
from model_zoo.continual.steps import accuracy, fisher_of, logits_of, train_step, training_set
from model_zoo.continual.tasks import Task, load_tasks
from model_zoo.finetune.model import export_model
from model_zoo.handle import ModelHandle
from model_zoo.loading import BASE_ENCODER_ID
from model_zoo.paths import models_dir, publish_dir_atomic, staging_dir, write_json_atomic
from model_zoo.training import TrainConfig


class Observer(Protocol):
    """Watches the model as it answers the first task: once on the model that learned it, then after every later
    step of every strategy (e.g. explanation drift, :mod:`explainers`). Each returns a JSON-ready record."""

    def reference(self, task: Task, handle: ModelHandle) -> dict[str, Any]: ...

    def after_step(self, strategy: str, step: int, handle: ModelHandle) -> dict[str, Any]: ...


def slug(strategy: str) -> str:
    """A file-name form of a strategy (``replay+ewc`` -> ``replay-ewc``)."""
    return strategy.replace("+", "-")


class _Run:
    """The state of one run (see the module docstring); :func:`run_continual` drives it."""

    def __init__(self, cfg: ContinualConfig, ctx: jobs.JobContext, observer: Observer | None) -> None:
        self.cfg, self.ctx, self.observer = cfg, ctx, observer
        self.started = time.time()
        self.tcfg: TrainConfig = cfg.train_config()
        ctx.progress(0, 1, "loading the tasks")
        self.tasks = load_tasks(cfg, self.tcfg.seed)
        self.labels = label_union([t.labels for t in self.tasks])
        self.columns = task_columns([t.labels for t in self.tasks], self.labels)
        ctx.progress(0, 1, "loading the base model")
        self.start: Start = prepare(cfg.base, cfg.method, cfg.method_config, self.labels, seed=self.tcfg.seed)
        prep = self.start.prep
        self.tcfg.max_length = prep.method.max_length(prep.model.config, prep.method_config, self.tcfg.max_length)
        first = set(self.tasks[0].labels)
        self.first_known = cfg.first_task == "known" or (
            cfg.first_task == "auto" and cfg.base != BASE_ENCODER_ID and first <= set(self.start.base_labels))
        if self.first_known and not first <= set(self.start.base_labels):
            raise jobs.JobError(f"The base does not know the first task's labels ({', '.join(sorted(first))}); "
                                "train on the first task (first_task=train).")
        trained = len(self.tasks) - 1
        self.stages = trained * len(cfg.strategies) + (0 if self.first_known else 1)
        self.done_stages = 0

    # --- small helpers ------------------------------------------------------------------------------------------
    @property
    def ckpt(self) -> Path:
        return self.ctx.checkpoints

    def say(self, message: str) -> None:
        self.ctx.log(message)

    def evaluate(self, model: nn.Module) -> list[float]:
        """Accuracy on every task's test split (one row of the matrix)."""
        row = []
        for task, cols in zip(self.tasks, self.columns):
            logits = logits_of(model, self.start.prep.tokenizer, task.test.texts, self.tcfg.max_length)
            row.append(round(accuracy(logits, task.test.labels, cols, self.cfg.scenario), 4))
        return row

    def first_columns(self) -> list[int] | None:
        return self.columns[0] if self.cfg.scenario == "task" else None

    def callback(self, label: str) -> Any:
        """A Trainer callback: progress over the whole run, and Cancel."""
        from transformers import TrainerCallback

        run = self

        class Progress(TrainerCallback):
            last = 0.0

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                now = time.time()
                if now - self.last > 0.5 or state.global_step >= state.max_steps:
                    self.last = now
                    within = state.global_step / max(1, state.max_steps)
                    run.ctx.progress(run.done_stages + within, run.stages,
                                     f"{label}: step {state.global_step} of {state.max_steps}")
                if run.ctx.cancelled():
                    control.should_training_stop = True

        return Progress()

    def train(self, model: nn.Module, step: int, label: str, buffer: ReplayBuffer | None,
              ewc: EWC | None) -> dict[str, Any]:
        data, targets = training_set(step, self.tasks, self.columns, self.cfg.scenario, len(self.labels), buffer)
        self.say(f"{label}: training on {len(data)} texts ({len(self.tasks[step].train)} new"
                 + (f", {len(buffer)} replayed" if buffer is not None else "") + ")")
        out_dir = self.ckpt / "trainer"
        shutil.rmtree(out_dir, ignore_errors=True)
        stats = train_step(model, self.start.prep.tokenizer, data, targets, self.tcfg, out_dir, ewc,
                           [self.callback(label)])
        shutil.rmtree(out_dir, ignore_errors=True)
        return stats

    def fisher(self, model: nn.Module, step: int) -> Any:
        return fisher_of(model, self.start.prep.tokenizer, self.tasks[step], step, self.columns, self.cfg.scenario,
                         len(self.labels), self.cfg.fisher_samples, self.tcfg.max_length, self.tcfg.seed)

    # --- the first task: shared by every strategy ---------------------------------------------------------------
    def branch(self) -> dict[str, Any]:
        """Train (or only score) the first task once; its model, row and Fisher are every strategy's start."""
        folder = self.ckpt / "branch"
        model = self.start.prep.model
        if self.ctx.resuming and (folder / "state.json").is_file():
            state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
            load_weights(model, folder / "model.safetensors")
            state["fisher"] = EWC.load(folder / "ewc.safetensors") if (folder / "ewc.safetensors").exists() else None
            self.say("resuming: the first task is already done")
            self.done_stages = 0 if self.first_known else 1
            return state
        t0 = time.time()
        self.ctx.progress(0, max(1, self.stages), "scoring the starting model on every task")
        b = self.evaluate(model)
        stats: dict[str, Any] = {}
        if self.first_known:
            row, how = b, "known"
            self.say(f"the base already learned {self.tasks[0].name}: scored, not trained")
        else:
            stats = self.train(model, 0, f"task 1 of {len(self.tasks)} ({self.tasks[0].name})", None, None)
            if self.ctx.cancelled():
                return {}
            row, how = self.evaluate(model), "trained"
            self.done_stages = 1
        seconds = round(time.time() - t0, 1)
        fisher, fisher_seconds = None, 0.0
        if self.cfg.uses("ewc"):
            t1 = time.time()
            fisher = EWC.start(self.cfg.ewc_lambda).consolidate(model, self.fisher(model, 0), self.cfg.ewc_gamma)
            fisher_seconds = round(time.time() - t1, 1)
        state = {"b": b, "row": row, "first_task": how, "stats": stats, "seconds": seconds,
                 "fisher_seconds": fisher_seconds}
        tmp = self.ckpt / ".branch.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_weights(model, tmp / "model.safetensors")
        if fisher is not None:
            fisher.save(tmp / "ewc.safetensors")
        write_json_atomic(tmp / "state.json", state)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        self.say(f"task 1 ({self.tasks[0].name}): accuracy row {row}")
        return {**state, "fisher": fisher}

    # --- one strategy ---------------------------------------------------------------------------------------------
    def strategy(self, name: str, branch: dict[str, Any], reference_model: nn.Module) -> dict[str, Any] | None:
        """Train the later tasks with strategy ``name``; its summary, or None when cancelled."""
        done_file = self.ctx.dir / "strategies" / f"{slug(name)}.json"
        later = len(self.tasks) - 1
        if self.ctx.resuming and done_file.is_file():
            self.done_stages += later
            return dict(json.loads(done_file.read_text(encoding="utf-8")))
        parts = name.split("+")
        model = copy.deepcopy(reference_model)
        buffer = ReplayBuffer(self.cfg.replay_size, self.cfg.replay_sampling, self.tcfg.seed) \
            if "replay" in parts else None
        if buffer is not None:
            buffer.add_task(0, self.tasks[0].train.labels)
        ewc: EWC | None = branch["fisher"] if "ewc" in parts else None
        state: dict[str, Any] = {"step": 0, "rows": [branch["row"]], "steps": [], "observed": [], "seconds": 0.0}
        folder = self.ckpt / slug(name)
        if self.ctx.resuming and (folder / "state.json").is_file():
            state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
            load_weights(model, folder / "model.safetensors")
            if buffer is not None:
                buffer = ReplayBuffer.from_dict(state["buffer"])
            if ewc is not None and (folder / "ewc.safetensors").exists():
                ewc = EWC.load(folder / "ewc.safetensors")
            self.say(f"{name}: resuming after task {state['step'] + 1}")
            for step, row in enumerate(state["rows"]):
                self.ctx.metric({"kind": "row", "strategy": name, "step": step, "row": row})
        self.done_stages += state["step"]
        for step in range(state["step"] + 1, len(self.tasks)):
            if self.ctx.cancelled():
                return None
            t0 = time.time()
            label = f"{name}: task {step + 1} of {len(self.tasks)} ({self.tasks[step].name})"
            stats = self.train(model, step, label, buffer, ewc)
            if self.ctx.cancelled():
                return None
            row = self.evaluate(model)
            observed = self.observer.after_step(name, step, snapshot(self.start.template, model,
                                                                     self.first_columns())) \
                if self.observer is not None else None
            if step < len(self.tasks) - 1:  # what the next tasks need of this one
                if buffer is not None:
                    buffer.add_task(step, self.tasks[step].train.labels)
                if ewc is not None:
                    ewc = ewc.consolidate(model, self.fisher(model, step), self.cfg.ewc_gamma)
            state["rows"].append(row)
            state["steps"].append({**stats, "step": step})
            state["observed"].append(observed)
            state["step"] = step
            state["seconds"] = round(state["seconds"] + time.time() - t0, 1)
            if buffer is not None:
                state["buffer"] = buffer.to_dict()
            self._checkpoint(folder, model, state, ewc)
            self.ctx.metric({"kind": "row", "strategy": name, "step": step, "row": row, **stats})
            if observed is not None:
                self.ctx.metric({"kind": "observed", "strategy": name, "step": step, **observed})
            self.done_stages += 1
            penalty = f"; mean EWC penalty {stats['ewc_penalty']:.4g}" if "ewc_penalty" in stats else ""
            self.say(f"{label}: training loss {stats['train_loss']:.4f}{penalty}; accuracy row {row}")
        summary = self._finish(name, model, state, branch)
        write_json_atomic(done_file, summary)
        shutil.rmtree(folder, ignore_errors=True)
        return summary

    def _checkpoint(self, folder: Path, model: nn.Module, state: dict[str, Any], ewc: EWC | None) -> None:
        tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_weights(model, tmp / "model.safetensors")
        if ewc is not None:
            ewc.save(tmp / "ewc.safetensors")
        write_json_atomic(tmp / "state.json", state)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    def _finish(self, name: str, model: nn.Module, state: dict[str, Any], branch: dict[str, Any]) -> dict[str, Any]:
        """Score, save the strategy's final model with its card; its summary."""
        stats = transfer(state["rows"], branch["b"]).to_dict()
        seconds = state["seconds"] + (branch["fisher_seconds"] if "ewc" in name.split("+") else 0.0)
        several = len(self.cfg.strategies) > 1
        publish = self.cfg.publish and bool(self.cfg.name)
        model_id = store_name(self.cfg.name, name, several) if publish else ""
        if publish and not self.cfg.overwrite and store.model_path(model_id) is not None:
            model_id, publish = "", False  # taken meanwhile: keep it with the job
        parent = models_dir() if publish else self.ctx.dir / "models"
        final = parent / (model_id or slug(name))
        summary: dict[str, Any] = {
            "strategy": name, "matrix": state["rows"], **stats, "seconds": round(seconds, 1),
            "train_seconds": round(sum(s["seconds"] for s in state["steps"]), 1), "steps": state["steps"],
            "observed": [o for o in state["observed"] if o is not None], "model_id": model_id or None,
            "path": str(final), "published": publish}
        with staging_dir(parent, slug(name)) as staging:
            entries = export_model(self.start.prep, model, staging)
            self._card(name, summary, branch, entries, model_id).write(staging)
            extra = store.read_card(staging)
            extra["continual"] = self._card_entry(name, summary, branch)
            store.write_card(staging, extra)
            publish_dir_atomic(staging, final)
        return summary

    def _card_entry(self, name: str, summary: dict[str, Any], branch: dict[str, Any]) -> dict[str, Any]:
        cfg = self.cfg
        settings: dict[str, Any] = {}
        if "replay" in name:
            settings.update(replay_size=cfg.replay_size, replay_sampling=cfg.replay_sampling)
        if "ewc" in name:
            settings.update(ewc_lambda=cfg.ewc_lambda, ewc_gamma=cfg.ewc_gamma, fisher_samples=cfg.fisher_samples,
                            ewc="online EWC, diagonal empirical Fisher")
        return {"sequence": cfg.sequence or None, "tasks": [t.summary() for t in self.tasks],
                "task_columns": self.columns, "scenario": cfg.scenario, "scenario_title": SCENARIOS[cfg.scenario],
                "strategy": name, "strategy_title": STRATEGIES[name], "strategy_settings": settings,
                "first_task": branch["first_task"], "kept_labels": self.start.kept,
                "accuracy_matrix": summary["matrix"], "starting_accuracy": branch["b"],
                "average_accuracy": summary["average_accuracy"], "bwt": summary["bwt"], "fwt": summary["fwt"]}

    def _card(self, name: str, summary: dict[str, Any], branch: dict[str, Any], entries: dict[str, Any],
              model_id: str) -> ModelCard:
        prep, cfg = self.start.prep, self.cfg
        tasks = " → ".join(t.name for t in self.tasks)
        size = sum(len(t.test) for t in self.tasks)
        metrics = {"test": {"split": "test", "size": size, "accuracy": summary["average_accuracy"],
                            "role": "held out: mean accuracy over the tasks' test splits after the last task",
                            "per_task": dict(zip([t.name for t in self.tasks], summary["matrix"][-1]))}}
        return ModelCard(
            id=model_id or f"job:{self.ctx.dir.name}/{slug(name)}", name=model_id,
            task=f"continual: {tasks} ({SCENARIOS[cfg.scenario].split(' (')[0]}, {name})", labels=self.labels,
            base_model=cfg.base, new_head=prep.new_head, method=prep.method.name, method_title=prep.method.title,
            method_config=spec.to_dict(prep.method_config), trainable_parameters=prep.trainable,
            total_parameters=prep.total, trainable_fraction=prep.fraction,
            data={"tasks": [t.summary() for t in self.tasks], "sequence": cfg.sequence or None},
            hyperparameters=spec.to_dict(self.tcfg), seed=self.tcfg.seed, metrics=metrics,
            selection={"split": None, "metric": None, "step": len(self.tasks) - 1,
                       "rule": "the model after the last task (nothing is selected)"},
            train_loss=float(summary["steps"][-1]["train_loss"]) if summary["steps"] else 0.0,
            steps=sum(int(s["steps"]) for s in summary["steps"]), train_seconds=summary["train_seconds"],
            seconds=summary["seconds"], device=str(prep.device), job=self.ctx.dir.name, peft=entries.get("peft"),
            merged=entries.get("merged"))

    # --- the whole run ----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        prep = self.start.prep
        write_json_atomic(self.ctx.dir / "tasks.json", [t.summary() for t in self.tasks])
        self.say(f"tasks: {' → '.join(f'{t.name} ({len(t.train)} train / {len(t.test)} test)' for t in self.tasks)}; "
                 f"labels {self.labels}; {SCENARIOS[self.cfg.scenario]}")
        self.say(f"{prep.method.title}: {prep.trainable:,} of {prep.total:,} parameters train; head extended to "
                 f"{len(self.labels)} labels (kept: {', '.join(self.start.kept) or 'none'})")
        branch = self.branch()
        if not branch:
            return {"cancelled": True}
        reference_model = self.start.prep.model
        self.ctx.metric({"kind": "start", "b": branch["b"], "row": branch["row"], "first_task": branch["first_task"],
                         "tasks": [t.name for t in self.tasks], "labels": self.labels})
        reference = None
        if self.observer is not None:
            self.ctx.progress(self.done_stages, max(1, self.stages), "explaining the first task (reference)")
            reference = self.observer.reference(self.tasks[0], snapshot(self.start.template, reference_model,
                                                                        self.first_columns()))
            self.ctx.metric({"kind": "reference", **reference})
        results: dict[str, Any] = {}
        for name in self.cfg.strategies:
            summary = self.strategy(name, branch, reference_model)
            if summary is None:
                return {"cancelled": True}
            results[name] = summary
        return {
            "tasks": [t.summary() for t in self.tasks], "labels": self.labels, "task_columns": self.columns,
            "scenario": self.cfg.scenario, "scenario_title": SCENARIOS[self.cfg.scenario], "base": self.cfg.base,
            "method": prep.method.name, "method_title": prep.method.title, "trainable": prep.trainable,
            "total": prep.total, "kept_labels": self.start.kept, "first_task": branch["first_task"],
            "starting_accuracy": branch["b"], "first_row": branch["row"], "order": list(self.cfg.strategies),
            "strategies": results, "reference": reference,
            "shared": {"first_task_seconds": branch["seconds"], "fisher_seconds": branch["fisher_seconds"]},
            "settings": {k: getattr(self.cfg, k) for k in ("replay_size", "replay_sampling", "ewc_lambda",
                                                          "ewc_gamma", "fisher_samples", "limit", "test_limit")},
            "hyperparameters": spec.to_dict(self.tcfg), "seconds": round(time.time() - self.started, 1)}


def run_continual(config: ContinualConfig | dict[str, Any], ctx: jobs.JobContext,
                  observer: Observer | None = None) -> dict[str, Any]:
    """Run a continual sequence in a job (the ``continual`` job; ``finetune --continue-from`` delegates here).

    Args:
        config: the run (a :class:`ContinualConfig` or its JSON form); checked first.
        ctx: the job's context (folder, progress, metrics, Cancel, ``resuming``).
        observer: watches the first task's answers after each step (see :class:`Observer`).

    Returns:
        ``{"tasks", "labels", "task_columns", "scenario", "starting_accuracy", "first_row", "order",
        "strategies": {name: {"matrix", "average_accuracy", "bwt", "fwt", "seconds", "model_id", "path",
        "observed", ...}}, "reference", ...}``, or ``{"cancelled": True}``.
    """
    cfg = config if isinstance(config, ContinualConfig) else ContinualConfig.from_dict(config)
    validate_config(cfg, check_names=not ctx.resuming)
    return _Run(cfg, ctx, observer).run()

