"""``python -m model_zoo finetune`` under a multi-process launcher (torchrun; ``accelerate launch`` on GPUs uses the
same environment): two CPU processes train data-parallel into one job, and the main one saves the model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model_zoo import jobs, load

TORCHRUN = Path(sys.executable).parent / "torchrun"
needs_torchrun = pytest.mark.skipif(shutil.which(str(TORCHRUN)) is None, reason="no torchrun")


def _torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "model_zoo", "finetune",
                           *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).parents[2])


@needs_torchrun
def test_two_processes_train_one_job_data_parallel(tiny_model_dir: Path) -> None:
    home = Path(os.environ["LOUPE_HOME"])
    run = _torchrun("--base", str(tiny_model_dir), "--method", "head_only", "--no-publish", "--limit", "64",
                    "--validation-limit", "16", "--epochs", "1", "--batch-size", "8", "--save-steps", "0", "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)  # only the main process prints
    assert out["state"] == "done"
    made = [p.name for p in (home / "jobs").iterdir()]
    assert made == [out["job"]]  # one job, not one per process
    # 64 texts in batches of 8 per process over 2 processes: 4 optimiser steps (one process alone takes 8)
    assert out["steps"] == 4
    records = jobs.metrics(out["job"])
    assert records and all(r.get("step", 0) <= 4 for r in records)
    assert load(out["path"], device="cpu").num_labels == 2


@needs_torchrun
def test_a_config_the_main_process_refuses_stops_every_process(tiny_model_dir: Path) -> None:
    run = _torchrun("--base", str(tiny_model_dir), "--method", "head_only", "--name", "no/slashes", timeout=120)
    assert run.returncode != 0
    assert "name" in run.stderr.lower()
    made = Path(os.environ["LOUPE_HOME"]) / "jobs"
    assert not made.exists() or not any(made.iterdir())
