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


def uploads_dir() -> Path:
    """``LOUPE_HOME/uploads``: files people uploaded for a job, one unguessable folder each, kept only while
    the job that reads them runs (:mod:`model_zoo.jobs` removes them when it ends)."""
    return _sub("uploads")


def _safe_name(filename: str) -> str:
    name = "".join(c if (c.isalnum() and c.isascii()) or c in "._-" else "_" for c in Path(filename).name)
    return name.lstrip(".")[-60:] or "upload.csv"


def stage_upload(raw: bytes, filename: str = "upload.csv") -> Path:
    """Save uploaded bytes for a job about to start: ``uploads/<random>/<name>`` (0600, atomic).

    A job whose config names the file owns it from then on and removes it when it ends; when no job
    starts, the caller removes it with :func:`discard_upload`.
    """
    import secrets

    folder = uploads_dir() / secrets.token_urlsafe(16)
    folder.mkdir(mode=0o700)
    path = folder / _safe_name(filename)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def is_staged_upload(path: str | os.PathLike[str]) -> bool:
    """True for a file that :func:`stage_upload` made (inside ``uploads/<random>/``)."""
    try:
        resolved = Path(path).resolve()
        return resolved.parent.parent == uploads_dir().resolve()
    except (OSError, ValueError, RuntimeError):
        return False


def discard_upload(path: str | os.PathLike[str]) -> None:
    """Remove a staged upload and its folder (nothing happens for any other path)."""
    if not is_staged_upload(path):
        return
    resolved = Path(path).resolve()
    resolved.unlink(missing_ok=True)
    shutil.rmtree(resolved.parent, ignore_errors=True)


@contextlib.contextmanager
def temporary_upload(raw: bytes, filename: str = "upload.csv") -> Iterator[Path]:
    """Uploaded bytes as a file under its own (sanitised) name for the length of a ``with`` block, e.g. to
    preview a split before any job starts; removed afterwards, whatever happens."""
    with tempfile.TemporaryDirectory(prefix="loupe-preview-") as tmp:
        path = Path(tmp) / _safe_name(filename)
        path.write_bytes(raw)
        yield path


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
