"""The Fine-tune page's Privacy section: DP-SGD and federated settings, the ε explanation and the warning about
explanations, a method DP-SGD would train wrongly refused, the run started with the chosen settings, and a finished
private job's guarantee shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from model_zoo.private_training import EPSILON_EXPLAINED, EXPLANATIONS_ARE_NOT_PRIVATE

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def _page(method: str = "head_only") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("app_pages/finetune.py")
    at.run()
    at.selectbox(key="loupe_ft_base").set_value("tiny")
    at.selectbox(key="loupe_ft_method").set_value(method)
    at.run()
    return at


def _start_button(at: AppTest) -> Any:
    return next(b for b in at.button if b.label == "Start fine-tuning")


def test_dp_settings_explain_epsilon_warn_and_start_a_private_run(tiny_store: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import services

    started: list[Any] = []
    monkeypatch.setattr(services, "start_finetune", lambda cfg, files, redact=None, progress=None:
                        started.append(cfg) or "finetune-" + "a" * 22)
    at = _page()
    at.radio(key="loupe_ft_privacy").set_value("dp")
    at.run()
    assert not at.exception and not at.error
    assert any(i.value == EPSILON_EXPLAINED for i in at.info)
    assert EPSILON_EXPLAINED.count(". ") == 1  # two sentences
    assert any(w.value == EXPLANATIONS_ARE_NOT_PRIVATE for w in at.warning)
    assert any("σ =" in c.value and "ε = 3" in c.value for c in at.caption)  # the noise the budget implies
    at.number_input(key="loupe_ft_dp.target_epsilon").set_value(1.0)
    at.run()
    assert not _start_button(at).disabled
    _start_button(at).click()
    at.run()
    assert started and started[0].dp.enabled and started[0].dp.target_epsilon == 1.0
    assert not started[0].federated.enabled


def test_dp_is_refused_for_a_method_it_would_train_wrongly(tiny_store: str) -> None:
    at = _page("prompt_tuning")
    at.radio(key="loupe_ft_privacy").set_value("dp")
    at.run()
    assert not at.exception
    assert any("not offered" in e.value for e in at.error)
    assert _start_button(at).disabled


def test_federated_settings(tiny_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import services

    started: list[Any] = []
    monkeypatch.setattr(services, "start_finetune", lambda cfg, files, redact=None, progress=None:
                        started.append(cfg) or "finetune-" + "b" * 22)
    at = _page()
    at.radio(key="loupe_ft_privacy").set_value("federated")
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="loupe_ft_fed.partition").options == ["IID (at random)",
                                                                  "non-IID: label skew (Dirichlet)"]  # no CSV column
    at.selectbox(key="loupe_ft_fed.partition").set_value("dirichlet")
    at.number_input(key="loupe_ft_fed.clients").set_value(3)
    at.run()
    at.number_input(key="loupe_ft_fed.alpha").set_value(0.5)
    at.run()
    _start_button(at).click()
    at.run()
    fed = started[0].federated
    assert fed.enabled and fed.clients == 3 and fed.partition == "dirichlet" and fed.alpha == 0.5
    assert not started[0].dp.enabled


def test_a_finished_private_job_shows_its_guarantee(tiny_store: str) -> None:
    from model_zoo.finetune import DataSpec, FinetuneConfig, run_here

    cfg = FinetuneConfig(base="tiny", method="head_only", name="tiny-dp", publish=False,
                         data=DataSpec(source="rt", limit=48, validation_limit=32),
                         train={"epochs": 1.0, "batch_size": 16, "eval_steps": 2, "save_steps": 0},
                         dp={"enabled": True, "target_epsilon": 5.0})
    job_id, status = run_here(cfg)
    assert status["state"] == "done", status
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params["job"] = job_id
    at.run()
    at.switch_page("app_pages/finetune.py")
    at.run()
    assert not at.exception and not at.error
    assert any("Differentially private" in m.value and "ε = " in m.value for m in at.markdown)
    assert any(w.value == EXPLANATIONS_ARE_NOT_PRIVATE for w in at.warning)
