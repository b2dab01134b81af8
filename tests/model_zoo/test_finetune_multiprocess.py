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


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_two_processes_train_one_job_data_parallel(tiny_model_dir: Path, tmp_path: Path) -> None:
    home = Path(os.environ["LOUPE_HOME"])
    args = ["-m", "model_zoo", "finetune", "--base", str(tiny_model_dir), "--method", "head_only", "--no-publish",
            "--limit", "64", "--validation-limit", "16", "--epochs", "1", "--batch-size", "8", "--save-steps", "0",
            "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LOUPE_HOME": str(home)}
    torchrun = str(Path(sys.executable).parent / "torchrun")
    run = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", *args], env=env,
                         capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[2])
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
