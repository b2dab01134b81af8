"""Where a request says it is waiting (its place in line, or for the model held by another session)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard.services import Notify  # a request's on_wait: called with a message while it waits


def say_in(box: DeltaGenerator) -> Notify:
    """An ``on_wait`` that shows its message in ``box`` (an ``st.empty()``)."""

    def say(message: str) -> None:
        box.info(message, icon="⏳")

    return say


@contextlib.contextmanager
def wait_box() -> Iterator[Notify]:
    """An ``on_wait`` for the block, shown in a placeholder that is cleared once the block is done."""
    box = st.empty()
    try:
        yield say_in(box)
    finally:
        box.empty()
