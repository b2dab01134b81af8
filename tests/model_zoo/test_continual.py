"""Continual fine-tuning: the transfer formulas, EWC and its Fisher, the replay buffer, the heads, and the job
(matrix, card, a saved model that loads, Cancel between tasks and Resume), on a tiny random BERT."""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from model_zoo import cli, jobs, load, store
from model_zoo.continual import (
    EWC,
    ContinualConfig,
    ReplayBuffer,
    extend_head,
    fisher_diagonal,
    predict,
    restrict_head,
    run_continual,
    run_here,
    transfer,
    validate_config,
)
from model_zoo.continual import job as continual_job
from model_zoo.continual import run as continual_run
from model_zoo.continual.bundled import bundled_splits, passages
from model_zoo.continual.heads import allowed_columns, label_union, task_columns
from model_zoo.continual.model import prepare
from model_zoo.continual.steps import accuracy, fisher_of, train_step, training_set
from model_zoo.continual.tasks import load_tasks
from model_zoo.errors import LoupeError
from model_zoo.training import TrainConfig
from tests.conftest import build_spread_bert

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = {  # three toy tasks: sentiment, then two domains of one new label set
    "a": ([["bad", "awful", "dull", "worst"], ["good", "great", "fun", "best"]], ["neg", "pos"]),
    "b": ([["cat", "kitten", "meow", "purr"], ["dog", "puppy", "bark", "woof"]], ["cat", "dog"]),
    "c": ([["lion", "tiger", "lynx", "puma"], ["wolf", "fox", "coyote", "dingo"]], ["cat", "dog"]),
}


def _csv(path: Path, key: str, n: int = 50, seed: int = 0) -> str:
    words, labels = WORDS[key]
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(n):
            writer.writerow([" ".join(rng.sample(words[i % 2], 3)), labels[i % 2]])
    return str(path)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_spread_bert(tmp_path_factory.mktemp("continual") / "tiny-base")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("toy")
    return [_csv(folder / f"{k}.csv", k, seed=i) for i, k in enumerate(WORDS)]




def _config(base: Path, toy: list[str], **kw: Any) -> ContinualConfig:
    values: dict[str, Any] = dict(
        base=str(base), method="full", sequence="", tasks=[{"source": f} for f in toy], limit=0, test_limit=0,
        strategies=["naive", "replay"], replay_size=16, fisher_samples=8,
        train={"epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "warmup_ratio": 0.0, "weight_decay": 0.0})
    values.update(kw)
    return ContinualConfig.from_dict(values)


# --- the formulas ----------------------------------------------------------------------------------------------
def test_transfer_formulas_on_a_hand_written_matrix() -> None:
    r = [[0.9, 0.1, 0.2], [0.6, 0.8, 0.3], [0.5, 0.7, 0.9]]
    b = [0.5, 0.2, 0.25]
    t = transfer(r, b)
    assert t.average_accuracy == pytest.approx((0.5 + 0.7 + 0.9) / 3)
    assert t.bwt == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)  # negative: forgetting
    assert t.fwt == pytest.approx(((0.1 - 0.2) + (0.3 - 0.25)) / 2)
    no_forgetting = transfer([[0.9, 0.1], [0.95, 0.8]], [0.5, 0.5])
    assert no_forgetting.bwt == pytest.approx(0.05) and no_forgetting.fwt == pytest.approx(-0.4)
    partial = transfer(r[:2], b)  # a cancelled run: what its rows allow
    assert partial.average_accuracy is None and partial.bwt is None
    assert partial.fwt == pytest.approx(t.fwt)
    with pytest.raises(ValueError):
        transfer([[0.5, 0.5], [0.5]], b[:2])


# --- EWC -------------------------------------------------------------------------------------------------------
class _TwoWeights(nn.Module):
    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))
        self.b = nn.Parameter(torch.tensor(b))


