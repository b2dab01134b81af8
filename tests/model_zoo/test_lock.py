"""Sharing the model: plain passes run at once, hook-based explainers run alone, work waits its turn in line."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch

from model_zoo.concurrency import ModelGate, WorkQueue


def _in_thread(fn: Any) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


# --- the readers-writer gate -------------------------------------------------------------------------------------
def test_readers_share_and_a_writer_excludes_them() -> None:
    gate = ModelGate()
    inside = threading.Barrier(3, timeout=5)

    def reader() -> None:
        with gate.use():
            inside.wait()  # all three readers are inside at the same time, or this times out

    threads = [_in_thread(reader) for _ in range(2)]
    with gate.use():
        inside.wait()
    for t in threads:
        t.join(5)
    assert gate.readers == 0

    order: list[str] = []
    with gate.use(exclusive=True, label="IG"):
        t = _in_thread(lambda: (gate.acquire(), order.append("reader"), gate.release()))
        time.sleep(0.2)
        assert order == [] and gate.exclusive_holder == "IG"
        order.append("writer done")
    t.join(5)
    assert order == ["writer done", "reader"]


def test_a_waiting_writer_goes_before_new_readers_and_reentry_is_allowed() -> None:
    gate = ModelGate()
    order: list[str] = []
    gate.acquire()  # a long SHAP run
    writer = _in_thread(lambda: (gate.acquire(True), order.append("writer"), gate.release(True)))
    time.sleep(0.2)
    late_reader = _in_thread(lambda: (gate.acquire(), order.append("late reader"), gate.release()))
    time.sleep(0.2)
    assert order == []  # the late reader waits behind the writer, which waits for the running reader
    assert gate.acquire(timeout=0)  # ...but the running reader's own nested passes still go through
    gate.release()
    gate.release()
    writer.join(5)
    late_reader.join(5)
    assert order == ["writer", "late reader"]
    with gate.use(exclusive=True), gate.use(), gate.use(exclusive=True):  # a hooked model's own passes
        pass
    with gate.use(), pytest.raises(RuntimeError, match="cannot ask for exclusive"):
        gate.acquire(exclusive=True)


def test_waiting_is_reported() -> None:
    gate = ModelGate()
    messages: list[str] = []
    gate.acquire(True, label="Integrated Gradients")
    t = _in_thread(lambda: gate.use(on_wait=messages.append, poll=0.05).__enter__())
    time.sleep(0.3)
    gate.release(True)
    t.join(5)
    assert messages and "Integrated Gradients" in messages[0]


# --- the line for explanation work ------------------------------------------------------------------------------
def test_work_queue_limits_and_reports_the_position() -> None:
    queue = WorkQueue(slots=1, per_owner=1)
    release = threading.Event()
    seen: dict[str, list[str]] = {"b": [], "c": []}
    started: list[str] = []

    def work(owner: str) -> None:
        with queue.admit(owner, on_wait=seen.get(owner, []).append, poll=0.05):
            started.append(owner)
            if owner == "a":
                release.wait(5)

    a = _in_thread(lambda: work("a"))
    time.sleep(0.2)
    b = _in_thread(lambda: work("b"))
    time.sleep(0.2)
    c = _in_thread(lambda: work("c"))
    time.sleep(0.3)
    assert started == ["a"] and queue.status() == (1, 2)
    assert seen["b"][-1].startswith("In line: 1st") and seen["c"][-1].startswith("In line: 2nd")
    release.set()
    for t in (a, b, c):
        t.join(5)
    assert started == ["a", "b", "c"]  # first come, first served


def test_work_queue_per_session_limit_does_not_block_others() -> None:
    queue = WorkQueue(slots=4, per_owner=1)
    release = threading.Event()
    started: list[str] = []

    def work(owner: str) -> None:
        with queue.admit(owner):
            started.append(owner)
            release.wait(5)

    threads = [_in_thread(lambda o=o: work(o)) for o in ("a", "a", "b")]  # type: ignore[misc]
    time.sleep(0.4)
    assert sorted(started) == ["a", "b"]  # a's second request waits for a's first; b does not wait for it
    release.set()
    for t in threads:
        t.join(5)
    assert sorted(started) == ["a", "a", "b"]
    with queue.admit("x"), queue.admit("x"):  # nested work of one request does not queue behind itself
        pass


# --- the model handle ---------------------------------------------------------------------------------------------
@contextmanager
def _pass_log(handle: Any, pause: float = 0.0) -> Iterator[list[tuple[int, float]]]:
    """(thread, time) of every forward pass of ``handle``'s model; ``pause`` seconds in each (the GIL is free)."""
    log: list[tuple[int, float]] = []

    def hook(module: Any, args: Any) -> None:
        log.append((threading.get_ident(), time.perf_counter()))
        if pause:
            time.sleep(pause)

    remove = handle.model.register_forward_pre_hook(hook)
    try:
        yield log
    finally:
        remove.remove()


def test_predict_waits_while_a_hook_based_explainer_holds_the_model(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    done: list[float] = []
    with tiny_handle.use(exclusive=True, label="test"):
        t = _in_thread(lambda: (tiny_handle.predict_proba(["a fine film"]), done.append(time.perf_counter())))
        time.sleep(0.3)
        released = time.perf_counter()
        assert not done
    t.join(10)
    assert done and done[0] >= released


def test_two_sessions_shap_runs_overlap_instead_of_queueing(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """Two threads (two sessions) explain with SHAP on the one shared model: their passes interleave.

    With the old global lock the second run started only when the first had finished (its passes all came
    after the other's); the figures are printed (``pytest -s``) for the record.
    """
    from explainers import REGISTRY

    shap = REGISTRY["shap"]
    texts = ["alpha bravo charlie delta echo foxtrot golf hotel", "zulu yankee whiskey victor uniform tango sierra"]
    config = shap.Config(max_evals=120, batch_size=8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = [shap.explain(tiny_handle, t, 1, config) for t in texts]
        spans: dict[int, tuple[float, float]] = {}
        results: dict[int, Any] = {}
        start = threading.Barrier(2, timeout=10)

        def run(i: int) -> None:
            start.wait()
            t0 = time.perf_counter()
            results[i] = shap.explain(tiny_handle, texts[i], 1, config)
            spans[i] = (t0, time.perf_counter())

        with _pass_log(tiny_handle, pause=0.004) as log:
            t_wall = time.perf_counter()
            workers = [_in_thread(lambda i=i: run(i)) for i in range(2)]  # type: ignore[misc]
            for w in workers:
                w.join(120)
            wall = time.perf_counter() - t_wall
    finally:
        torch.set_num_threads(threads)
    for i in range(2):  # the same answers as alone: passes did not mix
        assert np.allclose(results[i].scores, alone[i].scores, atol=1e-6)
    by_thread = [tid for tid, _ in log]
    switches = sum(1 for a, b in zip(by_thread, by_thread[1:]) if a != b)
    first_end = min(end for _, end in spans.values())
    last_start = max(begin for begin, _ in spans.values())
    durations = [round(end - begin, 2) for begin, end in spans.values()]
    print(f"\nSHAP x2 concurrently: runs {durations} s, wall {wall:.2f} s, overlap {first_end - last_start:.2f} s, "
          f"{len(log)} passes, {switches} switches between sessions")
    assert switches >= 4, switches  # interleaved, not one run after the other (that is 1 switch)
    # Each run's passes span a time in which the other run's passes also happened.
    times = {tid: [t for t2, t in log if t2 == tid] for tid in set(by_thread)}
    a, b = times.values()
    assert max(min(a), min(b)) < min(max(a), max(b))
