"""AppTest tests of the Error analysis page on the tiny model: the analysis, uploads, global explanations."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from model_zoo import LoupeError, jobs, store
from model_zoo.paths import loupe_home, models_dir
from tests.conftest import build_tiny_bert

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
ME, SOMEONE = "session:analyst", "session:someone-else"


def _errors_page(owner: str = ME, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["loupe_owner"] = owner
    at.run()
    at.switch_page("app_pages/errors.py")
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(str(getattr(e, "value", "")) for kind in ("markdown", "caption", "error", "warning", "info")
                     for e in getattr(at, kind))


def _job(at: AppTest) -> str:
    job_id = at.query_params["job"]
    return str(job_id[0] if isinstance(job_id, list) else job_id)


def _start_global(at: AppTest, n: int, method: str = "grad_x_input", compare: str = "") -> dict[str, Any]:
    """Press Explain with these choices, wait for the job, redraw; the job's final status."""
    at.number_input(key="loupe_err_g_n").set_value(n)
    at.selectbox(key="loupe_err_g_method").set_value(method)
    at.selectbox(key="loupe_err_g_compare").set_value(compare)
    at.run()
    next(b for b in at.button if b.label.startswith("Explain ") and "sentences" in b.label).click()
    at.run()
    assert not at.exception, at.exception
    status = jobs.wait(_job(at), timeout=300)
    assert status["state"] == "done", jobs.log_tail(_job(at))
    at.run()
    assert not at.exception, at.exception
    return status


def _word_tables(at: AppTest) -> list[Any]:
    return [d.value for d in at.dataframe if list(d.value.columns)[:2] == ["word", "mean attribution"]]


def _reviews(rows: int = 24) -> bytes:
    return ("text,label\n" + "".join(f"A {'good' if i % 2 else 'bad'} film by Spielberg number {i},"
                                     f"{'positive' if i % 2 else 'negative'}\n" for i in range(rows))).encode()


def test_error_page_shows_metrics_slices_and_calibration(tiny_store: str) -> None:
    at = _errors_page()
    assert not at.exception and not at.error
    assert {m.label for m in at.metric} >= {"Accuracy", "Macro F1", "Texts"}
    headings = [m.value for m in at.markdown if m.value.startswith("#### ")]
    assert any("Metrics" in h and "Rotten Tomatoes test" in h for h in headings)  # each figure names its split
    assert any("Calibration" in h for h in headings) and any("Slices" in h for h in headings)
    slices = at.dataframe[1].value
    assert "with negation" in slices["slice"].tolist()
    assert any(getattr(b, "label", "") == "Download CSV" for b in at.get("download_button"))
    assert any(getattr(b, "label", "") == "Download HTML report" for b in at.get("download_button"))
    examples = at.dataframe[3].value
    assert examples["explain"].str.contains("text=").all()
    assert next(b for b in at.button if b.label == "Save temperature to the model card")  # tiny is in the store


def test_bad_regex_shows_an_error_and_the_page_keeps_working(tiny_store: str) -> None:
    at = _errors_page()
    at.checkbox(key="loupe_err_regex").check()
    at.text_input(key="loupe_err_keyword").set_value("(unclosed")
    at.run()
    assert not at.exception
    assert any("Not a valid regular expression" in e.value for e in at.error)
    assert any(m.label == "Accuracy" for m in at.metric)  # the rest of the page is still drawn
    at.checkbox(key="loupe_err_regex").uncheck()
    at.run()
    assert not at.exception and not at.error
    assert any("contains" in s for s in at.dataframe[1].value["slice"].tolist())


def test_validation_split_shows_before_only(tiny_store: str) -> None:
    at = _errors_page()
    at.selectbox(key="loupe_err_split").set_value("validation")
    at.run()
    assert not at.exception
    assert any("fitted on" in i.value for i in at.info)
    save = next(b for b in at.button if b.label == "Save temperature to the model card")
    assert save.disabled


