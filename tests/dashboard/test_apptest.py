"""AppTest smoke tests: each page loads, explaining shows every selected explainer, bad input is handled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import explainers.compression_report  # noqa: F401  (registers the compress job kind)
import explainers.evaluation  # noqa: F401  (registers the evaluate job kind)
from model_zoo import store
from model_zoo.paths import models_dir
from tests.conftest import build_tiny_bert

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAYLOAD = '"><img src=x onerror=alert(1)><script>alert(1)</script>'



def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def _fast(at: AppTest) -> None:
    for key, value in (("loupe_cfg.shap.max_evals", 40), ("loupe_cfg.lime.num_samples", 40),
                       ("loupe_cfg.ig.n_steps", 8)):
        at.number_input(key=key).set_value(value)


def _explain(at: AppTest, text: str) -> AppTest:
    at.text_area(key="loupe_text").set_value(text)
    at.run()
    _fast(at)
    next(b for b in at.button if b.label == "Explain").click()
    at.run()
    return at


SECTIONS = ("#### Agreement between explainers", "#### Deletion curves", "#### Share and export")


def _card_titles(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("#### ") and m.value not in SECTIONS]


def test_explain_page_loads_with_defaults(tiny_store: str) -> None:
    at = _app()
    assert not at.exception
    assert at.multiselect(key="loupe_methods").value == ["ig", "shap", "lime", "attention"]
    assert at.selectbox(key="loupe_target").value is None
    assert any("Device" in c.value for c in at.sidebar.caption)


def test_explaining_an_example_shows_each_explainer(tiny_store: str) -> None:
    at = _app()
    example = next(b for b in at.button if b.key and b.key.startswith("loupe_ex"))
    example.click()
    at.run()
    assert at.text_area(key="loupe_text").value
    _fast(at)
    next(b for b in at.button if b.label == "Explain").click()
    at.run()
    assert not at.exception and not at.error
    assert len(_card_titles(at)) == 4
    # Beside each explanation its faithfulness; below, agreement and deletion curves across them.
    assert sum("Comprehensiveness AOPC" in m.value for m in at.markdown) == 4
    assert all(s in [m.value for m in at.markdown] for s in SECTIONS)
    # Copy link: the permalink, and an HTML report to download.
    assert any("text=" in c.value and "methods=ig%2Cshap%2Clime%2Cattention" in c.value for c in at.code)
    assert any(getattr(b, "label", "") == "HTML report" for b in at.get("download_button"))
    assert at.query_params["methods"] == ["ig,shap,lime,attention"] or at.query_params["methods"] == \
        "ig,shap,lime,attention"


def test_empty_text_shows_message_and_makes_no_call(tiny_store: str) -> None:
    at = _app()
    next(b for b in at.button if b.label == "Explain").click()
    at.run()
    assert any("empty" in w.value for w in at.warning)
    assert not _card_titles(at)


def test_long_text_shows_truncation_notice(tiny_store: str) -> None:
    at = _explain(_app(), "a long review " * 400)
    assert any("Truncated at 128 tokens" in w.value for w in at.warning)


def test_payload_is_escaped(tiny_store: str) -> None:
    at = _explain(_app(), PAYLOAD)
    assert not at.exception
    html_blocks = [m.value for m in at.markdown if "loupe-text" in m.value]
    assert html_blocks and all("<img" not in b and "<script>" not in b for b in html_blocks)
    assert any("&lt;img" in b for b in html_blocks)


def test_unloadable_model_keeps_previous(tiny_store: str, tmp_path: Path) -> None:
    at = _app()
    at.text_input(key="loupe_model_path").set_value(str(tmp_path / "missing"))
    next(b for b in at.button if b.label == "Load folder").click()
    at.run()
    assert not at.exception
    assert any("Could not load the model" in e.value for e in at.error)
    assert any("tiny" in e.value for e in at.error)  # still using the previous model


def test_permalink_reopens_explanation(tiny_store: str) -> None:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"model": "tiny", "text": "a fine film", "methods": "saliency,ablation", "target": "0",
                            "cfg": '{"ablation":{"baseline":"pad","perturbations_per_eval":4},"saliency":{"x":1}}'})
    at.run()
    assert not at.exception
    assert at.selectbox(key="loupe_cfg.ablation.baseline").value == "pad"  # settings come back from the link
    assert at.number_input(key="loupe_cfg.ablation.perturbations_per_eval").value == 4
    assert at.text_area(key="loupe_text").value == "a fine film"
    assert len(_card_titles(at)) == 2
    assert at.selectbox(key="loupe_target").value == 0


def test_models_page_lists_store(tiny_store: str) -> None:
    at = _app("app_pages/models.py")
    assert not at.exception
    assert at.dataframe and "tiny" in at.dataframe[0].value["id"].tolist()


def test_no_model_at_all_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOUPE_DEFAULT_MODEL", "not-built-yet")
    at = _app()
    assert not at.exception
    assert any("Could not load the model" in e.value for e in at.error)


def test_compare_page_shows_drift(tiny_store: str, tmp_path: Path) -> None:
    folder = build_tiny_bert(models_dir() / "tiny-b", seed=1)
    store.write_card(folder, {"id": "tiny-b", "labels": ["negative", "positive"]})
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"models": "tiny,tiny-b", "text": "a fine, warm film", "methods": "saliency,ablation"})
    at.run()
    at.switch_page("app_pages/compare.py")
    at.run()
    assert not at.exception and not at.error
    assert at.multiselect(key="loupe_cmp_models").value == ["tiny", "tiny-b"]
    drift = at.dataframe[-1].value
    assert list(drift["model"]) == ["tiny-b", "tiny-b"]
    assert drift["Spearman"].between(-1, 1).all()
    assert sum('class="loupe-text"' in m.value for m in at.markdown) == 4  # 2 explainers x 2 models


def test_compare_page_needs_two_models(tiny_store: str) -> None:
    at = _app("app_pages/compare.py")
    assert not at.exception
    assert next(b for b in at.button if b.label == "Compare").disabled


def test_evaluate_page_shows_finished_job(tiny_store: str) -> None:
    from model_zoo import jobs

    job_id = jobs.start("evaluate", {"model": "tiny", "split": "test", "n": 5, "methods": ["saliency", "attention"]})
    assert jobs.wait(job_id, timeout=240)["state"] == "done"
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["job"] = job_id
    at.run()
    at.switch_page("app_pages/evaluate.py")
    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[-1].value
    assert set(table["explainer"]) == {"Saliency", "Attention (rollout)", "random ranking (scale)"}


def test_evaluate_page_loads(tiny_store: str) -> None:
    at = _app("app_pages/evaluate.py")
    assert not at.exception
    assert at.number_input[0].value == 100


@pytest.mark.parametrize(("page", "prefix", "button"), [
    ("app_pages/evaluate.py", "loupe_eval_engine", "Run evaluation"),
    ("app_pages/compress.py", "loupe_cx_engine", "Run comparison"),
])
def test_dataset_pages_start_their_job_on_ray_with_the_chosen_workers(
        page: str, prefix: str, button: str, tiny_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from model_zoo import jobs

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(jobs, "start", lambda kind, config, owner=None: started.append(config) or
                        f"{kind}-AAAAAAAAAAAAAAAAAAAAAA")
    at = _app(page)
    assert not at.exception
    at.radio(key=f"{prefix}.engine").set_value("ray")
    at.run()
    at.number_input(key=f"{prefix}.workers").set_value(3)
    at.run()
    assert "local Ray started for the job" in " ".join(c.value for c in at.caption)
    next(b for b in at.button if b.label == button).click()
    at.run()
    assert started and started[0]["engine"]["engine"] == "ray" and started[0]["engine"]["workers"] == 3


def test_finetune_page_shows_split_and_trainable_parameters(tiny_store: str) -> None:
    at = _app("app_pages/finetune.py")
    assert not at.exception and not at.error
    at.selectbox(key="loupe_ft_base").set_value("tiny")
    at.selectbox(key="loupe_ft_method").set_value("bitfit")
    at.run()
    assert not at.exception and not at.error
    split = at.dataframe[0].value
    assert list(split["split"]) == ["train", "validation", "test"] and split["size"].iloc[0] == 2000
    line = next(m.value for m in at.markdown if "Trainable parameters" in m.value)
    assert "of" in line and "%" in line


def test_finetune_page_shows_a_finished_job_and_saves_it(tiny_store: str) -> None:
    from model_zoo import jobs
    from model_zoo.finetune import DataSpec, FinetuneConfig, run_here

    cfg = FinetuneConfig(base="tiny", method="head_only", name="tiny-ft", publish=False,
                         data=DataSpec(source="rt", limit=48, validation_limit=32),
                         train={"epochs": 1.0, "batch_size": 16, "eval_steps": 2, "save_steps": 0})
    job_id, status = run_here(cfg)
    assert status["state"] == "done", status
    assert jobs.result(job_id)["published"] is False and store.model_path("tiny-ft") is None  # private until saved
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["job"] = job_id
    at.run()
    at.switch_page("app_pages/finetune.py")
    at.run()
    assert not at.exception and not at.error
    assert [m.label for m in at.metric][:2] == ["Test accuracy", "Test macro F1"]
    next(b for b in at.button if b.label == "Save to the store").click()
    at.run()
    assert store.model_path("tiny-ft") is not None
    assert any("Saved to the store" in s.value for s in at.success)


def test_compress_page_loads_with_cpu_variants(tiny_store: str) -> None:
    at = _app("app_pages/compress.py")
    assert not at.exception and not at.error
    labels = [c.label for c in at.checkbox]
    assert "Dynamic int8 quantisation" in labels and not any("fp16" in x for x in labels)  # fp16 needs a GPU


def test_compress_page_shows_results_viewer_and_saves(tiny_store: str) -> None:
    from model_zoo import jobs

    job_id = jobs.start("compress", {"model": "tiny", "variants": ["int8", "prune-50"], "methods": ["ablation"],
                                     "n_eval": 16, "n_drift": 2, "n_show": 2, "repeats": 3})
    assert jobs.wait(job_id, timeout=300)["state"] == "done", jobs.log_tail(job_id)
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["job"] = job_id
    at.run()
    at.switch_page("app_pages/compress.py")
    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["original", "int8", "prune-50"]
    assert table["zeros / pruned layers' weights"].iloc[2] == pytest.approx(0.5, abs=1e-3)
    assert table["zeros / all weights"].iloc[2] < 0.1 and table["drift: rank corr. [ablation]"].iloc[0] == 1.0
    assert list(table.columns[1:3]) == ["accuracy (b=1)", "accuracy (b=32)"]
    assert any("compared on: **ablation**" in c.value for c in at.caption)
    per_explainer = at.dataframe[1].value  # drift per explainer; int8 at batch 1 and 32
    assert {(v, b) for v, b in zip(per_explainer["variant"], per_explainer["batch size"])} == {
        ("int8", 1), ("int8", 32), ("prune-50", 32)}
    assert sum('class="loupe-text"' in m.value for m in at.markdown) == 2  # original and variant side by side
    at.selectbox(key="loupe_cx_save_variant").set_value("prune-50")
    at.run()
    next(b for b in at.button if b.label == "Save").click()
    at.run()
    assert store.model_path("tiny-prune-50") is not None
    assert any("Saved as tiny-prune-50" in s.value for s in at.success)
