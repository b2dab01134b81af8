"""A background job's panel: state, progress with ETA, log tail, Cancel/Resume; refreshes itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from model_zoo import jobs

_ICONS = {"queued": "⏳", "running": "⏳", "done": "✅", "failed": "❌", "cancelled": "⏹️", "interrupted": "⚠️"}


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    seconds = int(seconds)
    return f" · about {seconds // 60} min {seconds % 60:02d} s left" if seconds >= 60 else f" · about {seconds} s left"


def job_panel(job_id: str, live: Callable[[str, dict[str, Any]], None] | None = None, key: str = "job") -> dict:
    """Draw the job's status (every 2 s while it runs) and return its last status.

    ``live(job_id, status)`` draws extra live content (e.g. loss curves) inside the refreshing block.
    """

    @st.fragment(run_every=2.0)
    def _panel() -> None:
        try:
            status = jobs.status(job_id)
        except jobs.JobError as err:
            st.error(str(err))
            return
        state = status.get("state", "?")
        st.markdown(f"{_ICONS.get(state, '')} **Job `{job_id}`** — {state}")
        eta = _eta(status.get("eta_seconds")) if state == "running" else ""
        st.progress(float(status.get("progress") or 0.0), text=f"{status.get('message') or ''}{eta}")
        if live is not None:
            live(job_id, status)
        cols = st.columns([1, 1, 4])
        if state in jobs.ACTIVE and cols[0].button("Cancel", key=f"{key}_cancel_{job_id}"):
            jobs.cancel(job_id)
            st.rerun()
        if state in ("interrupted", "failed", "cancelled") and cols[1].button("Resume", key=f"{key}_resume_{job_id}",
                                                                            help="Continue from the last checkpoint"):
            jobs.resume(job_id)
            st.rerun()
        with st.expander("Log"):
            st.code(jobs.log_tail(job_id, 40) or "(empty)", language=None)
        st.session_state[f"{key}_status"] = status
        if state not in jobs.ACTIVE and st.session_state.get(f"{key}_seen_active_{job_id}"):
            st.session_state[f"{key}_seen_active_{job_id}"] = False
            st.rerun(scope="app")  # redraw the page with the results
        if state in jobs.ACTIVE:
            st.session_state[f"{key}_seen_active_{job_id}"] = True

    _panel()
    return st.session_state.get(f"{key}_status", {})