def test_ewc_penalty_is_a_hand_computation_and_zero_at_the_anchor() -> None:
    model = _TwoWeights(3.0, 0.0)
    ewc = EWC(4.0, {"a": torch.tensor(2.0), "b": torch.tensor(0.5)}, {"a": torch.tensor(1.0), "b": torch.tensor(-1.0)})
    penalty = ewc.penalty(model)
    assert penalty.item() == pytest.approx(4.0 / 2 * (2.0 * (3 - 1) ** 2 + 0.5 * (0 + 1) ** 2))  # 17
    penalty.backward()
    assert float(model.a.grad) == pytest.approx(4.0 * 2.0 * (3 - 1))  # lambda * F * (theta - theta*)
    at_anchor = _TwoWeights(1.0, -1.0)
    assert ewc.penalty(at_anchor).item() == 0.0
    assert EWC.start(4.0).penalty(model).item() == 0.0  # nothing consolidated yet


def test_fisher_is_the_mean_squared_gradient_and_zero_for_a_weight_the_loss_ignores() -> None:
    model = _TwoWeights(0.5, 2.0)  # the loss reads a only
    data = [(1.0, 1.0), (2.0, 0.0), (-1.0, 0.5)]

    def loss(m: nn.Module, ex: tuple[float, float]) -> torch.Tensor:
        x, y = ex
        return (m.a * x - y) ** 2

    fisher = fisher_diagonal(model, data, loss)
    expected = np.mean([(2 * (0.5 * x - y) * x) ** 2 for x, y in data])
    assert float(fisher["a"]) == pytest.approx(expected)
    assert float(fisher["b"]) == 0.0
    online = EWC.start(1.0).consolidate(model, fisher, 1.0).consolidate(model, fisher, 0.5)
    assert float(online.fisher["a"]) == pytest.approx(1.5 * expected) and online.tasks == 2
    assert float(online.anchor["b"]) == 2.0


def test_fisher_of_another_tasks_head_rows_is_zero_in_task_incremental(base: Path, toy: list[str]) -> None:
    cfg = _config(base, toy, scenario="task")
    tasks = load_tasks(cfg)
    labels = label_union([t.labels for t in tasks])
    columns = task_columns([t.labels for t in tasks], labels)
    start = prepare(str(base), "full", None, labels)
    fisher = fisher_of(start.prep.model, start.prep.tokenizer, tasks[0], 0, columns, "task", len(labels), 6, 32, 0)
    head = fisher["classifier.weight"]
    assert head[columns[0]].abs().sum() > 0  # the task's own rows matter
    assert float(head[columns[1]].abs().sum()) == 0.0  # the other task's rows cannot change its loss
    assert all(float(f.min()) >= 0 for f in fisher.values())


def test_a_huge_lambda_holds_the_weights_that_lambda_zero_lets_move(base: Path, toy: list[str]) -> None:
    cfg = _config(base, toy)
    tasks = load_tasks(cfg)
    labels = label_union([t.labels for t in tasks])
    columns = task_columns([t.labels for t in tasks], labels)
    tcfg = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-2, warmup_ratio=0.0, weight_decay=0.0)
    moved = {}
    for lam in (0.0, 1e9):
        start = prepare(str(base), "full", None, labels, seed=0)
        model = start.prep.model
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        ewc = EWC.start(lam).consolidate(model, {n: torch.ones_like(p) for n, p in model.named_parameters()})
        data, targets = training_set(1, tasks, columns, "class", len(labels))
        train_step(model, start.prep.tokenizer, data, targets, tcfg, Path(cfg.base).parent / f"out-{lam}", ewc)
        # the encoder's and the head's weights (an unused word's embedding moves in neither run)
        moved[lam] = float(np.mean([(p.detach().cpu() - before[n].cpu()).abs().mean().item()
                                    for n, p in model.named_parameters() if "embeddings" not in n]))
    assert moved[0.0] > 2 * tcfg.learning_rate  # free weights travel several steps' worth
    assert moved[1e9] < tcfg.learning_rate  # held ones only jitter around the anchor (Adam's step size)
    assert moved[1e9] < moved[0.0] / 4


# --- replay ----------------------------------------------------------------------------------------------------
def test_balanced_replay_buffer_has_the_size_and_class_balance_asked_for() -> None:
    buf = ReplayBuffer(20, "balanced", seed=1)
    buf.add_task(0, [0] * 30 + [1] * 10)
    assert len(buf) == 20 and buf.counts() == {(0, 0): 10, (0, 1): 10}
    before = {(it.task, it.index) for it in buf.items}
    buf.add_task(1, [0] * 20 + [1] * 20)
    assert len(buf) == 20 and set(buf.counts().values()) == {5}  # 4 (task, class) groups, 5 places each
    assert {(it.task, it.index) for it in buf.items if it.task == 0} <= before  # dropped examples never return
    small = ReplayBuffer(20, "balanced", seed=1)
    small.add_task(0, [0] * 30 + [1] * 3)  # a class with fewer examples than its share keeps all it has
    assert len(small) == 20 and small.counts() == {(0, 0): 17, (0, 1): 3}
    with pytest.raises(ValueError):
        buf.add_task(1, [0, 1])


