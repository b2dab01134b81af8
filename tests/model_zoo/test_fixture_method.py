"""Adding a fine-tuning method is one class plus its registration: the fixture method trains through the real
job, is saved with its card and reloads with ``model_zoo.load``; only its own weights moved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from model_zoo import jobs, load, store
from model_zoo.finetune import DataSpec, FinetuneConfig, run_here
from model_zoo.methods import METHODS
from tests.model_zoo.fixture_method import LayerNormOnly


@pytest.fixture
def layernorm_only() -> Iterator[LayerNormOnly]:
    method = METHODS.register(LayerNormOnly.name, LayerNormOnly())
    yield method
    METHODS.unregister(LayerNormOnly.name)


def _csv(path: Path, n: int = 40) -> Path:
    words = (["good", "great", "fun", "superb"], ["bad", "awful", "dull", "worst"])
    rows = [f"{words[i % 2][i % 4]} {words[i % 2][(i + 1) % 4]} {i},{('neg', 'pos')[i % 2]}" for i in range(n)]
    path.write_text("review,sentiment\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_fixture_method_trains_saves_and_reloads(layernorm_only: LayerNormOnly, tiny_model_dir: Path,
                                                 tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    assert "layernorm_only" in METHODS
    cfg = FinetuneConfig(base=str(tiny_model_dir), method="layernorm_only", name="tiny-ln",
                         data=DataSpec(str(_csv(tmp_path / "toy.csv")), "review", "sentiment"),
                         train={"batch_size": 8, "eval_steps": 0, "save_steps": 0})
    job_id, status = run_here(cfg)
    assert status["state"] == "done", jobs.log_tail(job_id)

    card = store.read_card(store.model_path("tiny-ln"))
    assert card["method"] == "layernorm_only" and card["method_title"] == "LayerNorm only"
    assert card["method_config"] == {"include_pooler": False} and card["hyperparameters"]["learning_rate"] == 1e-2
    assert card["labels"] == ["neg", "pos"] and card["new_head"] and not card.get("peft")

    base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).state_dict()
    tuned = load("tiny-ln", device="cpu").model.state_dict()
    norms = [k for k in base if "LayerNorm" in k]
    head = [k for k in base if k.startswith("classifier.")]
    frozen = [k for k in base if k not in norms and k not in head]
    assert card["trainable_parameters"] == sum(base[k].numel() for k in norms + head)
    assert norms and all(not torch.equal(base[k], tuned[k]) for k in norms), "a LayerNorm weight did not move"
    assert frozen and all(torch.equal(base[k], tuned[k]) for k in frozen), "a frozen weight changed"
