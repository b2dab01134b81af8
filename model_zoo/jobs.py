"""Background jobs: a separate process per job and a folder on disk that pages poll.

A job folder ``LOUPE_HOME/jobs/<id>/`` holds ``config.json`` (kind + parameters), ``status.json``
(state, progress, ETA, message, pid), ``metrics.jsonl`` (one JSON record per line, e.g. loss curves),
``log.txt`` (the process's output), ``result.json`` when done, and ``checkpoints/``.

A browser refresh finds the job again by its id; ``cancel`` stops it; a killed job is ``interrupted``
and ``resume`` continues it (job functions receive ``ctx.resuming`` and restart from their last
checkpoint).

Ownership: a job id is its kind plus 128 random bits (``finetune-<22 url-safe characters>``), and
``config.json`` records its ``owner`` (an opaque string chosen by the caller: the dashboard passes the
signed-in user or the browser; ``None`` is a job started from the command line). :func:`open_job` is the one
door for people: another owner's job, a malformed id and a missing job all read "No such job", and only the
owner learns that a job is of another kind. Jobs without an owner are open to everyone in local use and to
no one in hosted mode (:mod:`model_zoo.hosting`).

Uploads: a staged upload (:func:`model_zoo.paths.stage_upload`) named anywhere in a job's config belongs to
that job and is removed when the job ends (done, failed or cancelled); an interrupted job keeps it, so that
Resume can continue.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from model_zoo import hosting
from model_zoo.errors import LoupeError
from model_zoo.paths import discard_upload, is_staged_upload, jobs_dir, write_json_atomic
from model_zoo.registry import Registry

ACTIVE = ("queued", "running")
NO_SUCH_JOB = "No such job. The link may be wrong, or the job was deleted."
# kind, a dash, then the random part: url-safe base64 now, "<date>-<time>-<hex>" for jobs made before.
_ID_RE = re.compile(r"^[a-z]{1,20}-[A-Za-z0-9_-]{6,80}$")


class JobError(LoupeError):
    """A job cannot be found, started or resumed."""


class JobKindError(JobError):
    """The job exists and is the caller's, but it is of another kind than the page expects (``kind``)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class JobContext:
    """What a job function gets: its folder and config, and ways to report back."""

    dir: Path
    config: dict[str, Any]
    resuming: bool = False
    _started: float = 0.0
    main: bool = True  # False in the other processes of a multi-process run: they report nothing

    @property
    def checkpoints(self) -> Path:
        path = self.dir / "checkpoints"
        path.mkdir(exist_ok=True)
        return path

    def progress(self, done: float, total: float, message: str = "") -> None:
        """Report progress; the ETA is extrapolated from the time since the (re)start."""
        if not self.main:
            return
        frac = 0.0 if total <= 0 else min(1.0, done / total)
        elapsed = time.time() - self._started
        eta = elapsed * (1 - frac) / frac if frac > 0.01 else None
        _update(self.dir, state="running", progress=frac, done=done, total=total, eta_seconds=eta,
                message=message)

    def metric(self, record: dict[str, Any]) -> None:
        """Append one record (e.g. ``{"step": 10, "loss": 0.4}``) to ``metrics.jsonl``."""
        if not self.main:
            return
        with open(self.dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"time": time.time(), **record}, default=str) + "\n")

    def log(self, message: str) -> None:
        if self.main:
            print(message, flush=True)

    def cancelled(self) -> bool:
        return (self.dir / "CANCEL").exists()


@dataclass(frozen=True)
class JobKind:
    """A kind of job: its name, a title for people ("a fine-tuning job") and the function that runs it."""

    name: str
    title: str
    run: Callable[[JobContext], dict[str, Any]]

    @property
    def runner(self) -> str:
        """``module:function``, recorded in the job's folder so its process finds the function to run."""
        return f"{self.run.__module__}:{self.run.__qualname__}"


KINDS: Registry[JobKind] = Registry("job kind", JobError)


def register_kind(name: str, title: str) -> Callable[[Callable[[JobContext], dict[str, Any]]], Any]:
    """Decorator: make ``run(ctx) -> result`` the job kind ``name`` (registered by the module that owns it)."""

    def wrap(run: Callable[[JobContext], dict[str, Any]]) -> Callable[[JobContext], dict[str, Any]]:
        KINDS.register(name, JobKind(name, title, run))
        return run

    return wrap