def test_random_replay_buffer_is_a_uniform_sample_of_the_stream() -> None:
    buf = ReplayBuffer(50, "random", seed=0)
    buf.add_task(0, [0] * 900 + [1] * 100)
    buf.add_task(1, [0] * 1000)
    counts = buf.counts()
    assert len(buf) == 50 and buf.tasks == [0, 1]
    assert 10 <= counts.get((0, 0), 0) + counts.get((0, 1), 0) <= 40  # about half from each task
    again = ReplayBuffer.from_dict(json.loads(json.dumps(buf.to_dict())))
    assert again.items == buf.items


def test_a_training_step_mixes_in_only_earlier_tasks_examples(base: Path, toy: list[str]) -> None:
    cfg = _config(base, toy)
    tasks = load_tasks(cfg)
    labels = label_union([t.labels for t in tasks])
    columns = task_columns([t.labels for t in tasks], labels)
    buf = ReplayBuffer(12, "balanced")
    buf.add_task(0, tasks[0].train.labels)
    buf.add_task(1, tasks[1].train.labels)
    data, targets = training_set(2, tasks, columns, "task", len(labels), buf)
    assert len(data) == len(tasks[2].train) + 12
    replayed = data.texts[len(tasks[2].train):]
    assert all(t in tasks[0].train.texts or t in tasks[1].train.texts for t in replayed)
    assert not set(replayed) & set(tasks[2].train.texts)
    for k, name in enumerate(data.label_names):  # each replayed example keeps its own task's columns
        task = next(i for i, t in enumerate(tasks) if name.startswith(f"{t.name}/"))
        assert set(np.flatnonzero(targets.allowed[k].numpy())) == set(columns[task])
    _, class_targets = training_set(1, tasks, columns, "class", len(labels))
    assert set(np.flatnonzero(class_targets.allowed[0].numpy())) == {0, 1, 2, 3}  # every label seen so far
    assert allowed_columns("class", columns, 0, 0) == [0, 1]  # later tasks' columns are left out


# --- heads -----------------------------------------------------------------------------------------------------
def test_task_incremental_prediction_never_picks_another_tasks_label() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 6))
    logits[:, 4:] += 100.0  # another task's columns dominate
    picked = predict(logits, [0, 1, 2])
    assert set(picked.tolist()) <= {0, 1, 2} and len(set(picked.tolist())) > 1
    assert set(predict(logits).tolist()) <= {4, 5}  # class-incremental: argmax over all
    gold = logits[:, :3].argmax(axis=1)
    assert accuracy(logits, gold.tolist(), [0, 1, 2], "task") == 1.0
    assert accuracy(logits, gold.tolist(), [0, 1, 2], "class") == 0.0


def test_extended_head_keeps_the_rows_of_labels_the_base_knows(tiny_model_dir: Path) -> None:
    handle = load(str(tiny_model_dir), device="cpu")
    old = handle.model.classifier.weight.detach().clone()
    kept = extend_head(handle.model, ["positive", "cat", "negative", "dog"])
    new = handle.model.classifier.weight.detach()
    assert kept == ["positive", "negative"] and new.shape[0] == 4
    assert torch.equal(new[0], old[1]) and torch.equal(new[2], old[0])
    assert handle.model.config.id2label == {0: "positive", 1: "cat", 2: "negative", 3: "dog"}
    ids = handle.tokenizer(["a good film"], return_tensors="pt")
    with torch.no_grad():
        full = handle.model(**ids).logits
        part = restrict_head(handle.model, [2, 0])(**ids).logits
    assert torch.allclose(part, full[:, [2, 0]])


