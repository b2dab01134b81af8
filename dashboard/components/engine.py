"""Where a dataset-wide job runs: this server's background process, or Ray (its workers and their resources)."""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from dashboard.components.widgets import config_values
from model_zoo import engine, hosting

_TITLES = {"local": "This server (background process)", "ray": "Ray"}


def ray_where() -> str:
    """Which Ray a job would use, in words (hosted: the operator's cluster's address is not shown)."""
    address = os.environ.get(engine.ADDRESS_ENV, "").strip()
    if not address:
        return "a local Ray started for the job on this server"
    return "the operator's Ray cluster" if hosting.hosted() else f"the Ray cluster at {address}"


def engine_picker(key: str) -> dict[str, Any]:
    """Draw the engine choice (and Ray's worker settings when Ray is chosen); the choice as an engine config dict.

    Widget keys start with ``key``. Where Ray is not available (not installed; hosted without a cluster) only the
    local engine is offered, and the page says why.
    """
    why_not = engine.ray_unavailable()
    choice = st.radio("Where it runs", ["local"] if why_not else list(_TITLES), format_func=_TITLES.__getitem__,
                      horizontal=True, key=f"{key}.engine",
                      help="The results are the same either way; Ray spreads the sentences over workers, each "
                           "loading the model once.")
    if why_not:
        st.caption(why_not)
    if choice != "ray":
        return {"engine": "local"}
    st.caption(f"Runs on {ray_where()}.")
    cols = st.columns(4)
    values: dict[str, Any] = {"engine": "ray"}
    for col, name in zip(cols, ("workers", "cpus_per_worker", "gpus_per_worker", "batch_size")):
        with col:
            values.update(config_values(engine.EngineConfig, key, only=[name], scope="engine"))
    return values
