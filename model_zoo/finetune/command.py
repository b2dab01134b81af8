"""``python -m model_zoo finetune``: the fine-tuning job, run in the terminal with a progress bar.

Flags come from the specs: the run's (``--base``, ``--method``, ``--name``, ``--no-publish``...), the data's
(``--data``, ``--text-column``, ``--limit``...) and the training settings' (``--epochs``, ``--batch-size``,
``--lr``...; unset ones take the method's recipe); the method's own settings are ``--set KEY=VALUE``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from typing import Any

from model_zoo import cli, jobs, spec
from model_zoo.errors import LoupeError
from model_zoo.finetune.config import JOB_DEFAULTS, DataSpec, FinetuneConfig
from model_zoo.finetune.job import run_here, world
from model_zoo.methods import METHODS
from model_zoo.paths import discard_upload
from model_zoo.private_training import cli as private_cli
from model_zoo.training import TrainConfig

# Flags whose name is not their setting's (kept from earlier versions, and shorter): flag names per setting.
_DATA_FLAGS: dict[str, tuple[str, ...]] = {"source": ("--data",), "validation_source": ("--validation-data",),
                                            "test_source": ("--test-data",)}
_TRAIN_FLAGS: dict[str, tuple[str, ...]] = {"learning_rate": ("--learning-rate", "--lr")}
_RUN_SKIP = ("data", "method_config", "train", "progress_bar")


def _flag(parser: argparse._ActionsContainer, cls: type, name: str, flags: tuple[str, ...]) -> None:
    """One flag (with aliases) for setting ``name`` of ``cls``, typed and explained by its spec."""
    s = next(s for s in spec.settings(cls) if s.name == name)
    parser.add_argument(*flags, dest=name, type=s.parse, default=None, help=f"{s.help} (default: {s.default!r})")


def _methods_help() -> str:
    return "methods: --set settings; recipe\n" + "\n".join(
        f"  {name:<14} {', '.join(s.name for s in spec.settings(m.Config, name)) or '-'}; "
        + ", ".join(f"{k} {v}" for k, v in m.recipe.items()) for name, m in METHODS.items())


@cli.command("model_zoo", "finetune")
def add_cli(sub: Any) -> None:
    """Add ``python -m model_zoo finetune``."""
    p = sub.add_parser("finetune", help="fine-tune a model (" + ", ".join(METHODS) + ")", epilog=_methods_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    spec.add_arguments(p, FinetuneConfig, skip=_RUN_SKIP, default_none=True)
    data = p.add_argument_group("data")
    spec.add_arguments(data, DataSpec, skip=tuple(_DATA_FLAGS), default_none=True)
    for name, flags in _DATA_FLAGS.items():
        _flag(data, DataSpec, name, flags)
    train = p.add_argument_group("training", "An unset flag takes the method's recipe (below), else the default shown.")
    spec.add_arguments(train, TrainConfig, skip=tuple(_TRAIN_FLAGS), default_none=True,
                       defaults_from=TrainConfig(**JOB_DEFAULTS))
    for name, flags in _TRAIN_FLAGS.items():
        _flag(train, TrainConfig, name, flags)
    private_cli.add_arguments(p)  # --dp ..., --federated ...
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of the method, e.g. --set r=16 (repeatable; see below)")
    p.add_argument("--redact-pii", choices=("placeholder", "mask", "hash"), metavar="STYLE",
                   help="CSV only: replace personal data in the text column before training (placeholder, mask or "
                        "hash); the job reads redacted copies holding only the text and label columns")
    p.add_argument("--resume", metavar="JOB_ID", help="continue an interrupted job from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the job's result as JSON (logs go to stderr)")
    from model_zoo.continual import job as continual_job  # continual builds on finetune: imported when used

    continual_job.add_finetune_arguments(p)
    p.set_defaults(func=_cmd_finetune)


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    """The run the flags describe (unset flags: the spec's defaults and the method's recipe)."""
    run = spec.from_args(args, FinetuneConfig, skip=_RUN_SKIP)
    method = METHODS.lookup(run.get("method", FinetuneConfig.method))
    run.setdefault("name", f"{method.name.replace('_', '-')}-{time.strftime('%Y%m%d-%H%M%S')}")
    return FinetuneConfig.from_dict({
        **run,
        "data": spec.from_args(args, DataSpec),
        "method_config": spec.parse_assignments(args.set, method.Config, method.name),
        "train": spec.from_args(args, TrainConfig),
        "progress_bar": not (args.quiet or args.json),
        **private_cli.from_args(args),
    })


def redacted_config(cfg: FinetuneConfig, style: str, quiet: bool = False) -> FinetuneConfig:
    """``cfg`` reading redacted copies of its CSV files, staged for the job (removed when it ends)."""
    from pathlib import Path

    from model_zoo.errors import DatasetError
    from model_zoo.finetune.redaction import redact_files
    from model_zoo.paths import stage_upload

    data = cfg.data
    if data.source == "rt":
        raise DatasetError("--redact-pii works on a CSV file (--data FILE.csv); the bundled data holds no personal "
                           "data to redact.")
    paths = {k: getattr(data, k) for k in ("source", "validation_source", "test_source") if getattr(data, k)}
    missing = [p for p in paths.values() if not Path(p).expanduser().is_file()]
    if missing:
        raise DatasetError(f"No data file at {missing[0]}.")
    files = {k: (Path(p).expanduser().read_bytes(), Path(p).name) for k, p in paths.items()}
    show = None if quiet else (lambda done, total: print(f"\rredacting: {done:,}/{total:,} texts", end="",
                                                          file=sys.stderr, flush=True))
    redacted, record = redact_files(files, data.text_column, data.label_column, style, show)
    if show is not None:
        print(file=sys.stderr)
    staged = {k: str(stage_upload(raw, name)) for k, (raw, name) in redacted.items()}
    return dataclasses.replace(cfg, data=dataclasses.replace(
        data, source=staged["source"], validation_source=staged.get("validation_source", ""),
        test_source=staged.get("test_source", ""), redaction=record))


def _cmd_finetune(args: argparse.Namespace) -> int:
    from model_zoo.continual import ContinualConfig
    from model_zoo.continual import job as continual_job

    if args.continue_from or (args.resume and jobs.status(args.resume).get("kind") == continual_job.KIND):
        cfg_continual = ContinualConfig() if args.resume else continual_job.config_from_finetune_args(args)
        return continual_job.run_and_report(cfg_continual, args)
    cfg = FinetuneConfig() if args.resume else config_from_args(args)
    if args.redact_pii and not args.resume:
        cfg = redacted_config(cfg, args.redact_pii, quiet=args.quiet or args.json)
    try:
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            job_id, status = run_here(cfg, resume_job=args.resume)
    except LoupeError:
        if cfg.data.redaction:  # refused before a job took the redacted copies: remove them
            for path in (cfg.data.source, cfg.data.validation_source, cfg.data.test_source):
                if path:
                    discard_upload(path)
        raise
    if world()[0] != 0:  # another process of a torchrun / accelerate launch run: the main one reports
        return 0
    return cli.report_job(job_id, status, args.json, format_result)


def format_result(res: dict[str, Any]) -> str:
    """A finished fine-tuning job's result, as text: what trained, validation and test scores, where it went."""
    val, test = res["metrics"]["validation"], res["metrics"]["test"]
    chose = ", picked the checkpoint" if (res.get("selection") or {}).get("split") else ""
    return "\n".join([
        f"{res['method']}: {res['trainable']:,} of {res['total']:,} parameters trained, {res['steps']} steps in "
        f"{res['train_seconds']} s",
        f"validation ({val['size']} texts{chose}): accuracy {val['accuracy']:.4f}; "
        f"test ({test['size']} held-out texts): accuracy {test['accuracy']:.4f}, macro F1 {test['f1_macro']:.4f}",
        f"saved to {res['path']}" + (f" (store id {res['model_id']})" if res["model_id"] else "")])
