"""The model store: ``LOUPE_HOME/models/<id>/`` folders, each with a ``loupe.json`` model card."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from model_zoo.paths import models_dir, write_json_atomic

CARD = "loupe.json"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def valid_id(model_id: str) -> bool:
    """Store ids are short file-name-safe names (letters, digits, ``.``, ``_``, ``-``)."""
    return bool(_ID_RE.match(model_id)) and ".." not in model_id


def model_path(model_id: str) -> Path | None:
    """The store folder of ``model_id``, or None when it is not in the store."""
    if not valid_id(model_id):
        return None
    folder = models_dir() / model_id
    return folder if (folder / "config.json").exists() or (folder / CARD).exists() else None


def read_card(folder: Path | None) -> dict[str, Any]:
    """The ``loupe.json`` card of a model folder ({} when there is none or it is unreadable)."""
    if folder is None:
        return {}
    try:
        card = json.loads((folder / CARD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def write_card(folder: Path, card: dict[str, Any]) -> None:
    """Write a model card atomically."""
    write_json_atomic(folder / CARD, card)


def publish_copy(source: Path, model_id: str, overwrite: bool = False, **card_updates: Any) -> Path:
    """Copy a finished model folder into the store as ``model_id`` (atomically), updating its card.

    Raises:
        ModelLoadError: an invalid or reserved name, a name already taken, or a folder with no card.
    """
    from model_zoo.errors import ModelLoadError
    from model_zoo.loading import BASE_ENCODER_ID  # loading reads the store: imported here, not at the top
    from model_zoo.paths import publish_dir_atomic, staging_dir

    if not valid_id(model_id) or model_id == BASE_ENCODER_ID:
        raise ModelLoadError(f"{model_id!r} is not a usable model name (letters, digits, '.', '_', '-').")
    if model_path(model_id) is not None and not overwrite:
        raise ModelLoadError(f"The store already has a model called {model_id!r}; pick another name.")
    if not (source / CARD).exists():
        raise ModelLoadError("There is no finished model to save.")
    with staging_dir(models_dir(), model_id) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        card = read_card(staging)
        card.update(id=model_id, saved=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **card_updates)
        write_card(staging, card)
        publish_dir_atomic(staging, models_dir() / model_id)
    return models_dir() / model_id


def list_models() -> list[dict[str, Any]]:
    """Cards of every model in the store, sorted by id; each has at least ``id`` and ``path``."""
    out = []
    for folder in sorted(models_dir().iterdir()):
        if folder.name.startswith(".") or not folder.is_dir() or not (folder / "config.json").exists():
            continue
        card = read_card(folder)
        card.setdefault("id", folder.name)
        card["path"] = str(folder)
        out.append(card)
    return out
