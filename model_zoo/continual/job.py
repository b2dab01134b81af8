"""The ``continual`` job and ``python -m model_zoo continual``: train a sequence of tasks with each strategy and
print the accuracy matrices.

Flags come from the specs: the run's (``--continue-from``, ``--sequence``, ``--strategy``, ``--replay-size``,
``--ewc-lambda``, ``--method``, ``--scenario``...), the training settings' (``--epochs``, ``--batch-size``...;
unset ones take the method's recipe and one epoch per task); the method's own settings are ``--set KEY=VALUE``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from model_zoo import cli, jobs, spec
from model_zoo.continual.config import SEQUENCES, ContinualConfig, TaskSpec, validate_config
from model_zoo.continual.run import run_continual
from model_zoo.errors import LoupeError
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


def _cmd(args: argparse.Namespace) -> int:
    cfg = ContinualConfig() if args.resume else config_from_args(args)
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        job_id, status = run_here(cfg, resume_job=args.resume)
    res = jobs.result(job_id) or {}
    if args.json:
        print(json.dumps({"job": job_id, "state": status.get("state"), "message": status.get("message"), **res},
                         indent=2, default=str))
        return 0 if status.get("state") == "done" else 1
    if status.get("state") != "done":
        print(f"error: job {job_id} {status.get('state')}: {status.get('message')}")
        print(f"(log: {jobs.job_dir(job_id) / 'log.txt'}; continue with --resume {job_id})")
        return 1
    print(format_result(res))
    return 0
