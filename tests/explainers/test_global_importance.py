"""Global explanations on known answers: hand-computed pooling, a planted trigger word, crafted shortcut words, the
same aggregate on Ray, the cache and Cancel, the default explainer, the job and the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import explainers.global_importance as gi
import explainers.global_importance.run as gi_run  # where the run looks up models and explainers
from explainers import get
from explainers.base import ExplainerError
from model_zoo import LoupeError, jobs
from model_zoo.data import TextDataset
from model_zoo.jobs import JobContext, read_status
from model_zoo.paths import reports_dir
from model_zoo.spec import ConfigError
from tests.conftest import GT_TRIGGERS, ground_truth_sentences

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ["negative", "positive"]




class Counting:
    """Wraps ``explainers.get`` in the run module so a test can count the sentences explained."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, name: str) -> Any:
        inner, outer = get(name), self

        class Proxy:
            title, Config, signed = inner.title, inner.Config, inner.signed

            def supports(self, handle: Any) -> bool:
                return inner.supports(handle)

            def explain(self, *args: Any, **kwargs: Any) -> Any:
                outer.calls += 1
                return inner.explain(*args, **kwargs)

        return Proxy()


def _rec(text: str, target: int, scores: list[float]) -> dict[str, Any]:
    spans, pos = [], 0
    for word in text.split():
        start = text.index(word, pos)
        spans.append([start, start + len(word)])
        pos = start + len(word)
    assert len(spans) == len(scores)
    return {"target": target, "spans": spans, "scores": scores}


# --- pooling, by hand ---------------------------------------------------------------------------------------

TEXTS = ["Great film, great cast", "A dull film", "great but dull!"]
RECORDS = {0: _rec(TEXTS[0], 1, [0.5, 0.1, 0.3, 0.0]),  # predicted positive
           1: _rec(TEXTS[1], 0, [0.0, 0.6, -0.2]),  # predicted negative
           2: _rec(TEXTS[2], 1, [0.4, 0.0, -0.3])}  # predicted positive


def test_hand_computed_aggregation_of_three_attributions() -> None:
    neg, pos = gi.aggregate(RECORDS, TEXTS, LABELS, top_k=5, min_sentences=2, examples=5)
    # toward positive: great = (0.5 + 0.3 [sentence 0], 0.4 [sentence 2]) -> mean 0.4 over 3 uses in 2 sentences;
    # film = 0.1 (sentence 0) and -(-0.2) (sentence 1, predicted negative: the sign flips) -> mean 0.15;
    # dull = -0.6 (sentence 1, flipped) and -0.3 (sentence 2) -> mean -0.45.
    assert [(w.word, w.count, w.sentences) for w in pos.toward] == [("great", 3, 2), ("film", 2, 2)]
    great, film = pos.toward
    assert great.mean == pytest.approx(0.4) and great.total == pytest.approx(1.2)
    assert film.mean == pytest.approx(0.15) and film.total == pytest.approx(0.3)
    assert [(w.word, w.mean) for w in pos.away] == [("dull", pytest.approx(-0.45))]
    assert pos.away[0].examples == ((1, pytest.approx(-0.6)), (2, pytest.approx(-0.3)))  # strongest push away first
    assert great.examples == ((0, pytest.approx(0.5)), (2, pytest.approx(0.4)))  # per sentence, its stronger use
    # two classes: the negative table is the positive one mirrored
    assert [(w.word, w.mean) for w in neg.toward] == [("dull", pytest.approx(0.45))]
    assert [(w.word, w.mean) for w in neg.away] == [("great", pytest.approx(-0.4)), ("film", pytest.approx(-0.15))]
    # words in fewer sentences than min_sentences are left out ("cast", "a", "but"), but with 1 they count
    assert set(pos.means) == {"great", "film", "dull"}
    loose = gi.aggregate(RECORDS, TEXTS, LABELS, top_k=10, min_sentences=1)[1]
    assert {w.word for w in loose.toward + loose.away} == {"great", "film", "dull"}  # zero means are neither
    assert set(loose.means) == {"great", "film", "dull", "cast", "a", "but"}


