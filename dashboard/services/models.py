"""Models: which one to load, loading it (cached per process), the store's list and cards, the device.

Models are cached with ``st.cache_resource`` keyed on (model id, revision, device). Only models that come
from the store, the bundled package or a server folder are cached; nothing a single session made privately
is put in a shared cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from model_zoo import DEFAULT_MODEL_ID, ModelHandle, ModelLoadError, hosting, load, loading, resolve_device, store
from model_zoo.paths import models_dir


def default_model() -> str:
    """The model a new session starts with (``LOUPE_DEFAULT_MODEL``, else the default recipe's id)."""
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
    """What identifies a loaded model's weights: its id and file stamp (part of every explanation's cache key)."""
    return f"{handle.id}@{model_revision(str(handle.info.get('path') or handle.id))}"


def check_model(name: str) -> str:
    """The name to load for a model this person asked for; raises ``ModelLoadError`` when they may not load it
    (hosted: only the store and the operator's roots, and the message repeats nothing of the request)."""
    return hosting.check_request(name)


def store_models() -> list[dict[str, Any]]:
    """The model cards of the store, one per model (``id``, ``path``, ``labels``, metrics...)."""
    return store.list_models()


def in_store(model_id: str) -> bool:
    """Whether the store holds a model ``model_id``."""
    return store.model_path(model_id) is not None


def read_card(folder: str | Path | None) -> dict[str, Any]:
    """The model card in ``folder`` ({} when there is none)."""
    return store.read_card(Path(folder) if folder else None)


def store_folder() -> str | None:
    """Where the store is, to show; None on a hosted server (no server path is ever shown there)."""
    return None if hosted() else str(models_dir())


def hosted() -> bool:
    """Whether this is a shared hosted server (``LOUPE_HOSTED=1``)."""
    return hosting.hosted()


def folder_picker_allowed() -> bool:
    """Whether a person may load a model folder by its path (locally always; hosted, under the operator's roots)."""
    return not hosting.hosted() or bool(hosting.model_roots())


def max_name_chars() -> int:
    """The longest model name or path a person may type."""
    return hosting.MAX_NAME


def shown_error(err: Any) -> str:
    """An error message safe to show here: hosted, with every server path removed."""
    return hosting.redact(err)


def shown_card(card: dict[str, Any]) -> dict[str, Any]:
    """A model card for showing: without its folder, and hosted, with server paths redacted in every string."""
    scrubbed: dict[str, Any] = hosting.scrub({k: v for k, v in card.items() if k != "path"})
    return scrubbed


def device_name() -> str:
    """The device this server computes on (``cpu``, ``cuda``, ``mps``)."""
    return str(resolve_device())