# --- data --------------------------------------------------------------------------------------------------------
def test_passages_keep_whole_sentences_within_the_word_limits() -> None:
    text = "One two three. " * 3 + " ".join(["word"] * 130) + ". Short."
    parts = passages(text, min_words=8, max_words=60)
    assert all(8 <= len(p.split()) <= 60 for p in parts)
    assert parts[0] == "One two three. One two three. One two three."


def test_the_bundled_politics_tasks_are_split_without_leaks() -> None:
    conv = bundled_splits("conventions")
    import pandas as pd

    from model_zoo.continual.bundled import _data_file

    speakers = pd.read_csv(_data_file("political_data.csv"))["speaker"].fillna("(unnamed)").astype(str)
    by_split = {s: {speakers[r] for r in conv[s].rows} for s in ("train", "test")}
    assert by_split["train"] and by_split["test"] and not by_split["train"] & by_split["test"]  # no speaker in both
    share = {s: conv[s].class_counts()["Democratic"] / len(conv[s]) for s in ("train", "test")}
    assert abs(share["train"] - share["test"]) < 0.05  # the split keeps the party balance
    assert 0.15 < len(conv["test"]) / (len(conv["train"]) + len(conv["test"])) < 0.25
    deb = bundled_splits("debates")
    debates = pd.read_csv(_data_file("presidential_debates_2016.csv.gz"))["debate"].astype(str)
    assert {debates[r] for r in deb["test"].rows} == {"3rd"} and "3rd" not in {debates[r] for r in deb["train"].rows}
    assert conv["train"].label_names == deb["train"].label_names == ["Democratic", "Republican"]
    tasks = load_tasks(ContinualConfig(limit=100, test_limit=50))
    assert [t.source for t in tasks] == ["rt", "debates", "conventions"]
    assert [len(t.train) for t in tasks] == [100] * 3 and [len(t.test) for t in tasks] == [50] * 3


# --- the job -----------------------------------------------------------------------------------------------------
def test_the_job_writes_the_matrix_and_a_card_and_the_model_loads(base: Path, toy: list[str]) -> None:
    cfg = _config(base, toy, strategies=["naive", "replay+ewc"], name="cl-toy", publish=True)
    job_id, status = run_here(cfg)
    assert status["state"] == "done", jobs.log_tail(job_id)
    res = jobs.result(job_id)
    assert res is not None and res["order"] == ["naive", "replay+ewc"]
    tasks = load_tasks(cfg)
    for name, model_id in (("naive", "cl-toy-naive"), ("replay+ewc", "cl-toy-replay-ewc")):
        summary = res["strategies"][name]
        matrix = summary["matrix"]
        assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
        assert summary["model_id"] == model_id and store.model_path(model_id) is not None
        card = store.read_card(store.model_path(model_id))
        entry = card["continual"]
        assert entry["accuracy_matrix"] == matrix and entry["strategy"] == name and entry["scenario"] == "class"
        assert [t["name"] for t in entry["tasks"]] == ["a", "b", "c"]
        assert card["labels"] == ["neg", "pos", "cat", "dog"] and card["metrics"]["test"]["accuracy"] == \
            pytest.approx(np.mean(matrix[-1]), abs=1e-4)
        handle = load(model_id, device="cpu")  # one plain classifier every page can explain
        assert handle.label_names == card["labels"]
        for task, cols, acc in zip(tasks, entry["task_columns"], matrix[-1]):
            probs = handle.predict_proba(task.test.texts)
            assert accuracy(probs, task.test.labels, cols, "class") == pytest.approx(acc, abs=1e-4)
    assert res["strategies"]["naive"]["matrix"][0] == res["strategies"]["replay+ewc"]["matrix"][0]  # shared task 1
    records = [r for r in jobs.metrics(job_id) if r.get("kind") == "row"]
    assert {(r["strategy"], r["step"]) for r in records} == {(s, i) for s in res["order"] for i in (1, 2)}
    settings = store.read_card(store.model_path("cl-toy-replay-ewc"))["continual"]["strategy_settings"]
    assert settings["replay_size"] == 16 and settings["ewc_lambda"] == 1e5 and "online EWC" in settings["ewc"]
    assert "replay_size" not in store.read_card(store.model_path("cl-toy-naive"))["continual"]["strategy_settings"]


