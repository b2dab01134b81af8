"""Fixtures: a tiny random BERT with the real MiniLM tokenizer files, and a private LOUPE_HOME."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from model_zoo.loading import bundled_encoder_path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it: no test touches the network
# PyTorch predictions by default: an ONNX export per loaded model would cost seconds each; the ONNX Runtime path has
# its own tests (tests/model_zoo/test_onnx_forward.py), which turn it on.
os.environ["LOUPE_ONNX"] = "off"
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


def build_spread_bert(folder: Path) -> Path:
    """The tiny BERT with its matrices (all but the head's) redrawn at std 0.3: at the usual 0.02 a random BERT gives
    nearly the same [CLS] vector for every text, so texts would differ little in what they give the head, and the
    methods that freeze the encoder would have nothing to learn from."""
    from transformers import AutoModelForSequenceClassification

    build_tiny_bert(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and not name.startswith("classifier"):
                p.normal_(std=0.3)
    model.save_pretrained(folder)
    return folder


# The ground-truth task: filler words with exactly one planted trigger word, whose class is the label.
GT_FILLERS = tuple("the a movie film story plot was is and it this of with very quite about for that in on".split())
GT_TRIGGERS = {"terrible": 0, "excellent": 1}


def ground_truth_sentences(n: int, seed: int) -> tuple[list[str], list[int]]:
    """``n`` sentences of 4-10 filler words with one trigger word planted at a random position."""
    import numpy as np

    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        words = [str(w) for w in rng.choice(GT_FILLERS, size=int(rng.integers(4, 11)))]
        trigger = str(rng.choice(list(GT_TRIGGERS)))
        words.insert(int(rng.integers(0, len(words) + 1)), trigger)
        texts.append(" ".join(words))
        labels.append(GT_TRIGGERS[trigger])
    return texts, labels


def build_ground_truth_bert(folder: Path, steps: int = 120) -> Path:
    """The tiny BERT of :func:`build_tiny_bert`, trained until its decision is the planted trigger word.

    Label smoothing keeps it from saturating (p ~ 0.85 rather than 0.9999), so gradient methods see
    gradients; the right explanation of every prediction is known: the trigger word first.
    """
    from transformers import AutoTokenizer, BertForSequenceClassification

    build_tiny_bert(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertForSequenceClassification.from_pretrained(folder)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for step in range(steps):
        texts, labels = ground_truth_sentences(32, seed=1000 + step)
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        loss = torch.nn.functional.cross_entropy(model(**enc).logits, torch.tensor(labels), label_smoothing=0.3)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def ground_truth_handle(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from model_zoo import load

    return load(str(build_ground_truth_bert(tmp_path_factory.mktemp("gt") / "gt-bert")), device="cpu")


@pytest.fixture(autouse=True)
def _loupe_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("loupe_home")
    monkeypatch.setenv("LOUPE_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    """Torch on one thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): a tiny model gains
    nothing from threads, and on a loaded machine two threads wait on each other (20x)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


@pytest.fixture(scope="session")
def local_ray():  # type: ignore[no-untyped-def]
    """One local Ray with two CPUs for the whole session (starting it takes seconds); engine runs reuse it."""
    ray = pytest.importorskip("ray")
    from model_zoo import engine

    started = engine.start(engine.config({"engine": "ray", "workers": 2}))
    yield
    if started:
        ray.shutdown()
