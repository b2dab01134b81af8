"""Background jobs: a separate process per job and a folder on disk that pages poll.

A job folder ``LOUPE_HOME/jobs/<id>/`` holds ``config.json`` (kind + parameters), ``status.json``
(state, progress, ETA, message, pid), ``metrics.jsonl`` (one JSON record per line, e.g. loss curves),
``log.txt`` (the process's output), ``result.json`` when done, and ``checkpoints/``.

A browser refresh finds the job again by its id; ``cancel`` stops it; a killed job is ``interrupted``
and ``resume`` continues it (job functions receive ``ctx.resuming`` and restart from their last
checkpoint).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from model_zoo.errors import LoupeError
from model_zoo.paths import jobs_dir, write_json_atomic

# Job kinds and the function that runs each ("module:function"). Strings, so model_zoo does not
# import the packages above it; only these can be started.
KINDS: dict[str, str] = {
    "finetune": "model_zoo.finetune:run_job",
    "compress": "explainers.compression_report:run_job",
    "evaluate": "explainers.evaluation:run_job",
}
ACTIVE = ("queued", "running")


class JobError(LoupeError):
    """A job cannot be found, started or resumed."""


@dataclass
class JobContext:
    """What a job function gets: its folder and config, and ways to report back."""

    dir: Path
    config: dict[str, Any]
    resuming: bool = False
    _started: float = 0.0

    @property
    def checkpoints(self) -> Path:
        path = self.dir / "checkpoints"
        path.mkdir(exist_ok=True)
        return path

    def progress(self, done: float, total: float, message: str = "") -> None:
        """Report progress; the ETA is extrapolated from the time since the (re)start."""
        frac = 0.0 if total <= 0 else min(1.0, done / total)
        elapsed = time.time() - self._started
        eta = elapsed * (1 - frac) / frac if frac > 0.01 else None
        _update(self.dir, state="running", progress=frac, done=done, total=total, eta_seconds=eta,
                message=message)

    def metric(self, record: dict[str, Any]) -> None:
        """Append one record (e.g. ``{"step": 10, "loss": 0.4}``) to ``metrics.jsonl``."""
        with open(self.dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"time": time.time(), **record}, default=str) + "\n")

    def log(self, message: str) -> None:
        print(message, flush=True)

    def cancelled(self) -> bool:
        return (self.dir / "CANCEL").exists()


def _update(folder: Path, **fields: Any) -> dict[str, Any]:
    status = read_status(folder)
    status.update(fields, updated=time.time())
    write_json_atomic(folder / "status.json", status)
    return status


def read_status(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / "status.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def job_dir(job_id: str) -> Path:
    if not job_id or not all(c.isalnum() or c in "-_" for c in job_id):
        raise JobError(f"{job_id!r} is not a job id.")
    folder = jobs_dir() / job_id
    if not (folder / "config.json").exists():
        raise JobError(f"No job {job_id!r} (it may have been deleted).")
    return folder


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie child (finished, not reaped) is not alive
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


def status(job_id: str) -> dict[str, Any]:
    """The job's status; a running job whose process died is reported ``interrupted``."""
    folder = job_dir(job_id)
    st = read_status(folder)
    if st.get("state") in ACTIVE and not _alive(st.get("pid")) and time.time() - st.get("created", 0) > 5:
        st = _update(folder, state="interrupted", message="The job process stopped; resume it to continue.")
    st["id"] = job_id
    return st


def _spawn(folder: Path, resume: bool) -> int:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    with open(folder / "log.txt", "a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "model_zoo.jobs", str(folder)] + (["--resume"] if resume else []),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root, env=env,
            start_new_session=True,
        )
    return proc.pid


def start(kind: str, config: dict[str, Any], owner: str | None = None) -> str:
    """Start a job in its own process and return its id."""
    if kind not in KINDS:
        raise JobError(f"Unknown job kind {kind!r}; known: {', '.join(KINDS)}.")
    job_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    folder = jobs_dir() / job_id
    folder.mkdir(parents=True)
    write_json_atomic(folder / "config.json", {"kind": kind, "config": config, "owner": owner})
    write_json_atomic(folder / "status.json", {"state": "queued", "kind": kind, "created": time.time(),
                                               "progress": 0.0, "message": "starting"})
    _update(folder, pid=_spawn(folder, resume=False))
    return job_id


def resume(job_id: str) -> None:
    """Restart an interrupted or failed job from its last checkpoint."""
    folder = job_dir(job_id)
    st = status(job_id)
    if st.get("state") in ACTIVE:
        raise JobError("The job is still running.")
    (folder / "CANCEL").unlink(missing_ok=True)
    _update(folder, state="queued", message="resuming", created=time.time(), pid=_spawn(folder, resume=True))


def cancel(job_id: str) -> None:
    """Ask the job to stop (it checks between steps) and terminate its process group."""
    folder = job_dir(job_id)
    (folder / "CANCEL").touch()
    pid = read_status(folder).get("pid")
    if _alive(pid):
        try:
            os.killpg(os.getpgid(int(pid)), signal.SIGTERM)  # type: ignore[arg-type]
        except OSError:
            pass
    _update(folder, state="cancelled", message="Cancelled.")


def metrics(job_id: str) -> list[dict[str, Any]]:
    """All records in ``metrics.jsonl`` (a partial last line is skipped)."""
    out = []
    try:
        lines = (job_dir(job_id) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def log_tail(job_id: str, lines: int = 30) -> str:
    try:
        text = (job_dir(job_id) / "log.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def result(job_id: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads((job_dir(job_id) / "result.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def config(job_id: str) -> dict[str, Any]:
    return dict(json.loads((job_dir(job_id) / "config.json").read_text(encoding="utf-8")))


def list_jobs(kind: str | None = None) -> list[dict[str, Any]]:
    """Status of every job (newest first), optionally of one kind."""
    out = []
    for folder in sorted(jobs_dir().iterdir(), reverse=True):
        if (folder / "config.json").exists():
            st = status(folder.name)
            if kind is None or st.get("kind") == kind:
                out.append(st)
    return out


def wait(job_id: str, timeout: float = 600, poll: float = 0.5) -> dict[str, Any]:
    """Block until the job leaves the queued/running states (for CLIs and tests)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = status(job_id)
        if st.get("state") not in ACTIVE:
            return st
        time.sleep(poll)
    raise JobError(f"Job {job_id} did not finish within {timeout:.0f} s.")


def run_in_process(folder: Path, resume_: bool = False) -> None:
    """Run a job in this process (the child side of :func:`start`)."""
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    module, func = KINDS[cfg["kind"]].split(":")
    fn: Callable[[JobContext], dict[str, Any]] = getattr(import_module(module), func)
    ctx = JobContext(folder, cfg["config"], resuming=resume_, _started=time.time())
    _update(folder, state="running", pid=os.getpid(), message="running")
    try:
        res = fn(ctx)
    except Exception as err:  # the job failed: record why, for the page and the log
        traceback.print_exc()
        msg = str(err) if isinstance(err, LoupeError) else f"{type(err).__name__}: {err}"
        _update(folder, state="cancelled" if ctx.cancelled() else "failed", message=msg)
        return
    if ctx.cancelled():
        _update(folder, state="cancelled", message="Cancelled.")
        return
    write_json_atomic(folder / "result.json", res)
    _update(folder, state="done", progress=1.0, eta_seconds=0, message="Finished.")


if __name__ == "__main__":
    run_in_process(Path(sys.argv[1]), resume_="--resume" in sys.argv)
