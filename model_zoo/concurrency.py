"""Sharing one model between sessions: a readers-writer gate per model, and a line for explanation work.

Plain forward passes (SHAP, LIME, attention, ablation, saliency) leave the model as it is, so any number may
run at once. Captum's layer methods attach hooks to a module for the length of an explanation; while they do,
nobody else may run the model. :class:`ModelGate` gives the first kind *shared* use and the second
*exclusive* use; each explainer declares which it needs (``BaseExplainer.needs_exclusive_model``).

:class:`WorkQueue` bounds how many explanations run at once (in the server and per session) and keeps the
rest in line, first come first served, so a page can say where a request is waiting.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Notify = Callable[[str], None]


class ModelGate:
    """A readers-writer lock: many shared holders, or one exclusive holder. Re-entrant per thread.

    A thread holding exclusive use may also take shared use (the hooked model's own forward passes); a
    thread holding shared use may not ask for exclusive use (two such threads would wait on each other
    forever), which raises ``RuntimeError``. Writers are preferred: once one waits, new readers wait
    behind it, so a stream of SHAP runs cannot starve Integrated Gradients.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers: dict[int, int] = {}  # thread id -> depth
        self._writer: int | None = None
        self._writer_depth = 0
        self._writer_label = ""
        self._writers_waiting = 0

    # --- state (for messages and tests) ----------------------------------------------------------------
    @property
    def readers(self) -> int:
        with self._cond:
            return sum(1 for t in self._readers if t != self._writer)

    @property
    def exclusive_holder(self) -> str | None:
        """The label of the current exclusive holder (e.g. "Integrated Gradients"), None when free."""
        with self._cond:
            return (self._writer_label or "another request") if self._writer is not None else None

    def holds(self) -> bool:
        """Whether the calling thread holds the gate in either mode."""
        me = threading.get_ident()
        with self._cond:
            return self._writer == me or me in self._readers

    # --- acquiring ---------------------------------------------------------------------------------------
    def _can_share(self, me: int) -> bool:
        return self._writer == me or me in self._readers or (self._writer is None and not self._writers_waiting)

    def _can_own(self, me: int) -> bool:
        return self._writer == me or (self._writer is None and not any(t != me for t in self._readers))

    def acquire(self, exclusive: bool = False, timeout: float | None = None, label: str = "") -> bool:
        """Take the gate; False when ``timeout`` (seconds) passed first."""
        me = threading.get_ident()
        with self._cond:
            if not exclusive:
                if not self._cond.wait_for(lambda: self._can_share(me), timeout):
                    return False
                self._readers[me] = self._readers.get(me, 0) + 1
                return True
            if self._writer != me and me in self._readers:
                raise RuntimeError("A thread using the model in shared mode cannot ask for exclusive use.")
            self._writers_waiting += 1
            try:
                if not self._cond.wait_for(lambda: self._can_own(me), timeout):
                    return False
            finally:
                self._writers_waiting -= 1
            if self._writer != me:
                self._writer, self._writer_label = me, label
            self._writer_depth += 1
            return True

    def release(self, exclusive: bool = False) -> None:
        me = threading.get_ident()
        with self._cond:
            if exclusive:
                if self._writer != me:
                    raise RuntimeError("release of exclusive use by a thread that does not hold it")
                self._writer_depth -= 1
                if not self._writer_depth:
                    self._writer, self._writer_label = None, ""
            else:
                depth = self._readers.get(me, 0)
                if not depth:
                    raise RuntimeError("release of shared use by a thread that does not hold it")
                if depth == 1:
                    del self._readers[me]
                else:
                    self._readers[me] = depth - 1
            self._cond.notify_all()

    def waiting_message(self, exclusive: bool, label: str = "") -> str:
        """Why a request for this mode would wait now, in words ('' when it would not)."""
        me = threading.get_ident()
        with self._cond:
            if (self._can_own if exclusive else self._can_share)(me):
                return ""
            if self._writer is not None:
                who = self._writer_label or "another request"
                return f"Waiting for the model: {who} has hooks on it (another session) and needs it alone."
            busy = sum(1 for t in self._readers if t != me)
            if exclusive:
                return (f"Waiting for the model: {label or 'this explainer'} attaches hooks to it and must wait "
                        f"for {busy} running request{'s' if busy != 1 else ''} to finish.")
            return "Waiting for the model: a request that needs it alone goes first."

    @contextlib.contextmanager
    def use(self, exclusive: bool = False, label: str = "", on_wait: Notify | None = None,
            poll: float = 0.5) -> Iterator[None]:
        """Hold the gate for the block; while waiting, call ``on_wait(message)`` every ``poll`` seconds."""
        if on_wait is None:
            self.acquire(exclusive, label=label)
        elif not self.acquire(exclusive, timeout=0, label=label):
            while True:
                message = self.waiting_message(exclusive, label)
                if message:
                    on_wait(message)
                if self.acquire(exclusive, timeout=poll, label=label):
                    break
        try:
            yield
        finally:
            self.release(exclusive)


_GATES: weakref.WeakKeyDictionary[Any, ModelGate] = weakref.WeakKeyDictionary()
_GATES_LOCK = threading.Lock()


def gate_for(model: Any) -> ModelGate:
    """The gate of ``model`` (one per model object: handles that share a model share its gate)."""
    with _GATES_LOCK:
        gate = _GATES.get(model)
        if gate is None:
            gate = _GATES[model] = ModelGate()
        return gate


# --- the line for explanation work -----------------------------------------------------------------------
@dataclass
class _Ticket:
    number: int
    owner: str
    thread: int
    running: bool = False


class WorkQueue:
    """At most ``slots`` pieces of work at once, at most ``per_owner`` per owner (a session); the rest wait
    first come first served. Re-entrant: a thread that holds a place runs nested work at once.

    Args:
        slots: a callable returning the server-wide limit (read on each admission, so it follows the
            environment), or an int.
        per_owner: the same, per owner.
    """

    def __init__(self, slots: Callable[[], int] | int, per_owner: Callable[[], int] | int = 1) -> None:
        self._slots = slots if callable(slots) else (lambda: slots)
        self._per_owner = per_owner if callable(per_owner) else (lambda: per_owner)
        self._cond = threading.Condition(threading.Lock())
        self._tickets: list[_Ticket] = []
        self._numbers = itertools.count()

    def _startable(self, ticket: _Ticket) -> bool:
        running = [t for t in self._tickets if t.running]
        if len(running) >= self._slots():
            return False
        if sum(1 for t in running if t.owner == ticket.owner) >= self._per_owner():
            return False
        # First come, first served among those that could start (one owner's surplus does not block others).
        for t in self._tickets:
            if t is ticket:
                return True
            if not t.running and sum(1 for r in running if r.owner == t.owner) < self._per_owner():
                return False
        return False

    def position(self, ticket: _Ticket) -> int:
        """1 for the next in line; 0 when running."""
        with self._cond:
            if ticket.running:
                return 0
            return 1 + sum(1 for t in self._tickets if not t.running and t.number < ticket.number)

    def status(self) -> tuple[int, int]:
        """(running, waiting) now."""
        with self._cond:
            running = sum(1 for t in self._tickets if t.running)
            return running, len(self._tickets) - running

    @contextlib.contextmanager
    def admit(self, owner: str, on_wait: Notify | None = None, poll: float = 0.5) -> Iterator[None]:
        """Run the block once it is this request's turn; while waiting, ``on_wait(message)`` every ``poll`` s."""
        me = threading.get_ident()
        with self._cond:
            if any(t.thread == me and t.running for t in self._tickets):
                nested = True
            else:
                nested = False
                ticket = _Ticket(next(self._numbers), owner, me)
                self._tickets.append(ticket)
        if nested:
            yield
            return
        try:
            with self._cond:
                while not self._startable(ticket):
                    if on_wait is not None:
                        ahead = sum(1 for t in self._tickets if not t.running and t.number < ticket.number)
                        running = sum(1 for t in self._tickets if t.running)
                        mine = sum(1 for t in self._tickets if t.running and t.owner == owner)
                        self._cond.release()
                        try:
                            on_wait(_queue_message(ahead + 1, running, mine))
                        finally:
                            self._cond.acquire()
                        if self._startable(ticket):
                            break
                    self._cond.wait(poll if on_wait is not None else None)
                ticket.running = True
            yield
        finally:
            with self._cond:
                self._tickets.remove(ticket)
                self._cond.notify_all()


def _queue_message(position: int, running: int, mine: int) -> str:
    suffix = "th" if 10 <= position % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(position % 10, "th")
    ordinal = f"{position}{suffix}"
    if mine:
        return (f"In line: {ordinal}. This session already has {mine} explanation{'s' if mine != 1 else ''} "
                "running; the next starts when it finishes.")
    return f"In line: {ordinal}. {running} explanation{'s' if running != 1 else ''} running on this server."


__all__ = ["ModelGate", "WorkQueue", "gate_for"]
