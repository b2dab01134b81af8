"""Explanation drift on the first task of a continual run: the measures on known answers, the observer, and the
``forgetting`` job end to end on a tiny random BERT."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from explainers import ExplainerError
from explainers.base import Attribution, Cost, Word
from explainers.continual_drift import DriftObserver, build_drift_config, changed_words, job_config, summarise
from model_zoo import jobs
from model_zoo.continual import ContinualConfig, load_task
from model_zoo.continual.config import TaskSpec
from model_zoo.spec import ConfigError


def _attribution(words: list[str], scores: list[float], probs: tuple[float, float] = (0.3, 0.7)) -> Attribution:
    text = " ".join(words)
    spans, start = [], 0
    for w in words:
        spans.append((start, start + len(w)))
        start += len(w) + 1
    return Attribution(text=text, tokens=tuple(words), offsets=tuple(spans), special=(False,) * len(words),
                       scores=tuple(scores), words=tuple(Word(w, a, b, s, (i,)) for i, (w, (a, b), s) in
                                                          enumerate(zip(words, spans, scores))),
                       target=1, labels=("neg", "pos"), probs=probs, signed=True, method="test", params={},
                       cost=Cost(1, 0.0))


def test_an_unchanged_model_has_no_drift_and_no_changed_word() -> None:
    a = [_attribution(["a", "good", "film"], [0.1, 0.8, -0.2]), _attribution(["dull", "plot"], [-0.5, 0.1])]
    out = summarise(a, a)
    assert out["spearman"] == 1.0 and out["top_k_overlap"] == 1.0 and out["flipped"] == 0.0
    assert out["changed_words"] == [] and out["n"] == 2


def test_the_words_whose_importance_changed_most_come_first() -> None:
    before = [_attribution(["good", "film", "plot"], [1.0, 0.5, 0.1]), _attribution(["Good!", "acting"], [0.4, 0.2])]
    after = [_attribution(["good", "film", "plot"], [0.1, 0.5, 1.0]), _attribution(["Good!", "acting"], [0.2, 0.4])]
    rows = changed_words(before, after, top=3)
    # normalised by each explanation's largest |score|: good 1.0 -> 0.1 and 1.0 -> 0.5 ("Good!" is "good")
    assert [r["word"] for r in rows] == ["plot", "good", "acting"]
    assert rows[0]["change"] == pytest.approx(0.9) and rows[1]["change"] == pytest.approx(-0.7)
    assert rows[1]["count"] == 2 and rows[2]["change"] == pytest.approx(0.5)
    scaled = [_attribution(["good", "film", "plot"], [10.0, 5.0, 1.0])]  # a surer model, the same reasons
    assert changed_words(before[:1], scaled) == [
        {"word": w, "before": s, "after": s, "change": 0.0, "count": 1} for w, s in (("film", 0.5), ("good", 1.0),
                                                                                    ("plot", 0.1))]
    drift = summarise(before, after)
    assert drift["spearman"] == pytest.approx(-1.0) and drift["top_k_overlap"] == 0.0
    with pytest.raises(ValueError):
        changed_words(before, after[::-1])


def test_the_observer_explains_the_first_tasks_class_and_sees_no_drift_on_the_same_model(
        tiny_handle: Any, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows([f"a {'good' if i % 2 else 'bad'} film number {i}", "positive" if i % 2 else "negative"]
                    for i in range(40))
    task = load_task(TaskSpec(source=str(path)), 0)
    observer = DriftObserver(build_drift_config({"explainer": "saliency", "n_sentences": 4, "n_show": 2}))
    ref = observer.reference(task, tiny_handle)
    assert ref["n"] == 4 and len(ref["attributions"]) == 2 and ref["texts"] == task.test.texts[:4]
    assert set(ref["targets"]) <= {"negative", "positive"}
    same = observer.after_step("naive", 1, tiny_handle)
    assert same["spearman"] == 1.0 and same["changed_words"] == [] and same["flipped"] == 0.0


def test_bad_drift_settings_are_refused() -> None:
    with pytest.raises(ExplainerError, match="Unknown explainer"):
        build_drift_config({"explainer": "crystal-ball"})
    with pytest.raises(ConfigError):
        build_drift_config({"n_sentences": 0})
    with pytest.raises(ConfigError):
        job_config(ContinualConfig(), {"n_sentences": 10_000})


def test_the_forgetting_job_records_drift_after_every_step(tiny_model_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    files = []
    for k, (words, labels) in enumerate(((("bad awful dull".split(), "good great fun".split()), ("neg", "pos")),
                                         (("cat kitten purr".split(), "dog puppy bark".split()), ("cat", "dog")))):
        rng = random.Random(k)
        files.append(tmp_path / f"{k}.csv")
        with open(files[-1], "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "label"])
            w.writerows([" ".join(rng.sample(words[i % 2], 2)), labels[i % 2]] for i in range(30))
    continual = ContinualConfig(base=str(tiny_model_dir), method="full", sequence="",
                                tasks=[{"source": str(f)} for f in files], strategies=["naive", "replay"],
                                replay_size=8, limit=0, test_limit=0, train={"epochs": 1, "batch_size": 16})
    folder = jobs.create("forgetting", job_config(continual, {"n_sentences": 3, "ig_steps": 4, "n_show": 1}))
    jobs.run_in_process(folder)
    assert jobs.status(folder.name)["state"] == "done", jobs.log_tail(folder.name)
    res = jobs.result(folder.name)
    assert res is not None and res["reference"]["n"] == 3 and res["drift_config"]["explainer"] == "ig"
    for name in ("naive", "replay"):
        observed = res["strategies"][name]["observed"]
        assert len(observed) == 1 and observed[0]["n"] == 3 and len(observed[0]["attributions"]) == 1
        assert -1.0 <= observed[0]["spearman"] <= 1.0
        Attribution.from_dict(observed[0]["attributions"][0])  # the viewer can rebuild it
    records = [r for r in jobs.metrics(folder.name) if r.get("kind") == "observed"]
    assert {(r["strategy"], r["step"]) for r in records} == {("naive", 1), ("replay", 1)}
