"""AppTest smoke tests of the Error analysis page on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from model_zoo import store
from model_zoo.paths import models_dir
from tests.conftest import build_tiny_bert

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")



def _errors_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("app_pages/errors.py")
    at.run()
    return at


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
    examples = at.dataframe[-1].value
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