def _title(kind: str) -> str:
    return KINDS[kind].title if kind in KINDS else "another kind of job"


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


def valid_id(job_id: object) -> bool:
    """Whether ``job_id`` has the shape of a job id (it may still not exist)."""
    return isinstance(job_id, str) and bool(_ID_RE.match(job_id))


def job_dir(job_id: str) -> Path:
    """The folder of an existing job; :class:`JobError` (:data:`NO_SUCH_JOB`) for anything else."""
    if not valid_id(job_id):
        raise JobError(NO_SUCH_JOB)
    folder = jobs_dir() / job_id
    try:
        if (folder / "config.json").is_file():
            return folder
    except OSError:
        pass
    raise JobError(NO_SUCH_JOB)


def _may_open(job_owner: Any, owner: str) -> bool:
    if job_owner in (None, "", "cli"):  # started from the command line: the operator's
        return not hosting.hosted()
    return isinstance(job_owner, str) and hmac.compare_digest(job_owner.encode(), owner.encode())


def open_job(job_id: object, owner: str, kind: str | None = None) -> str:
    """The id of a job that ``owner`` may open (on a page for ``kind`` jobs); the door for people.

    Raises:
        JobError: :data:`NO_SUCH_JOB` for a malformed id, a missing job and another owner's job alike.
        JobKindError: the owner's job is of another kind ("That job is a fine-tuning job, not ...").
    """
    if not owner:
        raise JobError(NO_SUCH_JOB)
    folder = job_dir(job_id)  # type: ignore[arg-type]  # job_dir checks the type
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise JobError(NO_SUCH_JOB) from err
    if not isinstance(cfg, dict) or not _may_open(cfg.get("owner"), owner):
        raise JobError(NO_SUCH_JOB)
    if kind is not None and cfg.get("kind") != kind:
        found = cfg.get("title") if isinstance(cfg.get("title"), str) else _title(str(cfg.get("kind")))
        raise JobKindError(f"That job is {found}, not {_title(kind)}.", str(cfg.get("kind")))
    return str(job_id)


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
    if st.get("state") in ACTIVE and (folder / "CANCEL").exists():
        if _alive(st.get("pid")):  # stopping: the process still owns status.json
            return {**st, "state": "cancelled", "message": "Cancelled.", "id": job_id}
        st = _update(folder, state="cancelled", message="Cancelled.")
    elif st.get("state") in ACTIVE and not _alive(st.get("pid")) and time.time() - st.get("created", 0) > 5:
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


def new_id(kind: str) -> str:
    """A fresh job id: the kind, then 128 random bits (22 url-safe characters)."""
    return f"{kind}-{secrets.token_urlsafe(16)}"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def create(kind: str, config: dict[str, Any], owner: str | None = None, pid: int | None = None) -> Path:
    """Make a queued job's folder (not started: :func:`start` spawns it, :func:`run_in_process` runs it here).

    Args:
        kind: a registered kind (:func:`register_kind`).
        config: the job's settings (JSON); staged uploads named in it become the job's (see the module).
        owner: who may open the job (see :func:`open_job`); None for the command line.
        pid: the process that will run it, when known.
    """
    job_kind = KINDS.lookup(kind)
    folder = jobs_dir() / new_id(kind)
    folder.mkdir(parents=True)
    uploads = sorted({s for s in _strings(config) if is_staged_upload(s)})
    write_json_atomic(folder / "config.json", {"kind": kind, "title": job_kind.title, "runner": job_kind.runner,
                                               "config": config, "owner": owner, "uploads": uploads})
    write_json_atomic(folder / "status.json", {"state": "queued", "kind": kind, "created": time.time(),
                                               "progress": 0.0, "message": "starting", "pid": pid})
    return folder


def start(kind: str, config: dict[str, Any], owner: str | None = None) -> str:
    """Start a job in its own process and return its id (arguments as for :func:`create`)."""
    folder = create(kind, config, owner)
    _update(folder, pid=_spawn(folder, resume=False))
    return folder.name


def _uploads(folder: Path) -> list[str]:
    try:
        found = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("uploads") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [str(u) for u in found if isinstance(u, str)]


def _release_uploads(folder: Path) -> None:
    """Remove the job's uploaded files (the job has ended: done, failed or cancelled)."""
    for upload in _uploads(folder):
        discard_upload(upload)


