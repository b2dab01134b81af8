"""Budgets: one set of limits for text length and every explainer setting, applied to the API and the CLIs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from explainers import REGISTRY, ExplainerError
from explainers.base import SettingOverBudgetError, check_config, default_config
from model_zoo import limits, spec
from model_zoo.limits import BudgetError, TextTooLongError


def _spec(method: str, name: str) -> dict:  # type: ignore[type-arg]
    found = next(f for f in spec.settings(REGISTRY[method].Config, method) if f.name == name)
    return dataclasses.asdict(found)


def test_declared_limits_locally_and_tighter_hosted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOUPE_HOSTED", raising=False)
    monkeypatch.delenv("LOUPE_LIMITS", raising=False)
    assert _spec("lime", "num_samples")["max"] == 20000 and limits.current().text_chars == 20_000
    monkeypatch.setenv("LOUPE_HOSTED", "1")
    assert _spec("lime", "num_samples")["max"] == 2000
    assert _spec("shap", "max_evals")["max"] == 2000 and _spec("ig", "n_steps")["max"] == 100
    assert _spec("lime", "num_samples")["declared_max"] == 20000
    assert limits.current().text_chars == 5_000 and limits.current().tokens_for(512) == 256


def test_operator_limits_tighten_and_never_pass_the_declared_max(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOUPE_LIMITS", '{"lime.num_samples": 100, "shap.max_evals": 1e9, "ig.n_steps": 2}')
    assert _spec("lime", "num_samples")["max"] == 100
    assert _spec("lime", "num_samples")["default"] == 100  # the default (500) comes down to the limit
    assert default_config("lime").num_samples == 100
    assert _spec("shap", "max_evals")["max"] == 20000  # an operator cannot go past the declared max
    assert _spec("ig", "n_steps")["max"] == 4  # nor below the minimum
    monkeypatch.setenv("LOUPE_LIMITS", "{not json")
    assert _spec("lime", "num_samples")["max"] == 20000  # broken: ignored (logged), the defaults apply
    monkeypatch.setenv("LOUPE_LIMITS", '{"lime.num_samples": -5, "nodot": 3}')
    assert _spec("lime", "num_samples")["max"] == 20000


def test_explain_refuses_settings_over_the_limit(tiny_handle, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    lime = REGISTRY["lime"]
    with pytest.raises(SettingOverBudgetError, match=r"lime.num_samples=20001 is over its maximum, 20000"):
        lime.explain(tiny_handle, "a fine film", None, lime.Config(num_samples=20001))
    monkeypatch.setenv("LOUPE_LIMITS", '{"lime.num_samples": 40}')
    with pytest.raises(BudgetError, match="over this server's limit of 40"):
        lime.explain(tiny_handle, "a fine film", None, lime.Config(num_samples=41))
    with pytest.raises(ExplainerError):  # also an ExplainerError, for callers that catch those
        lime.explain(tiny_handle, "a fine film", None, lime.Config(num_samples=41))
    a = lime.explain(tiny_handle, "a fine film")  # no config: the defaults, brought within the limits
    assert a.params["num_samples"] == 40
    monkeypatch.delenv("LOUPE_LIMITS")
    with pytest.raises(ExplainerError, match="not a valid float"):
        check_config(lime.Config(kernel_width=math.nan), "lime")
    with pytest.raises(ExplainerError, match="not a valid int"):
        check_config(lime.Config(num_samples="many"), "lime")  # type: ignore[arg-type]


def test_explain_refuses_text_over_the_limit(tiny_handle, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    text = "good " * 4000 + "x"  # 20,001 characters
    with pytest.raises(TextTooLongError, match="20,001 characters; this server explains at most 20,000"):
        REGISTRY["saliency"].explain(tiny_handle, text)
    monkeypatch.setenv("LOUPE_MAX_TEXT_CHARS", "50")
    with pytest.raises(BudgetError):
        REGISTRY["attention"].explain(tiny_handle, "a fine film " * 5)
    assert REGISTRY["attention"].explain(tiny_handle, "a fine film").text == "a fine film"


def test_token_budget_truncates_the_explained_part(tiny_handle, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(["word"] * 60)
    monkeypatch.setenv("LOUPE_MAX_EXPLAIN_TOKENS", "16")
    a = REGISTRY["ablation"].explain(tiny_handle, text)
    assert len(a.tokens) == 16 and a.truncated and len(a.words) == 14
    monkeypatch.delenv("LOUPE_MAX_EXPLAIN_TOKENS")
    assert len(REGISTRY["ablation"].explain(tiny_handle, text).words) == 60


def test_a_huge_target_is_refused_with_a_message(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExplainerError, match="not a class of this model"):
        REGISTRY["saliency"].explain(tiny_handle, "a fine film", 10**5000)
    with pytest.raises(ExplainerError, match="not a class of this model"):
        REGISTRY["saliency"].explain(tiny_handle, "a fine film", True)  # type: ignore[arg-type]


def test_hook_based_explainers_declare_exclusive_use() -> None:
    exclusive = {name for name, e in REGISTRY.items() if getattr(e, "needs_exclusive_model", False)}
    assert exclusive == {"ig", "grad_x_input"}  # Captum's layer methods; the others only run forward passes


def test_cli_refuses_over_limit_text_and_settings(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from explainers.__main__ import main

    code = main(["explain", "--model", str(tiny_model_dir), "--text", "a" * 20_001, "--methods", "saliency"])
    assert code == 2 and "20,001 characters" in capsys.readouterr().err
    code = main(["explain", "--model", str(tiny_model_dir), "--text", "a fine film", "--methods", "lime",
                 "--config", "lime.num_samples=100000"])
    assert code == 2 and "over its maximum, 20000" in capsys.readouterr().err
    code = main(["explain", "--model", str(tiny_model_dir), "--text", "a fine film", "--methods", "lime",
                 "--config", "lime.num_samples=25", "--json"])
    assert code == 0 and '"num_samples": 25' in capsys.readouterr().out
    code = main(["evaluate", "--model", str(tiny_model_dir), "--methods", "shap", "--config", "shap.max_evals=50000"])
    assert code == 2 and "over its maximum" in capsys.readouterr().err
