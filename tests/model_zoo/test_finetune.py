"""Fine-tuning: each method learns and trains only its own weights, saved models reload, killed jobs resume,
and the test metrics come from a held-out split that neither trained nor chose the model."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from model_zoo import ModelLoadError, jobs, load, store
from model_zoo.data import TextDataset
from model_zoo.errors import DatasetError, LoupeError
from model_zoo.finetune import (
    DataSpec,
    FinetuneConfig,
    export_model,
    load_data,
    prepare_model,
    run_here,
    save_to_store,
    validate_config,
)
from model_zoo.finetune import job as finetune_job
from model_zoo.methods import METHODS
from model_zoo.training import TrainConfig, classification_metrics, make_trainer
from tests.conftest import build_spread_bert, build_tiny_bert

pytestmark = pytest.mark.usefixtures("one_thread")

POS = ["good", "great", "fun", "love", "best", "superb"]
NEG = ["bad", "awful", "boring", "hate", "worst", "dull"]
LABELS = ["neg", "pos"]  # not the tiny base's names, so every run also exercises the new-head path
# Per-method learning rates and settings that learn the toy task in a few steps on the tiny model.
LR = {"full": 3e-3, "lora": 2e-2, "bitfit": 5e-2, "adapters": 1e-2, "prompt_tuning": 5e-2, "head_only": 5e-2}
SMALL = {"lora": {"r": 4}, "adapters": {"bottleneck": 16}, "prompt_tuning": {"num_virtual_tokens": 2}}


def _toy(n: int = 64, seed: int = 0) -> TextDataset:
    """Texts of three positive or three negative words: learnable from any token."""
    rng = random.Random(seed)
    labels = [i % 2 for i in range(n)]
    return TextDataset([" ".join(rng.sample(POS if y else NEG, 3)) for y in labels], labels, LABELS, "toy")


def _toy_csv(path: Path, n: int = 100) -> Path:
    ds = _toy(n, seed=1)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "sentiment"])
        writer.writerows([t, LABELS[y]] for t, y in zip(ds.texts, ds.labels))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_spread_bert(tmp_path_factory.mktemp("finetune") / "tiny-base")




def _loss(model: Any, tokenizer: Any, ds: TextDataset) -> float:
    model.eval()
    device = next(model.parameters()).device  # Trainer moves the model to the GPU when there is one
    enc = tokenizer(ds.texts, padding=True, return_tensors="pt").to(device)
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                    labels=torch.tensor(ds.labels, device=device))
    return float(out.loss)


def _probs(model: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
    model.eval()
    enc = tokenizer(texts, padding=True, return_tensors="pt").to(next(model.parameters()).device)
    with torch.no_grad():
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    return torch.softmax(logits.float(), -1).cpu().numpy()


def _train(model: Any, tokenizer: Any, ds: TextDataset, method: str, out: Path, epochs: float = 8) -> None:
    cfg = TrainConfig(epochs=epochs, batch_size=16, learning_rate=LR[method], warmup_ratio=0.0, weight_decay=0.0)
    make_trainer(model, tokenizer, ds, None, cfg, out).train()


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_learns_and_leaves_frozen_weights_alone(method: str, base: Path, tmp_path: Path) -> None:
    prep = prepare_model(str(base), method, SMALL.get(method), LABELS, device="cpu")
    assert prep.new_head and 0 < prep.trainable <= prep.total
    ds = _toy()
    frozen = {n: p.detach().clone() for n, p in prep.model.named_parameters() if not p.requires_grad}
    trained = {n: p.detach().clone() for n, p in prep.model.named_parameters() if p.requires_grad}
    before = _loss(prep.model, prep.tokenizer, ds)
    _train(prep.model, prep.tokenizer, ds, method, tmp_path)
    after = _loss(prep.model, prep.tokenizer, ds)
    assert before > 0.65 and after < 0.5, (before, after)  # from chance (ln 2) to clearly learned
    params = {n: p.detach().cpu() for n, p in prep.model.named_parameters()}
    assert all(torch.equal(params[n], v) for n, v in frozen.items()), "a frozen weight changed"
    # The method's own weights moved, not just the head's (head-only: its own weights are the head).
    own = [n for n in trained if "classifier" not in n] or list(trained)
    assert own and any(not torch.equal(params[n], trained[n]) for n in own)


def _numel(model: Any, keep: Any) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if keep(n))


def test_trainable_parameter_counts(base: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    plain = AutoModelForSequenceClassification.from_pretrained(base)
    total = _numel(plain, lambda n: True)
    head = _numel(plain, lambda n: n.startswith("classifier."))
    hidden, layers = 32, 2
    pooler = hidden * hidden + hidden  # trains only when a method's include_pooler is on (off by default)

    full = prepare_model(str(base), "full", None, LABELS, device="cpu")
    assert full.trainable == full.total == total and full.fraction == 1.0

    bitfit = prepare_model(str(base), "bitfit", None, LABELS, device="cpu")
    names = [n for n, p in bitfit.model.named_parameters() if p.requires_grad]
    assert all(n.endswith(".bias") or n.startswith("classifier.") for n in names)
    assert bitfit.trainable == _numel(plain, lambda n: n.endswith(".bias")) + head - 2  # classifier.bias counted once
    with_weight = prepare_model(str(base), "bitfit", {"include_pooler": True}, LABELS, device="cpu")
    assert with_weight.trainable == bitfit.trainable + hidden * hidden  # opt-in: the pooler's weight (bias had it)

    # LoRA: the lora_* matrices, the head and (include_pooler) the pooler, both as modules_to_save.
    lora = prepare_model(str(base), "lora", {"r": 4, "include_pooler": True}, LABELS, device="cpu")
    names = [n for n, p in lora.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or (".modules_to_save." in n and (".classifier." in n or ".pooler." in n))
                         for n in names)
    assert any(".pooler." in n for n in names)
    assert {n.split(".")[-4] for n in names if "lora_" in n} == {"query", "value"}
    assert lora.trainable == layers * 2 * 4 * (hidden + hidden) + head + pooler
    bare = prepare_model(str(base), "lora", {"r": 4}, LABELS, device="cpu")  # the default: no pooler
    names = [n for n, p in bare.model.named_parameters() if p.requires_grad]
    assert all("lora_" in n or ".classifier.modules_to_save." in n for n in names)
    assert bare.trainable == layers * 2 * 4 * (hidden + hidden) + head

    small = {"bottleneck": 8, "train_layer_norm": False, "include_pooler": False}
    adapters = prepare_model(str(base), "adapters", small, LABELS, device="cpu")
    assert adapters.trainable == layers * (hidden * 8 + 8 + 8 * hidden + hidden) + head
    both = prepare_model(str(base), "adapters", {**small, "placement": "both"}, LABELS, device="cpu")
    assert both.trainable - head == 2 * (adapters.trainable - head)
    pooled = prepare_model(str(base), "adapters", {**small, "include_pooler": True}, LABELS, device="cpu")
    assert pooled.trainable == adapters.trainable + pooler

    prompt = prepare_model(str(base), "prompt_tuning", {"num_virtual_tokens": 5, "include_pooler": True}, LABELS,
                           device="cpu")
    assert prompt.trainable == 5 * hidden + head + pooler
    prompt = prepare_model(str(base), "prompt_tuning", {"num_virtual_tokens": 5}, LABELS, device="cpu")
    assert prompt.trainable == 5 * hidden + head

    head_only = prepare_model(str(base), "head_only", None, LABELS, device="cpu")
    assert head_only.trainable == head
    with_pooler = prepare_model(str(base), "head_only", {"include_pooler": True}, LABELS, device="cpu")
    assert with_pooler.trainable == head + pooler


def test_lora_counts_on_the_bundled_encoder() -> None:
    """The real MiniLM (6 layers, 384 wide) gets a new head and LoRA on its query/value projections.

    Its pooler stays frozen: the bundled checkpoint's untrained pooler is replaced by the identity on load
    (``loading.identity_pooler``), so [CLS] reaches the head as it is.
    """
    prep = prepare_model("minilm-base", "lora", {"r": 8}, ["a", "b", "c"], device="cpu")
    assert prep.new_head and prep.labels == ["a", "b", "c"]
    assert prep.trainable == 6 * 2 * 8 * (384 + 384) + (384 * 3 + 3)
    assert 0.003 < prep.fraction < 0.004
    dense = prep.model.base_model.model.bert.pooler.dense
    assert torch.equal(dense.weight, torch.eye(384)) and not dense.bias.any()


@pytest.mark.parametrize("method,config", [("lora", {"r": 4}), ("lora", {"r": 4, "merge": False}),
                                           ("prompt_tuning", {"num_virtual_tokens": 2}),
                                           ("adapters", {"bottleneck": 16})])
def test_saved_model_reloads_with_the_same_predictions(method: str, config: dict[str, Any], base: Path,
                                                       tmp_path: Path) -> None:
    own_base = shutil.copytree(base, tmp_path / "base")  # this test changes its base at the end
    prep = prepare_model(str(own_base), method, config, LABELS, device="cpu")
    ds = _toy(32)
    _train(prep.model, prep.tokenizer, ds, method, tmp_path / "out", epochs=2)
    texts = ["good fun", "awful and boring", "love it", "the worst"]
    # On a GPU, Accelerate leaves the model's forward wrapped in bf16 autocast after training; on the CPU
    # that wrapper does nothing, so the reference is full fp32 like the reloaded model.
    expected = _probs(prep.model.cpu(), prep.tokenizer, texts)
    folder = tmp_path / "saved"
    export_model(prep, prep.model, folder)
    adapter = store.read_card(folder).get("peft")
    assert (adapter is None) == (method == "lora" and config.get("merge", True))
    assert (folder / "model.safetensors").exists() == (adapter is None)  # adapters do not copy the base

    handle = load(str(folder), device="cpu")
    assert handle.labels == dict(enumerate(LABELS))
    np.testing.assert_allclose(handle.predict_proba(texts), expected, atol=1e-5)
    if adapter is not None:  # the card pins the base's weights: a changed base is refused, not silently used
        other = build_tiny_bert(tmp_path / "other", seed=7)
        shutil.copy(other / "model.safetensors", own_base / "model.safetensors")
        with pytest.raises(ModelLoadError, match="different version"):
            load(str(folder), device="cpu")


def _metric_records(job_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    records = jobs.metrics(job_id)
    return ([r for r in records if r.get("split") == "train"], [r for r in records if r.get("split") == "validation"])


def test_cli_runs_the_job_and_publishes_a_card(base: Path, tmp_path: Path) -> None:
    from model_zoo.__main__ import main

    data = _toy_csv(tmp_path / "toy.csv")
    rc = main(["finetune", "--base", str(base), "--data", str(data), "--text-column", "review",
               "--label-column", "sentiment", "--method", "lora", "--set", "r=4", "--epochs", "4",
               "--batch-size", "9", "--lr", "0.02", "--eval-steps", "10", "--name", "toy-lora", "--quiet"])
    assert rc == 0
    card = store.read_card(store.model_path("toy-lora"))
    assert card["method"] == "lora" and card["merged"] and card["method_config"]["r"] == 4
    assert card["base_model"] == str(base) and card["labels"] == LABELS
    assert 0 < card["trainable_parameters"] < card["total_parameters"]
    sizes = {k: card["data"][k]["size"] for k in ("train", "validation", "test")}
    assert sum(sizes.values()) == 100 and 8 <= sizes["validation"] <= 12 and 8 <= sizes["test"] <= 12
    assert card["hyperparameters"]["learning_rate"] == 0.02 and card["steps"] == -(-sizes["train"] // 9) * 4
    for split in ("validation", "test"):  # each figure names its split and the rows it was measured on
        m = card["metrics"][split]
        assert m["split"] == split and m["size"] == sizes[split] == np.asarray(m["confusion_matrix"]).sum()
    assert card["metrics"]["test"]["accuracy"] >= 0.8
    handle = load("toy-lora", device="cpu")
    assert handle.predict_proba(["great fun"])[0].argmax() == 1

    job_id = card["job"]
    assert jobs.status(job_id)["state"] == "done"
    train, val = _metric_records(job_id)
    assert len(train) >= 10 and all(r["loss"] > 0 for r in train)
    assert [r["step"] for r in val] == sorted({*range(10, card["steps"] + 1, 10), card["steps"]})
    assert all(0 <= r["accuracy"] <= 1 for r in val)
    assert not any((jobs.job_dir(job_id) / "checkpoints").glob("checkpoint-*"))  # removed once saved


def test_killed_job_resumes_from_its_last_checkpoint(base: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the job process inherits it
    cfg = FinetuneConfig(base=str(base), method="adapters", name="toy-resumed", publish=False,
                         data=DataSpec(str(_toy_csv(tmp_path / "toy.csv")), "review", "sentiment"),
                         method_config={"bottleneck": 8},
                         train={"epochs": 4, "batch_size": 6, "learning_rate": 0.01, "eval_steps": 0,
                                "save_steps": 5})
    job_id = jobs.start("finetune", cfg.to_dict())
    ckpts = jobs.jobs_dir() / job_id / "checkpoints"
    deadline = time.time() + 60
    while not list(ckpts.glob("checkpoint-*/.complete")):
        assert time.time() < deadline and jobs.status(job_id)["state"] in jobs.ACTIVE, jobs.log_tail(job_id)
        time.sleep(0.05)
    os.killpg(os.getpgid(int(jobs.status(job_id)["pid"])), signal.SIGKILL)
    while jobs.status(job_id)["state"] != "interrupted":
        assert time.time() < deadline + 20
        time.sleep(0.2)
    saved = max(int(p.parent.name.split("-")[1]) for p in ckpts.glob("checkpoint-*/.complete"))

    jobs.resume(job_id)
    st = jobs.wait(job_id, timeout=120)
    assert st["state"] == "done", jobs.log_tail(job_id)
    res = jobs.result(job_id)
    assert res is not None and res["resumed_from_step"] == saved > 0
    expected = -(-res["data"]["train"]["size"] // 6) * 4
    assert res["steps"] == expected and not res["published"] and res["model_id"] is None
    train, _ = _metric_records(job_id)
    steps = [r["step"] for r in train]
    assert steps == sorted(set(steps)) and steps[-1] == expected  # no records kept from the steps that were redone
    assert {"event": "resumed", "step": saved}.items() <= next(r for r in jobs.metrics(job_id) if "event" in r).items()

    assert store.model_path("toy-resumed") is None  # private to the job until saved
    private = load(res["path"], device="cpu")
    assert private.id == f"job:{job_id}"
    save_to_store(job_id, "toy-resumed")
    stored = load("toy-resumed", device="cpu")
    assert stored.id == "toy-resumed"
    texts = ["good fun", "the worst"]
    np.testing.assert_allclose(stored.predict_proba(texts), private.predict_proba(texts), atol=1e-6)
    with pytest.raises(LoupeError, match="already has"):
        save_to_store(job_id, "toy-resumed")


@pytest.mark.parametrize("content,message", [
    (b"text,label\nfine,1\nok,0\n", "Missing column"),
    (b"review,sentiment\nfine,pos\nok,pos\n", "Only one class"),
    (("review,sentiment\n" + "".join(f"t{i},c{i}\n" for i in range(51))).encode(), "at most 50"),
    ("review,sentiment\ncaf\u00e9,pos\n".encode("latin-1"), "not valid UTF-8"),
])
def test_bad_csv_gets_its_message(content: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        load_data(DataSpec(str(path), "review", "sentiment"))


def test_empty_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [f"{w},{LABELS[i % 2]}" for i, w in enumerate(POS + NEG)] + [",pos", "  ,neg"]
    path = tmp_path / "gaps.csv"
    path.write_text("review,sentiment\n" + "\n".join(rows) + "\n", encoding="utf-8")
    summary = load_data(DataSpec(str(path), "review", "sentiment", validation_fraction=0.25)).summary()
    assert [summary[k]["size"] for k in ("train", "validation", "test")] == [7, 3, 2]  # 25% of 12; 1 test a class
    assert "Dropped 2 row(s)" in summary["notes"][0]
    assert all(set(summary[k]["classes"]) == set(LABELS) for k in ("train", "validation", "test"))


def test_rotten_tomatoes_sample_is_seeded() -> None:
    a, b = load_data(DataSpec("rt", limit=50, validation_limit=20), seed=3), load_data(DataSpec("rt", limit=50), 3)
    assert len(a.train) == 50 and len(a.validation) == 20 and len(a.test) > 1000
    assert a.train.texts == b.train.texts and a.labels == ["negative", "positive"]
    rows = {k: set(v.rows) for k, v in a.parts().items()}  # the fixed split by movie: disjoint, test in full
    assert not rows["train"] & rows["test"] and not rows["validation"] & rows["test"]
    assert not rows["train"] & rows["validation"] and len(rows["test"]) == len(a.test)
    summary = a.summary()
    assert "by movie" in summary["split"] and "held out" in summary["test"]["role"]


def _rows(path: Path, n: int = 100, classes: tuple[str, ...] = ("neg", "pos")) -> Path:
    """A CSV of ``n`` distinct texts, labels cycling through ``classes``."""
    path.write_text("review,sentiment\n" + "".join(f"text number {i},{classes[i % len(classes)]}\n" for i in range(n)),
                    encoding="utf-8")
    return path


def test_csv_is_split_three_ways_held_out_and_seeded(tmp_path: Path) -> None:
    path = _rows(tmp_path / "rows.csv", 100, ("a", "b", "c", "d"))
    splits = load_data(DataSpec(str(path), "review", "sentiment"))
    parts = splits.parts()
    assert {k: len(v) for k, v in parts.items()} == {"train": 80, "validation": 10, "test": 10}  # 25 a class
    rows = {k: set(v.rows) for k, v in parts.items()}
    assert rows["train"] | rows["validation"] | rows["test"] == set(range(100))
    assert not rows["train"] & rows["validation"] and not rows["train"] & rows["test"]
    assert not rows["validation"] & rows["test"]
    for ds in parts.values():  # stratified: every class in every split; rows and texts line up
        assert set(ds.labels) == {0, 1, 2, 3}
        assert ds.texts == [f"text number {r}" for r in ds.rows]
    # The split depends on the split seed only: a new training seed keeps the same test set.
    assert load_data(DataSpec(str(path), "review", "sentiment"), seed=99).test.rows == splits.test.rows
    other = load_data(DataSpec(str(path), "review", "sentiment", split_seed=1))
    assert other.test.rows != splits.test.rows
    summary = splits.summary()
    assert "80% train / 10% validation / 10% test" in summary["split"]
    assert "checkpoint" in summary["validation"]["role"] and "held out" in summary["test"]["role"]


def test_a_class_too_small_for_every_split_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text("review,sentiment\n" + "".join(f"text {i},big\n" for i in range(30)) + "rare one,rare\n"
                    "rare two,rare\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"'rare' \(2\).*at least 3"):
        load_data(DataSpec(str(path), "review", "sentiment"))
    with pytest.raises(DatasetError, match="leave rows for training"):
        validate_config(FinetuneConfig(name="x", data=DataSpec(str(path), validation_fraction=0.5, test_fraction=0.5)))


def test_own_validation_and_test_files_are_respected(tmp_path: Path) -> None:
    train = _rows(tmp_path / "train.csv", 60)
    test = tmp_path / "test.csv"
    test.write_text("review,sentiment\nfresh text one,pos\nfresh text two,neg\ntext number 3,pos\n", encoding="utf-8")
    splits = load_data(DataSpec(str(train), "review", "sentiment", test_source=str(test)))
    assert splits.test.texts == ["fresh text one", "fresh text two", "text number 3"] and splits.test.rows == [0, 1, 2]
    assert splits.test.labels == [1, 0, 1]  # label ids follow the training file's classes
    assert len(splits.train) + len(splits.validation) == 60 and len(splits.validation) == 6  # 10% of train.csv
    assert any("1 of the 3 test texts also occur in the training file" in n for n in splits.notes)
    assert "test from test.csv" in splits.how
    val = tmp_path / "val.csv"
    val.write_text("review,sentiment\nanother,neg\nmore,pos\n", encoding="utf-8")
    both = load_data(DataSpec(str(train), "review", "sentiment", validation_source=str(val), test_source=str(test)))
    assert len(both.train) == 60 and both.validation.texts == ["another", "more"]
    test.write_text("review,sentiment\nodd,maybe\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="'maybe' do not occur in the training file"):
        load_data(DataSpec(str(train), "review", "sentiment", test_source=str(test)))
    with pytest.raises(DatasetError, match="own validation and test splits"):
        validate_config(FinetuneConfig(name="x", data=DataSpec("rt", test_source=str(test))))


def test_test_metrics_come_from_rows_never_trained_on_or_used_to_choose(base: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The job trains on train, selects on validation (early stopping) and scores test once, on held-out rows."""
    path = _rows(tmp_path / "rows.csv", 120)
    seen: dict[str, TextDataset] = {}
    scored: list[tuple[TextDataset, dict[str, Any]]] = []
    make_trainer_, evaluate_ = finetune_job.make_trainer, finetune_job._evaluate

    def spy_trainer(model: Any, tokenizer: Any, train: TextDataset, validation: TextDataset, *a: Any,
                    **kw: Any) -> Any:
        seen["train"], seen["selection"] = train, validation
        return make_trainer_(model, tokenizer, train, validation, *a, **kw)

    def spy_evaluate(handle: Any, ds: TextDataset, *a: Any) -> dict[str, Any]:
        out = evaluate_(handle, ds, *a)
        scored.append((ds, out))
        return out

    monkeypatch.setattr(finetune_job, "make_trainer", spy_trainer)
    monkeypatch.setattr(finetune_job, "_evaluate", spy_evaluate)
    cfg = FinetuneConfig(base=str(base), method="head_only", name="toy-held-out",
                         data=DataSpec(str(path), "review", "sentiment"),
                         train={"epochs": 2, "batch_size": 16, "learning_rate": 0.05, "eval_steps": 4,
                                "early_stopping_patience": 3})
    job_id, status = run_here(cfg)
    assert status["state"] == "done", jobs.log_tail(job_id)
    card = store.read_card(store.model_path("toy-held-out"))
    test = card["metrics"]["test"]
    tested = [ds for ds, m in scored if m["confusion_matrix"] == test["confusion_matrix"]
              and m["accuracy"] == test["accuracy"]]
    assert tested, "the test metrics match no evaluated dataset"
    test_ds = tested[-1]
    # Held out: no test text was trained on or used to pick the checkpoint, and it was scored once.
    assert not set(test_ds.texts) & set(seen["train"].texts)
    assert not set(test_ds.texts) & set(seen["selection"].texts)
    assert sum(ds is test_ds for ds, _ in scored) == 1
    # The split is recorded by row; its parts are disjoint and cover the file.
    rows = {k: set(v["rows"]) for k, v in json.loads((jobs.job_dir(job_id) / "splits.json").read_text()).items()}
    assert rows["test"] == set(test_ds.rows) and rows["validation"] == set(seen["selection"].rows)
    assert rows["train"] == set(seen["train"].rows)
    assert not rows["train"] & rows["test"] and not rows["validation"] & rows["test"]
    assert not rows["train"] & rows["validation"]
    assert rows["train"] | rows["validation"] | rows["test"] == set(range(120))
    # The reported test figures are the saved model's predictions on exactly those rows.
    handle = load("toy-held-out", device="cpu")
    again = classification_metrics(np.asarray(test_ds.labels), handle.predict_proba(test_ds.texts).argmax(1), 2)
    assert again["confusion_matrix"] == test["confusion_matrix"] and again["accuracy"] == test["accuracy"]
    # Every figure names its split, in the card, the job's result and the live records.
    assert test["split"] == "test" and test["size"] == len(test_ds) == card["data"]["test"]["size"] == 12
    assert card["metrics"]["validation"]["split"] == "validation"
    assert card["selection"]["split"] == "validation" and card["selection"]["metric"] == "accuracy"
    _, val = _metric_records(job_id)  # the saved weights are those of the best validation step
    assert card["selection"]["step"] == max(val, key=lambda r: (r["accuracy"], -r["step"]))["step"]
    assert jobs.result(job_id)["metrics"] == card["metrics"]
    assert all(r["split"] in ("train", "validation") for r in jobs.metrics(job_id) if "split" in r)


