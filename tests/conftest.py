"""Fixtures: a tiny random BERT with the real MiniLM tokenizer files, and a private LOUPE_HOME."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from model_zoo.loading import bundled_encoder_path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it: no test touches the network
_ORIGINAL_HOME = os.environ.get("LOUPE_HOME")  # before the autouse fixture points it at a temp folder
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def build_tiny_bert(folder: Path, num_labels: int = 2, seed: int = 0, labels: list[str] | None = None) -> Path:
    """Save a 2-layer, 32-wide random BERT classifier with the bundled tokenizer into ``folder``."""
    from transformers import BertConfig, BertForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    names = labels or (["negative", "positive"] if num_labels == 2 else [f"class_{i}" for i in range(num_labels)])
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels,
                        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    with torch.no_grad():  # a slightly larger head so predictions are not all 0.5
        model.classifier.weight.mul_(20)
    model.save_pretrained(folder)
    src = bundled_encoder_path()
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copy(src / name, folder / name)
    return folder


@pytest.fixture(autouse=True)
def _loupe_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("loupe_home")
    monkeypatch.setenv("LOUPE_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_handle(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from model_zoo import load

    return load(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    """The real default model, built once (about 3 minutes on 2 cores) into a persistent store.

    The store is ``LOUPE_TEST_HOME`` (default: ``LOUPE_HOME`` as the test run found it, else
    ``~/.cache/loupe``), so later runs and the app reuse it.
    """
    from model_zoo.recipe import prepare

    home = os.environ.get("LOUPE_TEST_HOME") or _ORIGINAL_HOME or str(Path.home() / ".cache" / "loupe")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOUPE_HOME", home)
        return prepare(quiet=True)


@pytest.fixture(scope="session")
def real_handle(real_model_dir: Path):  # type: ignore[no-untyped-def]
    from model_zoo import load

    return load(str(real_model_dir), device="cpu")