def resumable(job_id: str) -> bool:
    """Whether the job can be resumed: it is not running, and the files it reads are still there."""
    folder = job_dir(job_id)
    return status(job_id).get("state") not in ACTIVE and all(Path(u).is_file() for u in _uploads(folder))


def resume(job_id: str) -> None:
    """Restart an interrupted or failed job from its last checkpoint."""
    folder = job_dir(job_id)
    st = status(job_id)
    if st.get("state") in ACTIVE:
        raise JobError("The job is still running.")
    if not all(Path(u).is_file() for u in _uploads(folder)):
        raise JobError("The file uploaded for this job was removed when the job ended; start a new run with it.")
    (folder / "CANCEL").unlink(missing_ok=True)
    _update(folder, state="queued", message="resuming", created=time.time(), pid=_spawn(folder, resume=True))


def cancel(job_id: str) -> None:
    """Ask the job to stop (it checks between steps) and terminate its process group.

    Only the job's own process writes its ``status.json`` while it runs; the ``CANCEL`` marker is how the
    cancel is recorded, and :func:`status` reports the job cancelled from it (and writes that once the
    process is gone).
    """
    folder = job_dir(job_id)
    (folder / "CANCEL").touch()
    pid = read_status(folder).get("pid")
    if _alive(pid):
        try:
            os.killpg(os.getpgid(int(pid)), signal.SIGTERM)  # type: ignore[arg-type]
        except OSError:
            pass
    else:
        _update(folder, state="cancelled", message="Cancelled.")
    _release_uploads(folder)


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
    """The finished job's result (None while there is none, or when it cannot be read)."""
    try:
        found = json.loads((job_dir(job_id) / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def config(job_id: str) -> dict[str, Any]:
    return dict(json.loads((job_dir(job_id) / "config.json").read_text(encoding="utf-8")))


def list_jobs(kind: str | None = None, owner: str | None = None) -> list[dict[str, Any]]:
    """Status of jobs (newest first), optionally of one kind.

    Args:
        kind: only jobs of this kind.
        owner: only the jobs this owner may open (:func:`open_job`); None lists every job (command line).
    """
    out = []
    for folder in jobs_dir().iterdir():
        if not valid_id(folder.name):
            continue
        try:
            cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(cfg, dict) or (kind is not None and cfg.get("kind") != kind):
            continue
        if owner is not None and not _may_open(cfg.get("owner"), owner):
            continue
        out.append(status(folder.name))
    return sorted(out, key=lambda st: float(st.get("created") or 0), reverse=True)


def wait(job_id: str, timeout: float = 600, poll: float = 0.5) -> dict[str, Any]:
    """Block until the job leaves the queued/running states (for CLIs and tests)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = status(job_id)
        if st.get("state") not in ACTIVE:
            return st
        time.sleep(poll)
    raise JobError(f"Job {job_id} did not finish within {timeout:.0f} s.")


def run_in_process(folder: Path, resume_: bool = False, main: bool = True) -> None:
    """Run a job in this process (the child side of :func:`start`).

    ``main=False``: one of the other processes of a multi-process run (``torchrun``/``accelerate launch``): it
    does its share of the work but leaves the job's status, metrics and result to the main process.
    """
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if "runner" not in cfg:
        raise JobError("This job was made by an older version of Loupe; start it again.")
    module, func = str(cfg["runner"]).split(":")
    fn: Callable[[JobContext], dict[str, Any]] = getattr(import_module(module), func)
    ctx = JobContext(folder, cfg["config"], resuming=resume_, _started=time.time(), main=main)
    if not main:
        fn(ctx)
        return
    _update(folder, state="running", pid=os.getpid(), message="running")
    try:
        res = fn(ctx)
    except Exception as err:  # the job failed: record why, for the page and the log
        traceback.print_exc()
        msg = str(err) if isinstance(err, LoupeError) else f"{type(err).__name__}: {err}"
        _update(folder, state="cancelled" if ctx.cancelled() else "failed", message=msg)
        _release_uploads(folder)
        return
    if ctx.cancelled():
        _update(folder, state="cancelled", message="Cancelled.")
        _release_uploads(folder)
        return
    write_json_atomic(folder / "result.json", res)
    _update(folder, state="done", progress=1.0, eta_seconds=0, message="Finished.")
    _release_uploads(folder)


if __name__ == "__main__":
    run_in_process(Path(sys.argv[1]), resume_="--resume" in sys.argv)
