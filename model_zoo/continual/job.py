"""The ``continual`` job and ``python -m model_zoo continual``: train a sequence of tasks with each strategy and
print the accuracy matrices.

Flags come from the specs: the run's (``--continue-from``, ``--sequence``, ``--strategy``, ``--replay-size``,
``--ewc-lambda``, ``--method``, ``--scenario``...), the training settings' (``--epochs``, ``--batch-size``...;
unset ones take the method's recipe and one epoch per task); the method's own settings are ``--set KEY=VALUE``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from model_zoo import cli, jobs, spec, store
from model_zoo.continual.bundled import BUNDLED
from model_zoo.continual.config import METHOD_CHOICES, SEQUENCES, ContinualConfig, TaskSpec, validate_config
from model_zoo.continual.run import run_continual
from model_zoo.errors import DatasetError, LoupeError
from model_zoo.loading import locate, require_own_weights
from model_zoo.methods import METHODS
from model_zoo.training import TrainConfig

KIND = "continual"
_SKIP = ("base", "method_config", "sequence", "tasks", "strategies", "train", "progress_bar")
_TRAIN_SKIP = ("eval_steps", "save_steps", "early_stopping_patience")


@jobs.register_kind(KIND, "a continual fine-tuning job")
def run_job(ctx: jobs.JobContext) -> dict[str, Any]:
    """The ``continual`` job: ``ctx.config`` is a :class:`ContinualConfig` dict (no explanations)."""
    return run_continual(ctx.config, ctx)


def start_job(cfg: ContinualConfig, owner: str | None = None) -> str:
    """Validate ``cfg`` and start it as a background job; returns the job id."""
    return jobs.start(KIND, validate_config(cfg).to_dict(), owner=owner)


def run_here(cfg: ContinualConfig, resume_job: str | None = None) -> tuple[str, dict[str, Any]]:
    """Run a ``continual`` job in this process (the same folder and code as a background job)."""
    if resume_job:
        folder = jobs.job_dir(resume_job)
        if jobs.status(resume_job).get("state") in jobs.ACTIVE:
            raise LoupeError(f"Job {resume_job} is still running.")
    else:
        folder = jobs.create(KIND, validate_config(cfg).to_dict(), owner=None, pid=os.getpid())
    jobs.run_in_process(folder, resume_=bool(resume_job))
    return folder.name, jobs.status(folder.name)


# --- the command line ------------------------------------------------------------------------------------------
@cli.command("model_zoo", "continual")
def add_cli(sub: Any) -> None:
    """Add ``python -m model_zoo continual``."""
    p = sub.add_parser("continual", help="train a model on a sequence of tasks (naive, replay, EWC) and measure "
                                         "what it forgot", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="bundled sequences:\n" + "\n".join(f"  {k:<9} {' -> '.join(v[0])}: {v[1]}"
                                                                  for k, v in SEQUENCES.items()))
    p.add_argument("--continue-from", "--base", dest="base", default=None, metavar="MODEL",
                   help="store id, model folder, or minilm-base (the bundled encoder) to start from")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--sequence", choices=list(SEQUENCES), default=None, help="a bundled sequence (default politics)")
    src.add_argument("--tasks", default=None, metavar="A.csv,B.csv", help="your own tasks, in order (CSV files)")
    p.add_argument("--strategy", default=None, metavar="S[,S...]",
                   help="naive, replay, ewc, replay+ewc (comma-separated: run each; default naive,replay,ewc)")
    spec.add_arguments(p, ContinualConfig, skip=_SKIP, scope="continual", default_none=True)
    csv = p.add_argument_group("CSV tasks (--tasks)")
    spec.add_arguments(csv, TaskSpec, skip=("source", "name"), default_none=True)
    train = p.add_argument_group("training (per task)", "An unset flag takes the method's recipe, one epoch per task.")
    spec.add_arguments(train, TrainConfig, skip=_TRAIN_SKIP, default_none=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of the method")
    p.add_argument("--resume", metavar="JOB_ID", help="continue an interrupted job after its last finished step")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print the job's result as JSON (logs go to stderr)")
    p.set_defaults(func=_cmd)


def config_from_args(args: argparse.Namespace) -> ContinualConfig:
    """The run the flags describe (unset flags: the spec's defaults and the method's recipe)."""
    run = spec.from_args(args, ContinualConfig, skip=_SKIP)
    method = METHODS.lookup(run.get("method", ContinualConfig.method))
    values: dict[str, Any] = {**run, "method_config": spec.parse_assignments(args.set, method.Config, method.name),
                              "train": spec.from_args(args, TrainConfig, skip=_TRAIN_SKIP),
                              "progress_bar": not (args.quiet or args.json)}
    if args.base:
        values["base"] = args.base
    if run.get("name") and "publish" not in run:  # a name on the command line: put the models in the store
        values["publish"] = True
    if args.strategy:
        values["strategies"] = [s.strip() for s in args.strategy.split(",") if s.strip()]
    if args.tasks:
        columns = spec.from_args(args, TaskSpec, skip=("source", "name"))
        values["sequence"] = ""
        values["tasks"] = [{"source": f.strip(), **columns} for f in args.tasks.split(",") if f.strip()]
    elif args.sequence:
        values["sequence"] = args.sequence
    return ContinualConfig.from_dict(values)


def format_result(res: dict[str, Any]) -> str:
    """The accuracy matrix of each strategy and its summary, as text."""
    names = [t["name"] for t in res["tasks"]]
    lines = [f"tasks: {' -> '.join(names)} ({res['scenario_title']}); first task {res['first_task']}",
             "starting model: " + "  ".join(f"{n} {a:.3f}" for n, a in zip(names, res["starting_accuracy"]))]
    for name in res["order"]:
        s = res["strategies"][name]
        lines.append(f"\n{name}: R[i, j] = accuracy on task j after training on task i")
        lines.append(cli.table(([f"after {names[i]}", *(f"{a:.3f}" for a in row)] for i, row in enumerate(s["matrix"])),
                               ["", *names]))

        def fmt(v: Any) -> str:
            return "-" if v is None else f"{v:+.3f}" if not isinstance(v, str) else v

        lines.append(f"average accuracy {s['average_accuracy']:.3f}  BWT {fmt(s['bwt'])}  FWT {fmt(s['fwt'])}  "
                     f"{s['seconds']} s  model: {s['model_id'] or s['path']}")
    return "\n".join(lines)


# --- python -m model_zoo finetune --continue-from MODEL -----------------------------------------------------------
# The strategy's settings that ``finetune`` offers as flags; the rest (method, name, limit, training) are its own.
FINETUNE_FLAGS = ("scenario", "replay_size", "replay_sampling", "ewc_lambda", "ewc_gamma", "fisher_samples")


def add_finetune_arguments(parser: Any) -> None:
    """``finetune``'s flags for continuing a store model (``--continue-from`` and the strategy's settings)."""
    group = parser.add_argument_group(
        "continuing a model (--continue-from)",
        "Train a store model on new data (--data) without forgetting what it learned: a continual job whose first "
        "task is the data the model was trained on (scored, not trained again) and whose second is --data.")
    group.add_argument("--continue-from", metavar="MODEL", default=None,
                       help="store id or model folder of a trained classifier to continue")
    group.add_argument("--strategy", default=None, metavar="S[,S...]",
                       help="naive, replay, ewc, replay+ewc (comma-separated: run each; default replay)")
    spec.add_arguments(group, ContinualConfig, skip=[s.name for s in spec.settings(ContinualConfig)
                                                     if s.name not in FINETUNE_FLAGS], default_none=True)


def previous_task(model: str) -> dict[str, Any]:
    """The task a store model was trained on, from its card, as a :class:`TaskSpec` dict.

    A fine-tuned model's card names its data (``data.spec``: the bundled ``rt`` or a CSV file); a continual model's
    names its tasks, of which the last is continued. ``LoupeError`` when the card does not say, or the file is gone.
    """
    folder, _ = locate(model)
    data = store.read_card(folder).get("data") or {}
    if isinstance(data.get("spec"), dict):
        src = data["spec"]
        task = {"source": src.get("source", ""), "text_column": src.get("text_column", "text"),
                "label_column": src.get("label_column", "label")}
    elif data.get("tasks"):
        task = {"source": data["tasks"][-1].get("source", "")}
    else:
        raise LoupeError(f"The card of {model!r} does not say what data it was trained on, so what it might forget "
                         "cannot be measured. Name that data yourself: python -m model_zoo continual "
                         f"--continue-from {model} --tasks OLD.csv,NEW.csv")
    if task["source"] not in BUNDLED and not Path(task["source"]).expanduser().is_file():
        raise DatasetError(f"{model!r} was trained on {task['source']}, which is no longer there; name that data "
                           f"yourself: python -m model_zoo continual --continue-from {model} --tasks OLD.csv,NEW.csv")
    return task


def config_from_finetune_args(args: argparse.Namespace) -> ContinualConfig:
    """The continual run ``finetune --continue-from MODEL --data NEW ...`` describes."""
    for flag, given in (("--dp", args.dp_enabled), ("--federated", args.federated_enabled),
                        ("--redact-pii", args.redact_pii), ("--validation-data", args.validation_source),
                        ("--test-data", args.test_source)):
        if given:
            raise LoupeError(f"{flag} does not combine with --continue-from (a continual job).")
    if not args.source:
        raise DatasetError("Name the new data to continue on: --data NEW.csv (or a bundled task: "
                           f"{', '.join(BUNDLED)}).")
    require_own_weights(args.continue_from, "continue training")
    old = previous_task(args.continue_from)
    new = {"source": args.source, **{k: getattr(args, k) for k in ("text_column", "label_column", "test_fraction")
                                    if getattr(args, k, None) is not None}}
    if new["source"] == old["source"]:
        raise DatasetError(f"{args.continue_from!r} was trained on {old['source']} already; --data names new data.")
    method = args.method or "full"
    if method not in METHOD_CHOICES:
        raise LoupeError(f"Continuing a model trains with {' or '.join(METHOD_CHOICES)}, not {method!r}.")
    values: dict[str, Any] = {
        **{k: getattr(args, k) for k in FINETUNE_FLAGS if getattr(args, k, None) is not None},
        "base": args.continue_from, "method": method, "sequence": "", "tasks": [old, new], "first_task": "known",
        "strategies": [s.strip() for s in (args.strategy or "replay").split(",") if s.strip()],
        "method_config": spec.parse_assignments(args.set, METHODS.lookup(method).Config, method),
        "train": spec.from_args(args, TrainConfig, skip=_TRAIN_SKIP), "limit": args.limit or 0,
        "progress_bar": not (args.quiet or args.json)}
    if args.name:
        values.update(name=args.name, publish=args.publish is not False)
    if args.overwrite:
        values["overwrite"] = True
    return ContinualConfig.from_dict(values)


def run_and_report(cfg: ContinualConfig, args: argparse.Namespace) -> int:
    """Run ``cfg`` here (or resume ``args.resume``) and print its matrices, or its JSON with ``--json``."""
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        job_id, status = run_here(cfg, resume_job=args.resume)
    return cli.report_job(job_id, status, args.json, format_result)


def _cmd(args: argparse.Namespace) -> int:
    return run_and_report(ContinualConfig() if args.resume else config_from_args(args), args)
