"""Where Loupe keeps its files: one root, ``LOUPE_HOME`` (default ``~/.cache/loupe``)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def loupe_home() -> Path:
    """The storage root; created on first use."""
    root = Path(os.environ.get("LOUPE_HOME") or Path.home() / ".cache" / "loupe").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _sub(name: str) -> Path:
    path = loupe_home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """``LOUPE_HOME/models``: one Hugging Face folder per model, each with a ``loupe.json`` card."""
    return _sub("models")


def jobs_dir() -> Path:
    """``LOUPE_HOME/jobs``: one folder per background job."""
    return _sub("jobs")


def reports_dir() -> Path:
    """``LOUPE_HOME/reports``: exported HTML/PNG reports."""
    return _sub("reports")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; cards and results are meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staging_dir(parent: Path, name: str) -> Iterator[Path]:
    """A fresh, readable (0755) temporary folder inside ``parent``, removed on exit unless published."""
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-"))
    staging.chmod(0o755)  # mkdtemp makes 0700; stored models are read by whoever runs the app
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_dir_atomic(staging: Path, final: Path) -> None:
    """Move a fully written folder into place; an existing folder at ``final`` is replaced."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        trash = final.with_name(f".{final.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        os.replace(staging, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, final)
