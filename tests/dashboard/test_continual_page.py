"""The Continual fine-tuning page: the form (bundled sequence, uploads, bad input), starting a run, a finished
run's matrices, drift and saving, and job links that are not this person's."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from streamlit.testing.v1 import AppTest

from model_zoo import jobs, store

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGE = "app_pages/continual.py"


def _page(job: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    if job:
        at.query_params["job"] = job
    at.run()
    at.switch_page(PAGE)
    at.run()
    return at


def _csv_bytes(words: tuple[list[str], list[str]], labels: tuple[str, str], n: int = 30, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    writer.writerows([" ".join(rng.sample(words[i % 2], 2)), labels[i % 2]] for i in range(n))
    return out.getvalue().encode()


def test_the_page_shows_the_bundled_sequence_and_starts_a_run(tiny_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(jobs, "start", lambda kind, config, owner=None: started.append((kind, config)) or
                        f"{kind}-AAAAAAAAAAAAAAAAAAAAAA")
    at = _page()
    assert not at.exception and not at.error
    tasks = at.dataframe[0].value
    assert list(tasks["task"]) == ["Rotten Tomatoes", "2016 debates", "2012 conventions"]
    assert list(tasks["train"]) == [600, 600, 600]
    assert any("One head over 4 labels" in c.value for c in at.caption)
    at.multiselect(key="loupe_cl_strategies").set_value(["naive", "replay+ewc"])
    at.run()
    assert not at.exception
    next(b for b in at.button if b.label == "Start continual fine-tuning").click()
    at.run()
    assert not at.exception  # the page now opens the (stubbed, so missing) job
    kind, config = started[0]
    assert kind == "forgetting" and config["continual"]["strategies"] == ["naive", "replay+ewc"]
    assert config["continual"]["sequence"] == "politics" and config["drift"]["explainer"] == "ig"
    assert at.query_params["job"] == "forgetting-AAAAAAAAAAAAAAAAAAAAAA"


def test_no_strategy_and_bad_uploads_get_messages(tiny_store: str) -> None:
    at = _page()
    at.multiselect(key="loupe_cl_strategies").set_value([])
    at.run()
    assert any("at least one strategy" in w.value for w in at.warning)
    assert next(b for b in at.button if b.label == "Start continual fine-tuning").disabled
    at.radio(key="loupe_cl_source").set_value("Upload CSVs")
    at.run()
    assert not at.exception
    assert any("at least two CSV files" in i.value for i in at.info)


def test_task_rows_of_uploads_say_which_file_is_wrong() -> None:
    from dashboard.services import continual as cl
    from model_zoo import LoupeError

    good = _csv_bytes((["bad", "dull", "awful"], ["good", "fun", "great"]), ("neg", "pos"))
    rows = cl.task_rows("", [{"source": "a.csv"}, {"source": "b.csv"}], {0: (good, "a.csv"), 1: (good, "b.csv")},
                        0, 0)
    assert [r["train"]["size"] + r["test"]["size"] for r in rows] == [30, 30] and rows[0]["labels"] == ["neg", "pos"]
    one_class = b"text,label\nhello,x\nworld,x\n"
    with pytest.raises(LoupeError, match=r"Task 2 \(b.csv\): Only one class"):
        cl.task_rows("", [{"source": "a.csv"}, {"source": "b.csv"}], {0: (good, "a.csv"), 1: (one_class, "b.csv")},
                     0, 0)


def test_a_finished_run_shows_matrices_drift_and_saves_a_model(tiny_store: str, tiny_model_dir: Path,
                                                              tmp_path: Path) -> None:
    from explainers.continual_drift import job_config
    from model_zoo.continual import ContinualConfig

    torch.set_num_threads(1)
    files = []
    for k, (words, labels) in enumerate((((["bad", "dull", "awful"], ["good", "fun", "great"]), ("neg", "pos")),
                                         ((["cat", "kitten", "purr"], ["dog", "puppy", "bark"]), ("cat", "dog")))):
        files.append(tmp_path / f"<b>task{k}.csv")
        files[-1].write_bytes(_csv_bytes(words, labels, seed=k))
    cfg = ContinualConfig(base=str(tiny_model_dir), method="full", sequence="",
                          tasks=[{"source": str(f)} for f in files], strategies=["naive", "replay"], replay_size=6,
                          limit=0, test_limit=0, train={"epochs": 1, "batch_size": 16})
    folder = jobs.create("forgetting", job_config(cfg, {"n_sentences": 2, "ig_steps": 4}))
    jobs.run_in_process(folder)
    assert jobs.status(folder.name)["state"] == "done", jobs.log_tail(folder.name)
    at = _page(folder.name)
    assert not at.exception and not at.error
    summary = at.dataframe[0].value
    assert list(summary["strategy"]) == ["naive", "replay"] and "BWT (forgetting < 0)" in summary.columns
    assert len(at.get("plotly_chart")) >= 3  # a matrix per strategy and the accuracy-and-reasons chart
    assert any("Words whose importance changed most" in m.value for m in at.markdown)
    assert not any("<b>task" in m.value for m in at.markdown)  # a file name is shown as text, never as HTML
    assert any("&lt;b&gt;task0" in m.value for m in at.markdown)
    buttons = [b for b in at.button if b.label == "Save to the store"]
    assert len(buttons) == 2
    at.text_input(key=f"loupe_cl_save_name_{folder.name}_naive").set_value("cl-naive")
    buttons[0].click()
    at.run()
    assert not at.exception and store.model_path("cl-naive") is not None
    card = store.read_card(store.model_path("cl-naive"))
    assert card["continual"]["strategy"] == "naive" and card["id"] == "cl-naive"
    assert any("In the store as cl-naive" in s.value for s in at.success)


@pytest.mark.parametrize("job", ["../../etc/passwd", "forgetting-doesnotexist000000000000", "finetune-"])
def test_a_bad_job_link_says_no_such_job(job: str, tiny_store: str) -> None:
    at = _page(job)
    assert not at.exception
    assert any("No such job" in e.value for e in at.error)


def test_another_owners_run_is_no_such_job(tiny_store: str) -> None:
    folder = jobs.create("forgetting", {"continual": {}, "drift": {}}, owner="browser:someone-else")
    at = _page(folder.name)
    assert not at.exception
    assert any("No such job" in e.value for e in at.error)


def test_a_cancelled_run_shows_the_steps_it_finished(tiny_store: str) -> None:
    import json

    folder = jobs.create("forgetting", {"continual": {"strategies": ["naive", "replay"]}, "drift": {}})
    records = [{"kind": "start", "tasks": ["A", "B", "C"], "row": [0.9, 0.1, 0.2], "b": [0.5, 0.5, 0.5]},
               {"kind": "row", "strategy": "naive", "step": 1, "row": [0.4, 0.8, 0.3]}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (folder / "CANCEL").touch()
    at = _page(folder.name)
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 2  # naive: two finished rows; replay: the shared first row
    assert any("Finished steps are kept" in c.value for c in at.caption)


def test_a_command_line_run_opens_on_the_page_too(tiny_store: str) -> None:
    import json

    folder = jobs.create("continual", {"strategies": ["naive"]})  # the command line's kind: a flat config
    (folder / "metrics.jsonl").write_text(json.dumps({"kind": "start", "tasks": ["A", "B"], "row": [0.9, 0.1]})
                                          + "\n", encoding="utf-8")
    (folder / "CANCEL").touch()
    at = _page(folder.name)
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 1
