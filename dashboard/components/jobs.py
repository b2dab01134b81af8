"""Background jobs on a page: opening one from its link (only its owner can), and its panel: state, progress
with ETA, log tail, Cancel/Resume, refreshed every 2 s while the job runs and never after it fails."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import streamlit as st

from dashboard import services, state
from dashboard.components.sidebar import md

log = logging.getLogger(__name__)
_ICONS = {"queued": "⏳", "running": "⏳", "done": "✅", "failed": "❌", "cancelled": "⏹️", "interrupted": "⚠️"}
PAGES = {"finetune": "Fine-tune", "compress": "Compress", "evaluate": "Evaluate explainers", "global": "Error analysis",
         "continual": "Continual fine-tuning", "forgetting": "Continual fine-tuning"}
Live = Callable[[str, dict[str, Any]], None]  # draws a job's live content (e.g. loss curves): (job id, status)


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
        return services.open_job(st.query_params.get("job"), kind)
    except services.JobKindError as err:
        page = PAGES.get(err.kind)
        st.error(f"{err}" + (f" Open it on the {page} page." if page else ""), icon="⚠️")
    except services.JobError as err:
        st.error(str(err), icon="⚠️")
    return None


def _draw(job_id: str, live: Live | None, key: str) -> None:
    status = services.job_status(job_id)
    now = str(status.get("state", "?"))
    st.markdown(f"{_ICONS.get(now, '')} **Job `{job_id}`** — {md(now)}")
    eta = _eta(status.get("eta_seconds")) if now == "running" else ""
    progress = status.get("progress")
    progress = min(1.0, max(0.0, float(progress))) if isinstance(progress, (int, float)) else 0.0
    st.progress(progress, text=f"{md(services.shown_error(status.get('message') or ''))}{eta}")
    if live is not None:
        live(job_id, status)
    cols = st.columns([1, 1, 4])
    if now in (*services.ACTIVE, "interrupted") and cols[0].button(
            "Cancel", key=state.job_cancel(key, job_id), help="Stop the job (an upload it reads is removed)"):
        services.cancel(job_id)
        st.rerun(scope="app")
    if now in ("interrupted", "failed", "cancelled") and services.resumable(job_id) and \
            cols[1].button("Resume", key=state.job_resume(key, job_id), help="Continue from the last checkpoint"):
        services.resume(job_id)
        st.rerun(scope="app")
    with st.expander("Log"):
        st.code(services.job_log(job_id, 40) or "(empty)", language=None)
    st.session_state[state.job_status(key)] = status
    seen = state.job_seen_active(key, job_id)
    if now not in services.ACTIVE and st.session_state.get(seen):
        st.session_state[seen] = False
        st.rerun(scope="app")  # redraw the page with the results, and stop polling
    if now in services.ACTIVE:
        st.session_state[seen] = True


def job_panel(job_id: str, key: str, live: Live | None = None) -> dict[str, Any]:
    """Draw the job's status (every 2 s while it runs) and return its last status.

    Call it only with a job this person may open (:func:`job_from_link`). ``key`` is the page's panel prefix
    (``state.FT_PANEL``...). ``live(job_id, status)`` draws extra live content (e.g. loss curves) inside the
    refreshing block. When the panel fails (a job folder that cannot be read), it shows why once and stops
    polling, rather than raising every 2 s.
    """
    failed = state.job_failed(key, job_id)
    st.session_state.pop(state.job_status(key), None)
    polling = False
    if failed not in st.session_state:
        try:
            polling = services.job_status(job_id).get("state") in services.ACTIVE
        except Exception as err:  # any failure is shown once, never re-raised
            log.exception("job %s: cannot read its status", job_id)
            st.session_state[failed] = services.failure_message(err)
    if failed in st.session_state:
        st.error(st.session_state[failed], icon="⚠️")
        return {}

    @st.fragment(run_every=2.0 if polling else None)
    def _panel() -> None:
        try:
            _draw(job_id, live, key)
        except Exception as err:  # shown once; st.rerun/st.stop are BaseExceptions and pass
            log.exception("job %s: its panel failed", job_id)
            st.session_state[failed] = services.failure_message(err)
            st.session_state.pop(state.job_status(key), None)
            st.rerun(scope="app")

    _panel()
    return dict(st.session_state.get(state.job_status(key)) or {})