def test_cancel_between_tasks_keeps_the_finished_steps_and_resume_goes_on(
        base: Path, toy: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(base, toy, strategies=["naive", "ewc"])
    folder = jobs.create("continual", validate_config(cfg).to_dict())
    evaluate = continual_run._Run.evaluate
    calls = {"n": 0}

    def cancel_after_the_second_task(self: Any, model: nn.Module) -> list[float]:
        row = evaluate(self, model)
        calls["n"] += 1
        if calls["n"] == 3:  # the starting model, task 1, then naive's task 2: Cancel before task 3
            (folder / "CANCEL").touch()
        return row

    monkeypatch.setattr(continual_run._Run, "evaluate", cancel_after_the_second_task)
    jobs.run_in_process(folder)
    assert jobs.status(folder.name)["state"] == "cancelled"
    rows = [r for r in jobs.metrics(folder.name) if r.get("kind") == "row"]
    assert [(r["strategy"], r["step"]) for r in rows] == [("naive", 1)]  # the finished step is kept
    assert (folder / "checkpoints" / "naive" / "model.safetensors").is_file()
    monkeypatch.setattr(continual_run._Run, "evaluate", evaluate)
    (folder / "CANCEL").unlink()
    jobs.run_in_process(folder, resume_=True)
    assert jobs.status(folder.name)["state"] == "done", jobs.log_tail(folder.name)
    res = jobs.result(folder.name)
    assert res is not None and res["strategies"]["naive"]["matrix"][1] == rows[0]["row"]  # not trained again
    assert "naive: resuming after task 2" in capsys.readouterr().out  # the job ran in this process
    assert len(res["strategies"]["ewc"]["matrix"]) == 3


def test_run_continual_takes_a_dict_and_an_observer(base: Path, toy: list[str]) -> None:
    seen: list[tuple[str, int, list[str]]] = []

    class Watch:
        def reference(self, task: Any, handle: Any) -> dict[str, Any]:
            seen.append(("reference", 0, handle.label_names))
            return {"n": 1}

        def after_step(self, strategy: str, step: int, handle: Any) -> dict[str, Any]:
            seen.append((strategy, step, handle.label_names))
            return {"step": step}

    cfg = _config(base, toy, strategies=["naive"], scenario="task", train={"epochs": 1, "batch_size": 16})
    folder = jobs.create("continual", cfg.to_dict())
    res = run_continual(cfg.to_dict(), jobs.JobContext(folder, cfg.to_dict()), Watch())
    assert [s[:2] for s in seen] == [("reference", 0), ("naive", 1), ("naive", 2)]
    assert all(s[2] == ["neg", "pos"] for s in seen)  # task-incremental: the first task's own head
    assert res["strategies"]["naive"]["observed"] == [{"step": 1}, {"step": 2}]


# --- settings and the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"strategies": ["naive", "forgetful"]}, "Unknown strategy"),
    ({"strategies": []}, "at least one strategy"),
    ({"tasks": [{"source": "rt"}]}, "at least two tasks"),
    ({"tasks": [{"source": "rt"}, {"source": "/no/such.csv"}]}, "No data file"),
    ({"sequence": "politics"}, "not both"),
    ({"publish": True, "name": "bad name!"}, "not a usable model name"),
])
def test_bad_settings_are_refused_with_a_message(change: dict[str, Any], message: str, base: Path,
                                                 toy: list[str]) -> None:
    with pytest.raises(LoupeError, match=message):
        validate_config(_config(base, toy, **change))


