"""Every cache and session-state key of the dashboard, in one place.

Models are cached per process with ``st.cache_resource`` keyed on (model id, revision, device);
explanations with ``st.cache_data`` keyed on (model key, text, explainer, config, target). Only models
that come from the store, the bundled package or a server folder are cached; nothing a single session
made privately is put in a shared cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections import OrderedDict
from typing import Any

import streamlit as st

import explainers
from explainers import Attribution
from model_zoo import DEFAULT_MODEL_ID, ModelHandle, ModelLoadError, load, loading, store

# Session-state keys.
MODEL = "loupe_model"  # the id/path of the model in use
MODEL_OK = "loupe_model_ok"  # the last model that loaded; kept when a new choice fails
MODEL_ERROR = "loupe_model_error"  # message of the last failed load (the previous model stays)
TEXT = "loupe_text"
METHODS = "loupe_methods"
TARGET = "loupe_target"
LAYOUT = "loupe_layout"
GRANULARITY = "loupe_granularity"
SANITY = "loupe_sanity"
RESULTS = "loupe_results"  # the last explanation request and its attributions
LINK_NOTES = "loupe_link_notes"  # what the opening permalink asked for that was changed or left out
LINK_PENDING = "loupe_link_pending"  # a permalink filled the page; nothing runs until Explain is pressed
CONFIG_PREFIX = "loupe_cfg"


def default_model() -> str:
    return os.environ.get("LOUPE_DEFAULT_MODEL", DEFAULT_MODEL_ID)


def model_revision(model: str) -> str:
    """The model's file stamp (``"missing"`` when it cannot be found: loading then says why)."""
    try:
        return loading.model_revision(model)
    except ModelLoadError:
        return "missing"


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _load(model: str, revision: str, device: str) -> ModelHandle:
    return load(model, device=device)


def get_handle(model: str) -> ModelHandle:
    """The loaded model (cached per process); raises ``ModelLoadError`` with a readable message."""
    return _load(model, model_revision(model), os.environ.get("LOUPE_DEVICE", "auto"))


def model_key(handle: ModelHandle) -> str:
    return f"{handle.id}@{model_revision(str(handle.info.get('path') or handle.id))}"


def config_json(config: Any) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


@st.cache_data(max_entries=512, show_spinner=False)
def _explain(key: str, text: str, method: str, config: str, target: int | None, _handle: ModelHandle) -> Attribution:
    # key, text, method, config and target form the cache key; the handle is fixed by `key`.
    explainer = explainers.get(method)
    return explainer.explain(_handle, text, target, explainer.Config(**json.loads(config)))


# Keys of the explanations computed in this process, most recent last: a hint that ``_explain`` will hit its
# cache, so a page need not queue for work that is already done. Smaller than the cache and refreshed on each
# use, so a key here is (almost always) still cached; a miss only means the work is done without queueing.
_DONE: OrderedDict[tuple[Any, ...], None] = OrderedDict()
_DONE_LOCK = threading.Lock()
_DONE_SIZE = 256


def _explain_key(handle: ModelHandle, text: str, method: str, config: Any, target: int | None) -> tuple[Any, ...]:
    return (model_key(handle), text, method, config_json(config), target)


def is_cached(handle: ModelHandle, text: str, method: str, config: Any, target: int | None) -> bool:
    """Whether this explanation was made in this process recently (so :func:`explain` returns at once)."""
    with _DONE_LOCK:
        return _explain_key(handle, text, method, config, target) in _DONE


def explain(handle: ModelHandle, text: str, method: str, config: Any, target: int | None) -> Attribution:
    """A cached explanation: the same model, text, explainer, config and target return instantly."""
    key = _explain_key(handle, text, method, config, target)
    result = _explain(*key, handle)
    with _DONE_LOCK:
        _DONE[key] = None
        _DONE.move_to_end(key)
        while len(_DONE) > _DONE_SIZE:
            _DONE.popitem(last=False)
    return result


@st.cache_data(max_entries=256, show_spinner=False)
def _predict(key: str, text: str, _handle: ModelHandle) -> list[float]:
    return [float(p) for p in _handle.predict(text)]


def predict(handle: ModelHandle, text: str) -> list[float]:
    return _predict(model_key(handle), text, handle)


def store_models() -> list[dict[str, Any]]:
    return store.list_models()


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
                  _attribution: Attribution) -> Any:
    from explainers.metrics import faithfulness

    return faithfulness(_handle, _attribution)


def faithfulness(handle: ModelHandle, attribution: Attribution) -> Any:
    """Faithfulness (ERASER AOPC, deletion/insertion, random baseline) of a result; one batched call, cached."""
    return _faithfulness(model_key(handle), attribution.text, attribution.method,
                         json.dumps(attribution.params, sort_keys=True), attribution.target, handle, attribution)


@st.cache_data(max_entries=512, show_spinner=False)
def _sanity(key: str, text: str, method: str, config: str, target: int, _handle: ModelHandle,
            _attribution: Attribution) -> Any:
    from explainers.sanity import randomisation_check

    return randomisation_check(_handle, _attribution)  # with the settings the attribution was made with


def sanity(handle: ModelHandle, attribution: Attribution) -> Any:
    """The model-randomisation sanity check of a result (every weight re-drawn; one more explanation), cached."""
    return _sanity(model_key(handle), attribution.text, attribution.method,
                   json.dumps(attribution.params, sort_keys=True), attribution.target, handle, attribution)


@st.cache_data(max_entries=64, show_spinner="Counting trainable parameters…")
def trainable_parameters(base: str, revision: str, method: str, config: str,
                         labels: tuple[str, ...]) -> tuple[int, int]:
    """(trainable, total) parameters of ``base`` set up for ``method`` (built on the CPU, then dropped)."""
    from model_zoo.finetune import prepare_model

    prep = prepare_model(base, method, json.loads(config), list(labels), device="cpu")
    return prep.trainable, prep.total
