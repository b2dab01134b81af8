"""The service the pages call says why a request waits: its place in line, or the model held by a hook-based
explainer in another session."""

from __future__ import annotations

import threading
import time

import pytest

from dashboard import services


def _request(handle, text: str, method: str) -> services.ExplainRequest:  # type: ignore[no-untyped-def]
    return services.ExplainRequest(services.model_key(handle), text, [method])


def test_waiting_for_the_model_is_said(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    messages: list[str] = []
    held, release = threading.Event(), threading.Event()

    def other_session() -> None:
        with tiny_handle.use(exclusive=True, label="Integrated Gradients"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=other_session, daemon=True)
    t.start()
    held.wait(5)
    threading.Timer(0.6, release.set).start()
    a = services.run_one(tiny_handle, _request(tiny_handle, "a quiet, patient film", "ablation"), "ablation",
                         on_wait=messages.append)
    t.join(5)
    assert a.method == "ablation"
    assert messages and "Waiting for the model: Integrated Gradients" in messages[0]
    messages.clear()  # the same request again is in the cache: no waiting at all, even with the model held
    release.clear()
    t = threading.Thread(target=other_session, daemon=True)
    t.start()
    held.wait(5)
    services.run_one(tiny_handle, _request(tiny_handle, "a quiet, patient film", "ablation"), "ablation",
                     on_wait=messages.append)
    release.set()
    t.join(5)
    assert not messages


def test_place_in_line_is_said(tiny_handle, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOUPE_MAX_RUNNING", "1")
    messages: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def other_session() -> None:
        with services.WORK.admit("someone else"):
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other_session, daemon=True)
    t.start()
    inside.wait(5)
    threading.Timer(0.6, release.set).start()
    started = time.perf_counter()
    services.run_one(tiny_handle, _request(tiny_handle, "slow and dull", "saliency"), "saliency",
                     on_wait=messages.append)
    t.join(5)
    assert time.perf_counter() - started >= 0.5
    assert messages and messages[0].startswith("In line: 1st. 1 explanation running")
