"""Background jobs seen from the app: opening one (only its owner can), following it, Cancel and Resume.

The job kinds are registered by the modules that own them; they are imported here so that every kind the
app starts or opens is known before a page asks for it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import explainers.compression_report  # noqa: F401  (registers the "compress" job kind)
import explainers.continual_drift  # noqa: F401  (registers the "forgetting" job kind)
import explainers.evaluation  # noqa: F401  (registers the "evaluate" job kind)
import explainers.global_importance  # noqa: F401  (registers the "global" job kind)
import model_zoo.finetune  # noqa: F401  (registers the "finetune" job kind)
from dashboard.services.session import owner
from model_zoo import LoupeError, engine, hosting, jobs
from model_zoo.jobs import JobError as JobError  # re-exported for pages that say why a job cannot be opened
from model_zoo.jobs import JobKindError as JobKindError

ACTIVE = jobs.ACTIVE  # states of a job that is still going: the panel polls while the job is in one


def open_job(job_id: object, kind: str) -> str:
    """The id of job ``job_id`` of ``kind`` when this person may open it.

    Raises:
        JobKindError: it is this person's job, but of another kind (``err.kind`` says which).
        JobError: no such job for this person: another person's, a malformed id and a missing job all get
            the same "No such job".
    """
    return jobs.open_job(job_id, owner(), kind)


def recent_jobs(kind: str, n: int = 5) -> list[dict[str, Any]]:
    """This person's latest ``n`` jobs of ``kind`` (nobody else's)."""
    return jobs.list_jobs(kind, owner=owner())[:n]


def job_status(job_id: str) -> dict[str, Any]:
    """The job's status: ``state``, ``progress`` (0-1), ``message``, ``eta_seconds``..."""
    return jobs.status(job_id)


def job_log(job_id: str, lines: int = 40) -> str:
    """The last ``lines`` of the job's log, safe to show (server paths removed when hosted)."""
    return hosting.redact(jobs.log_tail(job_id, lines))


def job_metrics(job_id: str) -> list[dict[str, Any]]:
    """The job's metric records so far (training loss, validation scores...), oldest first."""
    return jobs.metrics(job_id)


def job_result(job_id: str) -> dict[str, Any] | None:
    """What a finished job produced (None until it is done)."""
    return jobs.result(job_id)


def job_config(job_id: str) -> dict[str, Any]:
    """The config the job was started with (its ``config`` entry holds the kind's settings)."""
    return jobs.config(job_id)


def cancel(job_id: str) -> None:
    """Stop the job (an upload it reads is removed)."""
    jobs.cancel(job_id)


def resumable(job_id: str) -> bool:
    """Whether the job can continue from a checkpoint."""
    return jobs.resumable(job_id)


def resume(job_id: str) -> None:
    """Continue the job from its last checkpoint."""
    jobs.resume(job_id)


def failure_message(err: Exception) -> str:
    """Why a job's panel stopped following it, for a person (no server path, no internals)."""
    if isinstance(err, LoupeError):
        return hosting.redact(err)
    return (f"This job's files could not be read ({type(err).__name__}); the page stopped following it. "
            "The server log has the details.")


def start_evaluation(model: str, split: str, n: int, methods: list[str],
                     run_on: dict[str, Any] | None = None) -> str:
    """Start an evaluation of ``methods`` over ``n`` sentences of a Rotten Tomatoes split; the new job's id.

    ``run_on``: the engine (:class:`model_zoo.engine.EngineConfig` as a dict), checked here so a bad choice is
    a message on the page rather than a failed job.
    """
    run_on = dataclasses.asdict(engine.config(run_on))
    return jobs.start("evaluate", {"model": model, "split": split, "n": n, "methods": methods, "engine": run_on},
                      owner=owner())