def test_three_classes_count_only_the_explained_class() -> None:
    labels = ["a", "b", "c"]
    records = {0: _rec("x y", 0, [0.2, -0.1]), 1: _rec("x y", 2, [0.4, 0.3])}
    a, b, c = gi.aggregate(records, ["x y", "x y"], labels, min_sentences=1)
    assert [(w.word, w.mean) for w in a.toward] == [("x", pytest.approx(0.2))]
    assert [(w.word, w.mean) for w in a.away] == [("y", pytest.approx(-0.1))]
    assert not b.toward and not b.away and not b.means  # nothing was explained for b
    assert [(w.word, w.mean) for w in c.toward] == [("x", pytest.approx(0.4)), ("y", pytest.approx(0.3))]


def test_comparison_of_two_tables() -> None:
    a = gi.aggregate(RECORDS, TEXTS, LABELS, min_sentences=2)
    shifted = {i: {**r, "scores": [s * 2 if TEXTS[i].split()[k].lower().startswith("great") else s
                                   for k, s in enumerate(r["scores"])]} for i, r in RECORDS.items()}
    b = gi.aggregate(shifted, TEXTS, LABELS, min_sentences=2)
    cmp = gi.compare(a, b, "base", "tuned")
    pos = cmp.classes[1]
    assert [(s.word, s.change) for s in pos.gained] == [("great", pytest.approx(0.4))]
    assert pos.gained[0].mean_a == pytest.approx(0.4) and pos.gained[0].mean_b == pytest.approx(0.8)
    assert not pos.lost and [s.word for s in cmp.classes[0].lost] == ["great"]
    with pytest.raises(LoupeError, match="different classes"):
        gi.compare(a, gi.aggregate(RECORDS, TEXTS, ["bad", "good"]), "a", "b")


# --- shortcuts ------------------------------------------------------------------------------------------------

def test_word_keys() -> None:
    assert [gi.word_key(w) for w in ["Film,", "“Iwai’s", "(great)", "--", "...", "90%", "it."]] == \
        ["film", "iwai's", "great", "--", "...", "90", "it"]


@pytest.mark.parametrize(("word", "kind"), [
    ("--", "punctuation"), ("!", "punctuation"), ("…", "punctuation"), ("🙂", "punctuation"),
    ("146", "number"), ("2.5", "number"), ("$10", "number"), ("1970s", "number"), ("3rd", "number"),
    ("tom", "name"), ("quentin", "name"),
    ("film", ""), ("will", ""), ("i", ""), ("3d", ""), ("co-star", ""),
])
def test_shortcut_kinds_of_crafted_words(word: str, kind: str) -> None:
    assert gi.shortcut_kind(word)[0] == kind


def test_capitalised_inside_sentences_is_a_likely_name() -> None:
    texts = ["A film by Spielberg that works.", "Spielberg shows his skill.", "The best of Spielberg!",
             "The plot is thin. The cast is fine.", "I think the film is what I wanted.", "Oh. Great film."]
    records = {i: _rec(t, 1, [0.1] * len(t.split())) for i, t in enumerate(texts)}
    pos = gi.aggregate(records, texts, LABELS, min_sentences=1, top_k=50)[1]
    kinds = {w.word: w.kind for w in pos.toward}
    assert kinds["spielberg"] == "name"  # capitalised in both of its mid-sentence uses (the first use opens one)
    assert "2 of its 2" in next(w.why for w in pos.toward if w.word == "spielberg")
    assert kinds["the"] == "" and kinds["great"] == ""  # capitalised only where a sentence starts
    assert kinds["i"] == ""  # "I" is never a name
    assert kinds["film"] == ""
    assert all(w.shortcut == (w.word == "spielberg") for w in pos.toward)  # every word matters equally here


def test_only_important_names_numbers_and_punctuation_are_possible_shortcuts() -> None:
    texts = ["wow 1999 film", "wow 1999 film", "great 7 film"]
    records = {i: _rec(t, 1, s) for i, (t, s) in enumerate(zip(texts, [[0.1, 0.5, 0.0], [0.1, 0.3, 0.0],
                                                                       [0.4, 0.09, 0.0]]))}
    pos = gi.aggregate(records, texts, LABELS, min_sentences=1)[1]
    found = {w.word: w for w in pos.toward}
    assert found["1999"].kind == "number" and found["1999"].shortcut  # the top word
    assert found["7"].kind == "number" and not found["7"].shortcut  # 0.09 < a quarter of 0.4: not important
    assert not found["great"].shortcut and not found["wow"].shortcut  # important, but ordinary words


