"""Hosted mode: what a shared Loupe lets strangers load, and what it never shows them.

The operator sets it in the environment; it is read on every call, so a test or a restarted server sees changes.

- ``LOUPE_HOSTED=1``: hosted mode. Models load only from the store (``LOUPE_HOME/models``), the bundled encoder
  and model folders under ``LOUPE_MODEL_ROOTS``; hub ids only with ``LOUPE_ALLOW_HUB=1``. Every other request
  gets one message, :data:`NOT_AVAILABLE`, which names no path and does not say whether the path exists, is a
  file or a folder. Server paths in messages, logs and model cards shown to users become their last part.
- ``LOUPE_MODEL_ROOTS``: folders (separated by ``os.pathsep``) whose model folders users may load, named by
  their path relative to the root (``sst2/bert``; roots are searched in order) or by their full path.
  Symlinks and ``..`` are resolved before the check, so neither leads out of a root.
- ``LOUPE_ALLOW_HUB``: ``1`` lets hosted users give hub ids (the server downloads them); ``0`` forbids hub ids
  in local use too. Default: allowed locally, forbidden when hosted.

Local use (``LOUPE_HOSTED`` unset) keeps its freedom: any folder on the machine, hub ids, full paths in
messages. Either way a job's private model is reached only through its job, never as a folder
(:func:`check_request`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from model_zoo.errors import ModelLoadError
from model_zoo.paths import loupe_home, models_dir

HOSTED_ENV = "LOUPE_HOSTED"
ROOTS_ENV = "LOUPE_MODEL_ROOTS"
HUB_ENV = "LOUPE_ALLOW_HUB"
MAX_NAME = 512
"""Longest model id or path accepted from a person (file systems allow 4,096; no real model needs more)."""

NOT_AVAILABLE = ("That model is not available on this server. Pick one from the list, or ask whoever runs "
                 "this server to add it.")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
# An absolute POSIX path (or ~/...) that is not part of a word, a URL or a relative path.
_ABS_PATH = re.compile(r"(?<![\w.~:/\\-])~?/[^\s'\"`<>|,;()\[\]{}]+")


class ModelNotAvailableError(ModelLoadError):
    """Hosted mode: the model is outside what the operator allows (the message never says more)."""

    def __init__(self, message: str = NOT_AVAILABLE) -> None:
        super().__init__(message)


def _flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    return True if value in ("1", "true", "yes", "on") else False if value in ("0", "false", "no", "off") else None


def hosted() -> bool:
    """True when ``LOUPE_HOSTED`` is set (1/true/yes/on)."""
    return bool(_flag(HOSTED_ENV))


def hub_allowed() -> bool:
    """Whether a hub id may be tried: ``LOUPE_ALLOW_HUB`` if set, else only in local use."""
    flag = _flag(HUB_ENV)
    return (not hosted()) if flag is None else flag


def _resolve(path: str | os.PathLike[str]) -> Path | None:
    """The absolute path with symlinks and ``..`` resolved; None for a name no file system accepts."""
    try:
        return Path(path).expanduser().resolve()
    except (OSError, ValueError, RuntimeError):  # too long, NUL byte, symlink loop, unknown ~user
        return None


def model_roots() -> list[Path]:
    """The operator's model folders (``LOUPE_MODEL_ROOTS``), resolved, in order."""
    roots = (_resolve(p.strip()) for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p.strip())
    return [r for r in roots if r is not None]


def is_within(path: Path, root: Path) -> bool:
    """``path`` is ``root`` or inside it (both already resolved)."""
    return path == root or root in path.parents


def _is_model_dir(folder: Path) -> bool:
    try:
        return folder.is_dir() and (folder / "config.json").is_file()
    except OSError:
        return False


def refuse(local_message: str) -> ModelLoadError:
    """The error for a refused request: :data:`NOT_AVAILABLE` when hosted, ``local_message`` otherwise."""
    return ModelNotAvailableError() if hosted() else ModelLoadError(local_message)