def test_other_labels_get_a_clear_message(tiny_model_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = build_tiny_bert(models_dir() / "three", num_labels=3)
    store.write_card(folder, {"id": "three", "labels": ["a", "b", "c"], "task": "topic"})
    monkeypatch.setenv("LOUPE_DEFAULT_MODEL", "three")
    at = _errors_page()
    assert not at.exception
    assert any("negative, positive" in i.value for i in at.info)
    assert not at.metric
    assert at.radio(key="loupe_err_source").options == ["Upload a CSV"]  # the bundled splits are not offered
    at.file_uploader[0].upload("topics.csv", b"text,label\na,c\nb,a\nc,b\nd,a\n", "text/csv")
    at.run()
    assert not at.exception and not at.error
    assert any(m.label == "Accuracy" for m in at.metric)
    assert any("upload: topics.csv" in m.value.replace("\\", "") for m in at.markdown
               if m.value.startswith("#### Metrics"))
    assert any("classes are not this model" in i.value for i in at.info)  # no temperature to fit


def test_save_temperature_writes_the_card(tiny_store: str) -> None:
    at = _errors_page()
    save = next(b for b in at.button if b.label == "Save temperature to the model card")
    assert not save.disabled
    save.click()
    at.run()
    assert not at.exception and not at.error
    entry = store.read_card(models_dir() / "tiny")["calibration"]
    assert entry["temperature"] > 0 and "validation" in entry["fitted_on"] and "test" in entry["reported_on"]
    assert set(entry) >= {"method", "ece_before", "ece_after"}
    assert any("Saved temperature" in s.value for s in at.success)


def test_uploaded_csv_good_and_bad_then_global_explanations_on_it(tiny_store: str) -> None:
    at = _errors_page()
    at.radio(key="loupe_err_source").set_value("Upload a CSV")
    at.run()
    assert not at.exception and not at.metric  # nothing to show before a file
    bad = {"huge.csv": (b"text,label\n" + b"x" * 21_000_000, "the limit is 20 MB"),
           "latin1.csv": (b"text,label\ncaf\xe9,positive\n", "not valid UTF-8"),
           "labels.csv": (b"text,label\nfine,pos\ndull,neg\n", "are not classes of this model (its classes: "
                                                            "negative, positive)"),
           "empty.csv": (b"", "empty")}
    for name, (raw, message) in bad.items():
        at.file_uploader[0].upload(name, raw, "text/csv")
        at.run()
        assert not at.exception, (name, at.exception)
        assert any(message in e.value.replace("\\", "") for e in at.error), (name, [e.value for e in at.error])
        assert not at.metric
    at.file_uploader[0].upload("reviews.csv", _reviews(), "text/csv")
    at.run()
    assert not at.exception and not at.error
    headings = [m.value.replace("\\", "") for m in at.markdown if m.value.startswith("#### ")]
    assert any("Metrics · upload: reviews.csv (24 texts)" in h for h in headings)  # the report names the split
    assert next(m for m in at.metric if m.label == "Texts").value == "24"
    label = next(s for s in at.selectbox if s.label == "Label column")
    label.set_value("text")
    at.run()
    assert not at.exception and any("the same" in e.value for e in at.error)
    next(s for s in at.selectbox if s.label == "Label column").set_value("label")
    at.run()

    _start_global(at, 24)
    config = jobs.config(_job(at))
    assert config["owner"] == ME and config["config"]["data"]["name"] == "reviews.csv"
    staged = Path(config["config"]["data"]["path"])
    assert not staged.exists() and not list((loupe_home() / "uploads").rglob("*.csv"))  # gone with the job
    tables = _word_tables(at)
    assert len(tables) == 4 and any("spielberg" in t["word"].tolist() for t in tables)  # toward/away, 2 classes
    assert all("possible shortcut" in t.columns for t in tables)
    result = jobs.result(_job(at))
    assert result is not None
    words = [w for c in result["reports"][0]["classes"] for w in c["toward"] + c["away"]]
    assert {w["kind"] for w in words if w["word"] == "spielberg"} == {"name"}  # capitalised inside sentences
    assert "upload: reviews.csv" in _texts(at).replace("\\", "")
    assert any(getattr(b, "label", "") == "Download words CSV" and not b.disabled for b in at.get("download_button"))


def test_global_explanations_of_two_models_then_from_the_cache(tiny_store: str) -> None:
    folder = build_tiny_bert(models_dir() / "tiny-b", seed=3)
    store.write_card(folder, {"id": "tiny-b", "labels": ["negative", "positive"], "task": "sentiment"})
    at = _errors_page()
    assert any("Default explainer: Feature Ablation" in c.value for c in at.caption)  # and why
    _start_global(at, 12, compare="tiny-b")
    assert any("done" in m.value for m in at.markdown)
    assert len(_word_tables(at)) == 8  # toward and away, two classes, two models
    examples = next(d.value for d in at.dataframe if "sentence" in d.value.columns)
    assert examples["explain"].str.contains("text=").all()  # each example sentence opens on the Explain page
    changes = [d.value for d in at.dataframe if "change" in d.value.columns]
    assert len(changes) == 4 and any(len(c) for c in changes)  # gained and lost, per class
    assert any(getattr(b, "label", "") == "Download changes CSV" and not b.disabled
               for b in at.get("download_button"))
    word = next(s for s in at.selectbox if s.label == "Example sentences for the word")
    word.set_value(word.options[-1])
    at.run()
    assert not at.exception

    next(b for b in at.button if b.label == "Close this job").click()
    at.run()
    assert not at.exception and not at.query_params.get("job")
    started = time.perf_counter()
    at.run()
    assert time.perf_counter() - started < 30
    assert any("shown without a job" in c.value for c in at.caption)  # the second view comes from the cache
    assert len(_word_tables(at)) == 8


def test_hostile_inputs_get_clear_messages(tiny_store: str, tiny_model_dir: Path) -> None:
    theirs = jobs.create("global", {"model": "tiny"}, owner=SOMEONE).name
    mine_elsewhere = jobs.create("evaluate", {"model": "tiny"}, owner=ME).name
    for job_id, message in ((theirs, "No such job"), ("global-" + "A" * 5000, "No such job"),
                            ("../../etc/passwd", "No such job"),
                            (mine_elsewhere, "That job is an evaluation job, not a global-explanation job")):
        at = _errors_page(job=job_id)
        assert not at.exception, at.exception
        assert any(message in e.value for e in at.error), (job_id[:40], [e.value for e in at.error])
        assert not [b for b in at.button if b.label in ("Cancel", "Resume")]
        assert any(m.label == "Accuracy" for m in at.metric)  # the rest of the page still works
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["loupe_owner"] = ME
    at.session_state["loupe_err_g_n"] = 10**9  # more than this server allows
    at.run()
    at.switch_page("app_pages/errors.py")
    at.run()
    assert not at.exception
    assert at.number_input(key="loupe_err_g_n").value == 20000  # brought within the limit, said in the help
    assert any(b.label == "Explain 1,281 sentences" for b in at.button)  # and within the split

    from dashboard.services import errors as analysis
    from model_zoo import load

    handle = load(str(tiny_model_dir), device="cpu")
    three = build_tiny_bert(models_dir() / "three", num_labels=3)
    store.write_card(three, {"id": "three", "labels": ["a", "b", "c"], "task": "topic"})
    for kwargs, message in (({"method": "nope"}, "Unknown explainer 'nope'"),
                            ({"method": "attention"}, "no sign"),
                            ({"n": 10**9}, "over its maximum"),
                            ({"compare_with": "three"}, "other classes"),
                            ({"run_on": {"engine": "spark"}}, "not one of")):
        args: dict[str, Any] = {"method": "grad_x_input", "n": 10, **kwargs}
        with pytest.raises(LoupeError, match=message):
            analysis.start_global("tiny", handle, "test", None, **args)
    assert not list(jobs.list_jobs("global", owner=ME))  # nothing was started


def test_exported_word_tables_are_guarded_and_escaped() -> None:
    from dashboard.report import csv_bytes, sections_report
    from dashboard.services import errors as analysis

    word = {"word": "=HYPERLINK(\"http://x\")", "count": 3, "sentences": 3, "mean": 0.2, "total": 0.6,
            "kind": "", "examples": []}
    result = {"reports": [{"model": "tiny", "title": "Feature Ablation", "dataset": "upload: <b>x</b>.csv",
                           "classes": [{"label": "positive", "toward": [word], "away": []}]}],
              "comparison": {"model_a": "tiny", "model_b": "tiny-b", "classes": [
                  {"label": "positive", "gained": [{**word, "mean_a": 0.1, "mean_b": 0.2, "change": 0.1}],
                   "lost": []}]}}
    rows = analysis.global_rows(result)
    assert rows[0]["word"].startswith("=") and rows[0]["direction"] == "toward" and rows[0]["rank"] == 1
    assert b"'=HYPERLINK" in csv_bytes(rows) and b"'=HYPERLINK" in csv_bytes(analysis.comparison_rows(result))
    html = sections_report("Error analysis", [("Global explanations", rows)])
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