def test_the_command_line_builds_the_config_from_its_flags(toy: list[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    continual_job.add_cli(sub)
    args = parser.parse_args(["continual", "--continue-from", "rt-sentiment-minilm", "--tasks", ",".join(toy),
                              "--strategy", "replay,ewc", "--replay-size", "50", "--replay-sampling", "random",
                              "--ewc-lambda", "5", "--method", "full", "--epochs", "2", "--name", "m",
                              "--scenario", "task", "--text-column", "review"])
    cfg = continual_job.config_from_args(args)
    assert (cfg.base, cfg.strategies, cfg.replay_size, cfg.replay_sampling, cfg.ewc_lambda, cfg.method) == \
        ("rt-sentiment-minilm", ["replay", "ewc"], 50, "random", 5.0, "full")
    assert cfg.sequence == "" and [t["source"] for t in cfg.tasks] == toy and cfg.tasks[0]["text_column"] == "review"
    assert cfg.train == {"epochs": 2.0} and cfg.publish and cfg.scenario == "task"
    assert "continual" in cli.COMMANDS["model_zoo"]


def test_a_base_that_knows_the_first_task_is_scored_not_trained(tiny_model_dir: Path, tmp_path: Path) -> None:
    first = tmp_path / "reviews.csv"
    with open(first, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([f"film {i} was {'good' if i % 2 else 'bad'}", "positive" if i % 2 else "negative"]
                         for i in range(30))
    second = _csv(tmp_path / "b.csv", "b", n=30)
    cfg = ContinualConfig(base=str(tiny_model_dir), method="full", sequence="", tasks=[{"source": str(first)},
                                                                                        {"source": second}],
                          strategies=["naive"], limit=0, test_limit=0, train={"epochs": 1, "batch_size": 16})
    job_id, status = run_here(cfg)
    assert status["state"] == "done", jobs.log_tail(job_id)
    res = jobs.result(job_id)
    assert res is not None and res["first_task"] == "known"
    assert res["kept_labels"] == ["negative", "positive"]  # the base's trained rows stay in the extended head
    assert res["first_row"] == res["starting_accuracy"]  # scored as it came, not trained
    assert res["shared"]["first_task_seconds"] < 60
    forced = ContinualConfig.from_dict({**cfg.to_dict(), "first_task": "train"})
    assert jobs.result(run_here(forced)[0])["first_task"] == "trained"


def _reviews(path: Path, n: int = 30) -> str:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "sentiment"])
        writer.writerows([f"film {i} was {'good' if i % 2 else 'bad'}", "positive" if i % 2 else "negative"]
                         for i in range(n))
    return str(path)


def test_finetune_continue_from_trains_the_new_data_and_scores_the_models_own(
        tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``finetune --continue-from MODEL --data NEW``: a continual job whose first task is the data on MODEL's card."""
    import shutil

    model = tmp_path / "reviewer"
    shutil.copytree(tiny_model_dir, model)
    old = _reviews(tmp_path / "reviews.csv")
    store.write_card(model, {"data": {"spec": {"source": old, "text_column": "review", "label_column": "sentiment"}}})
    new = _csv(tmp_path / "pets.csv", "b", n=30)
    argv = ["finetune", "--continue-from", str(model), "--data", new, "--method", "full", "--epochs", "1",
            "--batch-size", "16", "--replay-size", "12", "--quiet"]
    assert cli.main("model_zoo", "", argv) == 0
    job = jobs.list_jobs("continual")[0]
    cfg = jobs.config(job["id"])["config"]
    assert [t["source"] for t in cfg["tasks"]] == [old, new] and cfg["tasks"][0]["text_column"] == "review"
    assert (cfg["first_task"], cfg["strategies"], cfg["replay_size"]) == ("known", ["replay"], 12)
    res = jobs.result(job["id"])
    assert res is not None and res["first_task"] == "known" and res["order"] == ["replay"]
    assert "replay: R[i, j]" in capsys.readouterr().out


@pytest.mark.parametrize(("card", "argv", "message"), [
    ({}, ["--data", "NEW"], "does not say what data"),
    ({"data": {"spec": {"source": "/gone/old.csv"}}}, ["--data", "NEW"], "no longer there"),
    ({"data": {"spec": {"source": "rt"}}}, [], "Name the new data"),
    ({"data": {"spec": {"source": "rt"}}}, ["--data", "rt"], "trained on rt already"),
    ({"data": {"spec": {"source": "rt"}}}, ["--data", "NEW", "--method", "bitfit"], "full or lora"),
    ({"data": {"spec": {"source": "rt"}}}, ["--data", "NEW", "--dp"], "does not combine"),
])
def test_finetune_continue_from_refuses_what_it_cannot_do(tiny_model_dir: Path, tmp_path: Path, card: dict[str, Any],
                                                          argv: list[str], message: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    store.write_card(model, card)
    new = _csv(tmp_path / "pets.csv", "b", n=30)
    assert cli.main("model_zoo", "", ["finetune", "--continue-from", str(model),
                                      *[new if a == "NEW" else a for a in argv]]) == 2
    assert message in capsys.readouterr().err
    assert not jobs.list_jobs("continual")  # refused before a job was made