def locate_hosted(name: str) -> tuple[Path | None, str]:
    """Hosted mode's half of :func:`model_zoo.loading.locate` (after store and bundled ids).

    Returns ``(folder, "local")`` for a model folder under a root (or inside ``LOUPE_HOME``, where jobs keep
    their models: :func:`check_request` keeps people out of those), ``(None, "hub")`` for a hub id when
    allowed. Anything else raises :class:`ModelNotAvailableError`, before looking at the path itself.
    """
    candidate = Path(name).expanduser() if "\0" not in name else None
    if candidate is not None and candidate.is_absolute():
        folder = _resolve(candidate)
        allowed = [*model_roots(), _resolve(loupe_home())]
        if folder is not None and any(r is not None and is_within(folder, r) for r in allowed) \
                and _is_model_dir(folder):
            return folder, "local"
        raise ModelNotAvailableError()
    if candidate is not None:
        for root in model_roots():
            folder = _resolve(root / candidate)
            if folder is not None and is_within(folder, root) and _is_model_dir(folder):
                return folder, "local"
    if hub_allowed() and _HUB_ID.match(name) and ".." not in name:
        return None, "hub"
    raise ModelNotAvailableError()


def private_folder(folder: Path) -> bool:
    """A folder inside ``LOUPE_HOME`` but outside the store: a job's files or an upload."""
    resolved, home, store = _resolve(folder), _resolve(loupe_home()), _resolve(models_dir())
    if resolved is None or home is None or store is None:
        return True
    return is_within(resolved, home) and not is_within(resolved, store)


def check_request(name: object) -> str:
    """Check a model a person asked for (picker, *Load folder*, ``?model=``); return the name to load it by.

    Store and bundled ids and hub ids come back as given; a folder comes back as given in local use and as
    its root-relative name when hosted (so links and pages carry no server path).

    Raises:
        ModelLoadError: not a usable name, a job's or an upload's folder, or (hosted) anything outside the
            store and the roots, always with :data:`NOT_AVAILABLE` then.
    """
    from model_zoo.loading import locate  # loading uses this module

    if not isinstance(name, str) or not name.strip():
        raise refuse("No model given. Pick a model from the list or type a folder path.")
    folder, source = locate(name)
    if folder is not None and source == "local":
        if private_folder(folder):
            raise refuse("That folder belongs to a background job or an upload. A fine-tuned model is opened "
                         "through its job, where its owner can save it to the store.")
        if hosted():
            return display_name(folder)
    return name.strip()


def display_name(path: str | os.PathLike[str]) -> str:
    """How to name a model folder to a person: the path itself locally; hosted, its root-relative path
    (or, outside the roots, its last part)."""
    if not hosted():
        return str(path)
    resolved = _resolve(path) or Path(str(path))
    for root in model_roots():
        if is_within(resolved, root) and resolved != root:
            return resolved.relative_to(root).as_posix()
    return resolved.name or "model"


def strip_paths(text: Any) -> str:
    """``text`` with every absolute path cut to its last part (``/srv/models/sst2`` -> ``…/sst2``)."""
    return _ABS_PATH.sub(_last_part, str(text))


def redact(text: Any) -> str:
    """``text`` with every absolute server path cut to its last part when hosted; as it is locally."""
    return strip_paths(text) if hosted() else str(text)


def _last_part(match: re.Match[str]) -> str:
    parts = [p for p in match.group(0).split("/") if p and p != "~"]
    return f"…/{parts[-1]}" if parts else match.group(0)


def scrub(value: Any, keep: Iterable[str] = ()) -> Any:
    """A model card (or any JSON-like value) with server paths redacted in every string, when hosted.

    Keys in ``keep`` (top level only) are left as they are: the code that needs a real path reads them.
    """
    if not hosted():
        return value
    keep = set(keep)
    if isinstance(value, dict):
        return {k: v if k in keep else scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return redact(value) if isinstance(value, str) else value


__all__ = ["HOSTED_ENV", "HUB_ENV", "MAX_NAME", "NOT_AVAILABLE", "ROOTS_ENV", "ModelNotAvailableError",
           "check_request", "display_name", "hosted", "hub_allowed", "is_within", "locate_hosted", "model_roots",
           "private_folder", "redact", "refuse", "scrub", "strip_paths"]