# --- on a model whose answer is known -------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["ablation", "ig"])
def test_planted_trigger_words_top_their_classes(ground_truth_handle: Any, method: str) -> None:
    texts, labels = ground_truth_sentences(24, seed=77)
    data = TextDataset(texts, labels, LABELS, "planted")
    config = {"n_steps": 16} if method == "ig" else None
    report = gi.explain_split("gt", data, method, config, {"n": 24, "top_k": 5}, handle=ground_truth_handle)
    assert report is not None and report.explained == 24 and report.failed == 0
    for trigger, cls in GT_TRIGGERS.items():
        other = report.classes[1 - cls]
        assert report.classes[cls].toward[0].word == trigger
        assert other.away[0].word == trigger
        runner_up = report.classes[cls].toward[1:2]
        assert not runner_up or report.classes[cls].toward[0].mean > 5 * abs(runner_up[0].mean)
    assert report.predicted == (labels.count(0), labels.count(1))  # the model decides by the trigger


def test_cache_then_instant_second_view_and_cancel_keeps_finished(tiny_handle: Any, tiny_model_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counting()
    monkeypatch.setattr(gi_run, "get", counter)
    data = TextDataset([f"text number {i} is fine" for i in range(10)], [i % 2 for i in range(10)], LABELS, "t")
    args = (str(tiny_model_dir), data, "gxi", None, {"n": 8})
    with pytest.raises(gi.GlobalCancelled):
        gi.explain_split(*args, handle=tiny_handle, cancelled=lambda: counter.calls >= 3)
    assert counter.calls == 3
    assert gi.explain_split(*args, handle=tiny_handle, cached_only=True) is None  # not all there yet
    [cache] = (reports_dir() / "global-cache").glob("*.json")
    assert len(json.loads(cache.read_text(encoding="utf-8"))["records"]) == 3  # the finished ones are kept
    counter.calls = 0
    report = gi.explain_split(*args, handle=tiny_handle)
    assert counter.calls == 5 and report is not None and report.cached == 3 and report.explained == 8
    counter.calls = 0
    again = gi.explain_split(*args, handle=None, cached_only=True)  # no model needed
    assert counter.calls == 0 and again is not None
    assert again.classes == report.classes and again.cached == 8
    bigger = gi.explain_split(str(tiny_model_dir), data, "gxi", None, {"n": 10}, handle=tiny_handle)
    assert counter.calls == 2 and bigger is not None and bigger.explained == 10  # a larger n reuses the first 8


def test_local_and_ray_give_the_same_aggregate(tiny_handle: Any, tiny_model_dir: Path, local_ray: None) -> None:
    data = TextDataset(["a fine film", "dull and long", "the plot, the cast!", "a fine cast", "long and fine",
                        "the film is dull"], [1, 0, 1, 1, 1, 0], LABELS, "six")
    kwargs: dict[str, Any] = {"settings": {"n": 6}, "use_cache": False, "device": "cpu"}
    local = gi.explain_split(str(tiny_model_dir), data, "ablation", handle=tiny_handle, **kwargs)
    on_ray = gi.explain_split(str(tiny_model_dir), data, "ablation",
                              run_on={"engine": "ray", "workers": 2, "batch_size": 2}, **kwargs)
    assert local is not None and on_ray is not None
    assert on_ray.labels == local.labels and on_ray.predicted == local.predicted
    for a, b in zip(local.classes, on_ray.classes):
        assert [w.word for w in a.toward] == [w.word for w in b.toward]
        assert [w.word for w in a.away] == [w.word for w in b.away]
        assert a.means.keys() == b.means.keys()
        for word, (count, sentences, mean, kind) in a.means.items():
            assert b.means[word][:2] == (count, sentences) and b.means[word][3] == kind
            assert b.means[word][2] == pytest.approx(mean, abs=1e-5)


def test_bad_requests_are_refused(tiny_handle: Any, tiny_model_dir: Path) -> None:
    data = TextDataset(["a fine film"], [1], LABELS, "one")
    with pytest.raises(ExplainerError, match="Unknown explainer 'nope'"):
        gi.explain_split(str(tiny_model_dir), data, "nope", handle=tiny_handle)
    with pytest.raises(ExplainerError, match="no sign"):
        gi.explain_split(str(tiny_model_dir), data, "saliency", handle=tiny_handle)
    with pytest.raises(ConfigError, match="n=1000000000 is over its maximum"):
        gi.explain_split(str(tiny_model_dir), data, "gxi", settings={"n": 10**9}, handle=tiny_handle)
    with pytest.raises(LoupeError, match="no text"):
        gi.explain_split(str(tiny_model_dir), TextDataset(["  "], [0], LABELS, "blank"), "gxi", handle=tiny_handle)
    assert gi.resolve_method("gxi") == "grad_x_input"


# --- the default explainer ------------------------------------------------------------------------------------

def _ranking(seconds: dict[str, float], tied: set[frozenset[str]]) -> gi.Ranking:
    from explainers.global_importance.choice import Ranked

    comps = {"lime": 0.36, "ig": 0.32, "ablation": 0.28, "grad_x_input": 0.11}
    rows = tuple(Ranked(m, comps[m], seconds[m], 100) for m in comps)
    sig = {a: {b: {"significant": frozenset((a, b)) not in tied} for b in comps if b != a} for a in comps}
    return gi.Ranking("rotten_tomatoes/test", 100, rows, sig)


def test_default_is_the_most_faithful_affordable_and_the_cheapest_of_its_ties() -> None:
    usable = ["ig", "grad_x_input", "ablation", "shap", "lime"]
    ranking = _ranking({"lime": 5.8, "ig": 3.4, "ablation": 0.8, "grad_x_input": 0.4}, {frozenset(("lime", "ig"))})
    assert gi.default_method(usable, 100, ranking).method == "ig"  # LIME fits, IG is as faithful and cheaper
    assert gi.default_method(usable, 150, ranking).method == "ig"  # LIME no longer fits (870 s)
    ranking_apart = _ranking({"lime": 5.8, "ig": 3.4, "ablation": 0.8, "grad_x_input": 0.4}, set())
    assert gi.default_method(usable, 100, ranking_apart).method == "lime"
    choice = gi.default_method(usable, 500, ranking_apart)
    assert choice.method == "ablation" and choice.from_evaluation and "LIME" in choice.reason
    assert gi.default_method(usable, 500, ranking_apart, workers=6).method == "lime"  # 6 workers: it fits
    assert gi.default_method(["ig", "lime"], 100, ranking_apart).method == "lime"  # only what the model supports
    fallback = gi.default_method(usable, 200)
    assert fallback.method == "ablation" and not fallback.from_evaluation and "no evaluation" in fallback.reason
    assert gi.default_method(usable, 1281).method == "grad_x_input"  # ablation would take 17 min
    assert gi.default_method(["ablation"], 5000).method == "ablation"  # a quantised model has no gradients


def test_cached_ranking_reads_the_evaluate_pages_cache(tiny_model_dir: Path) -> None:
    import explainers.evaluation as ev

    model = str(tiny_model_dir)
    assert gi.cached_ranking(model, ev.model_revision(model)) is None
    ev.evaluate(model, "test", 4, ["ablation", "grad_x_input", "attention"], device="cpu", random_seeds=(0,),
                sanity_n=0)
    ranking = gi.cached_ranking(model, ev.model_revision(model))
    assert ranking is not None and ranking.n == 4 and {r.method for r in ranking.rows} == \
        {"ablation", "grad_x_input", "attention"}
    comps = [r.comp_aopc for r in ranking.rows]
    assert comps == sorted(comps, reverse=True) and all(r.seconds > 0 for r in ranking.rows)
    assert gi.cached_ranking(model, "another revision") is None
    choice = gi.default_method(gi.signed_methods(), 10, ranking)
    assert choice.from_evaluation and choice.method in ("ablation", "grad_x_input")  # attention has no sign


# --- the job and the command line ---------------------------------------------------------------------------

def test_job_reports_progress_and_writes_the_table(tmp_path: Path, tiny_store_dir: str) -> None:
    ctx = JobContext(tmp_path, {"model": tiny_store_dir, "data": {"split": "test"}, "method": "gxi",
                                "settings": {"n": 4, "min_sentences": 1}, "compare_with": tiny_store_dir,
                                "device": "cpu"}, _started=time.time())
    result = gi.run_job(ctx)
    assert [r["explained"] for r in result["reports"]] == [4, 4]
    assert result["reports"][0]["dataset"] == "Rotten Tomatoes test"
    assert result["comparison"] is not None and all(not c["gained"] and not c["lost"]  # the same model twice
                                                    for c in result["comparison"]["classes"])
    assert read_status(tmp_path)["progress"] == pytest.approx(1.0)
    shown = {str(i) for r in result["reports"] for c in r["classes"] for w in c["toward"] + c["away"]
             for i, _ in w["examples"]}
    assert shown and shown <= set(result["sentences"])  # every example sentence travels with the result
    assert "toward positive" in (tmp_path / "table.txt").read_text(encoding="utf-8")


def test_cancelling_a_running_job_keeps_its_finished_sentences(tiny_store_dir: str) -> None:
    job_id = jobs.start("global", {"model": tiny_store_dir, "data": {"split": "test"}, "method": "lime",
                                   "config": {"num_samples": 1500}, "settings": {"n": 300}, "device": "cpu"})
    deadline = time.time() + 240
    while time.time() < deadline and float(jobs.status(job_id).get("done") or 0) < 0.01:
        time.sleep(0.3)
    done = float(jobs.status(job_id).get("done") or 0)
    assert 0 < done < 1, jobs.log_tail(job_id)
    jobs.cancel(job_id)  # a SIGTERM to the job: it saves what it finished before it goes
    folder = jobs.job_dir(job_id)
    deadline = time.time() + 60
    while time.time() < deadline and read_status(folder).get("state") != "cancelled":
        time.sleep(0.2)  # the job process writes "cancelled" as it exits, after its cache
    assert jobs.status(job_id)["state"] == "cancelled"
    [cache] = (reports_dir() / "global-cache").glob("*.json")
    kept = len(json.loads(cache.read_text(encoding="utf-8"))["records"])
    assert 3 <= kept < 300  # at least those it had reported (done > 0.01 of 300) when Cancel came


def test_cli_global(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from explainers.__main__ import main

    args = ["global", "--model", str(tiny_model_dir), "--n", "4", "--method", "gxi", "--device", "cpu", "--quiet",
            "--min-sentences", "1"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reports"][0]["method"] == "grad_x_input" and out["reports"][0]["explained"] == 4
    assert main(args) == 0
    assert "toward positive" in capsys.readouterr().out
    csv = tmp_path / "mine.csv"
    csv.write_text("review,stars\na fine film,positive\na dull film,negative\nfine again,1\n", encoding="utf-8")
    bad = ["global", "--model", str(tiny_model_dir), "--data", str(csv), "--text-column", "review",
           "--label-column", "stars", "--method", "gxi", "--quiet", "--device", "cpu"]
    assert main(bad) == 2 and "not classes of this model" in capsys.readouterr().err
    csv.write_text("review,stars\na fine film,Positive\na dull film,negative\nfine again,positive\n",
                   encoding="utf-8")
    assert main([*bad, "--json", "--min-sentences", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["reports"][0]["dataset"] == "upload: mine.csv"
    for flags, message in ((["--method", "nope"], "Unknown explainer"), (["--n", "1000000000"], "over its maximum"),
                           (["--method", "attention"], "no sign")):
        assert main(["global", "--model", str(tiny_model_dir), "--quiet", "--device", "cpu", *flags]) == 2
        assert message in capsys.readouterr().err


@pytest.fixture
def tiny_store_dir(tiny_model_dir: Path) -> str:
    """The tiny model under its own folder in the private store (a job process loads it by id)."""
    import shutil

    from model_zoo import store
    from model_zoo.paths import models_dir

    folder = models_dir() / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    store.write_card(folder, {"id": "tiny", "labels": LABELS, "task": "sentiment"})
    return "tiny"
