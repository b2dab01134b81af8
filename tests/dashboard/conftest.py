"""Fixtures of the dashboard tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model_zoo import store
from model_zoo.paths import models_dir


@pytest.fixture
def tiny_store(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny model in the (private) store, as the default model."""
    folder = models_dir() / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    store.write_card(folder, {"id": "tiny", "labels": ["negative", "positive"], "task": "sentiment",
                              "metrics": {"test": {"accuracy": 0.5, "f1_macro": 0.5}}})
    monkeypatch.setenv("LOUPE_DEFAULT_MODEL", "tiny")
    return "tiny"
