"""Background jobs on a page: opening one from its link (only its owner can), and its panel: state, progress
with ETA, log tail, Cancel/Resume, refreshed every 2 s while the job runs and never after it fails."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import streamlit as st

from dashboard.components.sidebar import md, owner
from model_zoo import LoupeError, hosting, jobs

log = logging.getLogger(__name__)
_ICONS = {"queued": "⏳", "running": "⏳", "done": "✅", "failed": "❌", "cancelled": "⏹️", "interrupted": "⚠️"}
PAGES = {"finetune": "Fine-tune", "compress": "Compress", "evaluate": "Evaluate explainers"}


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    seconds = int(seconds)
    return f" · about {seconds // 60} min {seconds % 60:02d} s left" if seconds >= 60 else f" · about {seconds} s left"


def job_from_link(kind: str) -> str | None:
    """The job in the page's ``?job=`` when this person may open it here; otherwise says why and returns None.

    Another person's job, a malformed id and a missing job all get the same "No such job"; only the owner
    learns that the job is of another kind, and on which page it lives.
    """
    try:
        return jobs.open_job(st.query_params.get("job"), owner(), kind)
    except jobs.JobKindError as err:
        page = PAGES.get(err.kind)
        st.error(f"{err}" + (f" Open it on the {page} page." if page else ""), icon="⚠️")
    except jobs.JobError as err:
        st.error(str(err), icon="⚠️")
    return None


def recent_jobs(kind: str, n: int = 5) -> list[dict[str, Any]]:
    """This person's latest ``n`` jobs of ``kind`` (nobody else's)."""
    return jobs.list_jobs(kind, owner=owner())[:n]


def _failure(err: Exception) -> str:
    if isinstance(err, LoupeError):
        return hosting.redact(err)
    return (f"This job's files could not be read ({type(err).__name__}); the page stopped following it. "
            "The server log has the details.")


def _draw(job_id: str, live: Callable[[str, dict[str, Any]], None] | None, key: str) -> None:
    status = jobs.status(job_id)
    state = str(status.get("state", "?"))
    st.markdown(f"{_ICONS.get(state, '')} **Job `{job_id}`** — {md(state)}")
    eta = _eta(status.get("eta_seconds")) if state == "running" else ""
    progress = status.get("progress")
    progress = min(1.0, max(0.0, float(progress))) if isinstance(progress, (int, float)) else 0.0
    st.progress(progress, text=f"{md(hosting.redact(status.get('message') or ''))}{eta}")
    if live is not None:
        live(job_id, status)
    cols = st.columns([1, 1, 4])
    if state in (*jobs.ACTIVE, "interrupted") and cols[0].button("Cancel", key=f"{key}_cancel_{job_id}",
                                                                 help="Stop the job (an upload it reads is removed)"):
        jobs.cancel(job_id)
        st.rerun(scope="app")
    if state in ("interrupted", "failed", "cancelled") and jobs.resumable(job_id) and \
            cols[1].button("Resume", key=f"{key}_resume_{job_id}", help="Continue from the last checkpoint"):
        jobs.resume(job_id)
        st.rerun(scope="app")
    with st.expander("Log"):
        st.code(hosting.redact(jobs.log_tail(job_id, 40)) or "(empty)", language=None)
    st.session_state[f"{key}_status"] = status
    seen = f"{key}_seen_active_{job_id}"
    if state not in jobs.ACTIVE and st.session_state.get(seen):
        st.session_state[seen] = False
        st.rerun(scope="app")  # redraw the page with the results, and stop polling
    if state in jobs.ACTIVE:
        st.session_state[seen] = True


def job_panel(job_id: str, live: Callable[[str, dict[str, Any]], None] | None = None, key: str = "job") -> dict:
    """Draw the job's status (every 2 s while it runs) and return its last status.

    Call it only with a job this person may open (:func:`job_from_link`). ``live(job_id, status)`` draws extra
    live content (e.g. loss curves) inside the refreshing block. When the panel fails (a job folder that cannot
    be read), it shows why once and stops polling, rather than raising every 2 s.
    """
    failed = f"{key}_failed_{job_id}"
    st.session_state.pop(f"{key}_status", None)
    if failed not in st.session_state:
        try:
            polling = jobs.status(job_id).get("state") in jobs.ACTIVE
        except Exception as err:  # any failure is shown once, never re-raised
            log.exception("job %s: cannot read its status", job_id)
            st.session_state[failed] = _failure(err)
    if failed in st.session_state:
        st.error(st.session_state[failed], icon="⚠️")
        return {}

    @st.fragment(run_every=2.0 if polling else None)
    def _panel() -> None:
        try:
            _draw(job_id, live, key)
        except Exception as err:  # shown once; st.rerun/st.stop are BaseExceptions and pass
            log.exception("job %s: its panel failed", job_id)
            st.session_state[failed] = _failure(err)
            st.session_state.pop(f"{key}_status", None)
            st.rerun(scope="app")

    _panel()
    return dict(st.session_state.get(f"{key}_status") or {})