def test_validate_config_refuses_bad_settings(tmp_path: Path, tiny_model_dir: Path) -> None:
    ok = FinetuneConfig(name="fresh-name")
    assert validate_config(ok) is ok
    with pytest.raises(LoupeError, match="Unknown fine-tuning method"):
        validate_config(FinetuneConfig(method="qlora", name="x"))
    with pytest.raises(LoupeError, match="no setting"):
        validate_config(FinetuneConfig(method="bitfit", method_config={"r": 4}, name="x"))
    with pytest.raises(LoupeError, match=r"lora.r=0 is below its minimum"):
        validate_config(FinetuneConfig(method="lora", method_config={"r": 0}, name="x"))
    with pytest.raises(LoupeError, match="not a usable model name"):
        validate_config(FinetuneConfig(name="../escape"))
    with pytest.raises(LoupeError, match="Early stopping"):
        validate_config(FinetuneConfig(name="x", train={"eval_steps": 0, "early_stopping_patience": 2}))
    shutil.copytree(tiny_model_dir, store.models_dir() / "taken")
    with pytest.raises(LoupeError, match="already has"):
        validate_config(FinetuneConfig(name="taken"))
    assert validate_config(FinetuneConfig(name="taken", overwrite=True)).overwrite
    assert json.loads(json.dumps(ok.to_dict())) == FinetuneConfig.from_dict(ok.to_dict()).to_dict()
