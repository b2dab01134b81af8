"""Dataset evaluation on the tiny random BERT: the table, the cache, the job and the CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

import explainers.evaluation as ev
import explainers.evaluation.run as ev_run  # where the run looks up models and explainers
from explainers import get
from model_zoo import LoupeError
from model_zoo.jobs import JobContext, read_status
from model_zoo.paths import reports_dir

pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = ["ig", "attention", "saliency"]
CHEAP = {"ig": {"n_steps": 4}}


class CountingGet:
    """Wraps ``explainers.get`` so a test can count the explanations an evaluation makes."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, name: str) -> Any:
        inner, calls = get(name), self.calls

        class Proxy:
            title = inner.title
            Config = inner.Config

            def explain(self, *args: Any, **kwargs: Any) -> Any:
                calls.append(name)
                return inner.explain(*args, **kwargs)

        return Proxy()




@pytest.fixture(autouse=True)
def _loaded_once(tiny_handle: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve the session's tiny model instead of loading it again for every evaluation."""
    monkeypatch.setattr(ev_run, "load", lambda *args, **kwargs: tiny_handle)


def _run(model: Path, methods: list[str] = METHODS, n: int = 5, **kwargs: Any) -> ev.EvaluationReport:
    kwargs.setdefault("sanity_n", 0)  # the sanity check has its own test below
    return ev.evaluate(str(model), "test", n, methods, CHEAP, device="cpu", random_seeds=(0,), **kwargs)


def test_estimate_is_a_t_interval() -> None:
    e = ev.estimate([1.0, 2.0, 3.0])
    assert e.mean == pytest.approx(2.0) and e.n == 3
    assert e.ci == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert ev.estimate([0.5, None, float("nan")]) == ev.Estimate(0.5, None, 1)
    assert ev.estimate([]) == ev.Estimate(None, None, 0)
    assert str(ev.Estimate(None, None, 0)) == "-"


def test_evaluation_table_then_served_from_cache(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = CountingGet()
    monkeypatch.setattr(ev_run, "get", counter)
    report = _run(tiny_model_dir)
    assert len(counter.calls) == 5 * len(METHODS)
    assert sorted(r.method for r in report.rows) == sorted(METHODS)
    comps = [r.comp_aopc.mean for r in report.rows]
    assert comps == sorted(comps, reverse=True)  # ranked by comprehensiveness
    for row in report.rows:
        assert row.n == 5 and row.failed == 0 and not row.cached
        for est in (row.comp_aopc, row.suff_aopc, row.deletion_auc, row.insertion_auc, row.random_comp_aopc):
            assert est.n == 5 and est.mean is not None and est.ci is not None and math.isfinite(est.mean)
        assert 0.0 <= row.insertion_auc.mean <= 1.0  # type: ignore[operator]
        assert row.passes.mean is not None and row.passes.mean >= 1
        assert row.top_k_overlap.mean is not None and 0.0 <= row.top_k_overlap.mean <= 1.0
    assert report.random is not None and report.random.n == 5
    assert report.pairwise["ig"]["attention"] == report.pairwise["attention"]["ig"]
    assert report.n == 5 and report.dataset == "rotten_tomatoes/test"
    table = report.table()
    assert "comp AOPC" in table and "random" in table and all(m in table for m in METHODS)
    d = json.loads(json.dumps(report.to_dict()))
    assert len(d["rows"]) == 3
    assert len(list((reports_dir() / "eval-cache").glob("*.json"))) == len(METHODS)

    # Second call: nothing explained, the model is not even loaded.
    counter.calls.clear()
    monkeypatch.setattr(ev_run, "load", lambda *a, **k: pytest.fail("the model was loaded for a cached evaluation"))
    again = _run(tiny_model_dir)
    assert counter.calls == []
    assert all(r.cached for r in again.rows)
    strip = [{**r, "cached": None} for r in json.loads(json.dumps(again.to_dict()))["rows"]]
    assert strip == [{**r, "cached": None} for r in d["rows"]]


def test_cache_is_per_explainer_config(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = CountingGet()
    monkeypatch.setattr(ev_run, "get", counter)
    _run(tiny_model_dir, ["ig", "attention"], n=3)
    counter.calls.clear()
    report = ev.evaluate(str(tiny_model_dir), "test", 3, ["ig", "attention"], {"ig": {"n_steps": 6}}, device="cpu",
                         random_seeds=(0,), sanity_n=0)
    assert counter.calls == ["ig"] * 3  # a new IG config is a miss; attention is reused
    assert {r.method: r.cached for r in report.rows} == {"ig": False, "attention": True}
    assert {r.method: r for r in report.rows}["ig"].config["n_steps"] == 6


def test_model_revision_changes_with_the_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "m"))
    before = ev.model_revision(str(copy))
    weights = copy / "model.safetensors"
    os.utime(weights, ns=(time.time_ns(), weights.stat().st_mtime_ns + 10**9))
    assert ev.model_revision(str(copy)) != before


def test_cancel_keeps_finished_sentences_and_a_rerun_resumes(tiny_model_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    counter = CountingGet()
    monkeypatch.setattr(ev_run, "get", counter)
    with pytest.raises(ev.EvaluationCancelled):
        _run(tiny_model_dir, ["attention"], cancelled=lambda: len(counter.calls) >= 3)
    assert len(counter.calls) == 3
    counter.calls.clear()
    report = _run(tiny_model_dir, ["attention"])
    assert len(counter.calls) == 2 and report.rows[0].n == 5


def test_ray_engine_gives_the_same_report_as_the_local_process(tiny_model_dir: Path, local_ray: None) -> None:
    methods = ["lime", "ig", "attention"]
    configs = {"ig": {"n_steps": 4}, "lime": {"num_samples": 40}}
    kwargs = {"n": 5, "methods": methods, "configs": configs, "random_seeds": (0,), "sanity_n": 1,
              "use_cache": False, "device": "cpu"}
    local = ev.evaluate(str(tiny_model_dir), **kwargs)  # type: ignore[arg-type]
    on_ray = ev.evaluate(str(tiny_model_dir), run_on={"engine": "ray", "workers": 2, "batch_size": 2},
                         **kwargs)  # type: ignore[arg-type]
    for a, b in zip(local.rows, on_ray.rows):
        assert a.method == b.method and a.n == b.n == 5
        for metric in ("comp_aopc", "suff_aopc", "agreement", "sanity"):
            assert getattr(a, metric).mean == pytest.approx(getattr(b, metric).mean, abs=1e-5)
    for a_name, row in local.pairwise.items():
        for b_name, cell in row.items():
            assert cell == pytest.approx(on_ray.pairwise[a_name][b_name], abs=1e-5)


def test_bad_inputs_are_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(LoupeError, match="Bad config for ig"):
        ev.evaluate(str(tiny_model_dir), n=2, methods=["ig"], configs={"ig": {"steps": 3}})
    with pytest.raises(LoupeError, match="Unknown explainer"):
        ev.evaluate(str(tiny_model_dir), n=2, methods=["nope"])
    with pytest.raises(LoupeError):
        ev.evaluate(str(tiny_model_dir), n=0, methods=["attention"])
    assert ev.parse_overrides(["ig.n_steps=4", "ig.baseline=mask"], ["ig"]) == {"ig": {"n_steps": 4,
                                                                                        "baseline": "mask"}}
    for bad in ("ig.n_steps", "lime.num_samples=3", "ig.nope=1", "ig.n_steps=many"):
        with pytest.raises(LoupeError):
            ev.parse_overrides([bad], ["ig"])


def test_job_reports_progress_and_writes_the_table(tmp_path: Path, tiny_model_dir: Path) -> None:
    ctx = JobContext(tmp_path, {"model": str(tiny_model_dir), "split": "test", "n": 3, "methods": "attention,saliency",
                                "configs": {}, "device": "cpu", "random_seeds": [0]}, _started=time.time())
    result = ev.run_job(ctx)
    assert [r["n"] for r in result["rows"]] == [3, 3]
    status = read_status(tmp_path)
    assert status["done"] == status["total"] == 3  # progress counts sentences
    assert "comp AOPC" in (tmp_path / "table.txt").read_text(encoding="utf-8")
    assert len((tmp_path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()) == 2


def test_cli_evaluate_json_and_table(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from explainers.__main__ import main

    args = ["evaluate", "--model", str(tiny_model_dir), "--n", "2", "--methods", "attention,ig",
            "--config", "ig.n_steps=4", "--device", "cpu", "--seeds", "0", "--quiet"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["method"] for r in out["rows"]} == {"attention", "ig"} and out["n"] == 2
    # The sanity check is in the JSON: by default on the first 10 sentences, here both.
    assert all(r["sanity"]["n"] == 2 and r["sanity_steps"][-1] == "all weights" for r in out["rows"])
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "comp AOPC" in text and "attention" in text
    assert main(["evaluate", "--model", str(tiny_model_dir), "--methods", "nope", "--quiet"]) == 2


def test_cli_explain_with_sanity(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from explainers.__main__ import main

    args = ["explain", "--model", str(tiny_model_dir), "--text", "a fine film", "--methods", "attention",
            "--device", "cpu", "--sanity"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["sanity"]["steps"] == ["all weights"] and isinstance(out[0]["sanity"]["passed"], bool)
    assert main(args) == 0 and "sanity:" in capsys.readouterr().out


# --- paired significance and the sanity column ----------------------------------------------------

def test_paired_tests_on_known_differences() -> None:
    rng = __import__("numpy").random.default_rng(0)
    noise = {i: float(v) for i, v in enumerate(rng.normal(0, 0.01, 30))}
    values = {
        "a": {i: 0.30 + v for i, v in noise.items()},  # always 0.1 above c
        "b": {i: 0.30 + v + (0.001 if i % 2 else -0.001) for i, v in noise.items()},  # a's twin
        "c": {i: 0.20 + v for i, v in noise.items()},
    }
    sig = ev.paired_tests(values)
    assert sig["a"]["c"]["significant"] and sig["a"]["c"]["mean_diff"] == pytest.approx(0.1)
    assert sig["c"]["a"]["mean_diff"] == pytest.approx(-0.1)
    assert not sig["a"]["b"]["significant"] and sig["a"]["b"]["p_holm"] >= sig["a"]["b"]["p"]
    assert ev.paired_tests({"x": {0: 1.0}, "y": {0: 0.0}})["x"]["y"]["p"] == 1.0  # too few sentences to tell


def test_ranks_are_shared_when_not_significantly_different(tiny_model_dir: Path) -> None:
    report = _run(tiny_model_dir, methods=["ig", "saliency"], sanity_n=2)
    ig, sal = sorted(report.rows, key=lambda r: r.method)
    cell = report.significance["ig"]["saliency"]
    assert cell["n"] == 5 and cell["p"] == 1.0  # 5 sentences are too few for the test to tell them apart
    assert {r.rank for r in report.rows} == {1} and ig.tied_with == ("saliency",)
    assert "1=" in report.table()
    # The sanity check ran on the first 2 sentences through the whole cascade, ending on every weight.
    for row in report.rows:
        assert row.sanity.n == 2 and row.sanity_steps[0] == "classifier head" and row.sanity_steps[-1] == "all weights"
        assert len(row.sanity_curve) == len(row.sanity_steps) and row.sanity.mean is not None
    assert "sanity" in report.table() and report.to_dict()["rows"][0]["sanity"]["n"] == 2
