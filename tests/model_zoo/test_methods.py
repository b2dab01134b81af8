"""The fine-tuning methods registry: entries carry their behaviour, bounds hold everywhere, and nothing outside a
method's own module branches on its name."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from model_zoo import spec
from model_zoo.errors import LoupeError
from model_zoo.finetune import FinetuneConfig, default_train_config, validate_config
from model_zoo.methods import METHODS, FinetuneMethod
from model_zoo.spec import ConfigError, SettingOverBudgetError

ROOT = Path(__file__).resolve().parents[2]


def test_every_method_describes_itself_and_its_settings() -> None:
    assert list(METHODS) == ["full", "lora", "bitfit", "adapters", "prompt_tuning", "head_only"]
    for name, method in METHODS.items():
        assert isinstance(method, FinetuneMethod) and method.name == name
        assert method.title and method.summary and method.trains.endswith(".")
        assert dataclasses.is_dataclass(method.Config)
        assert all(s.help for s in spec.settings(method.Config, name))
        assert spec.to_dict(method.config()) == spec.to_dict(spec.defaults(method.Config, name))
        recipe = default_train_config(name)
        assert all(getattr(recipe, k) == v for k, v in method.recipe.items())


def test_lora_rank_is_bounded_by_validation_not_only_by_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    from model_zoo.__main__ import main

    assert METHODS["lora"].config({"r": 256}).r == 256
    with pytest.raises(SettingOverBudgetError, match="r=257"):
        METHODS["lora"].config({"r": 257})
    with pytest.raises(LoupeError, match="r=300"):
        validate_config(FinetuneConfig(method="lora", method_config={"r": 300}, name="x"))
    assert main(["finetune", "--method", "lora", "--set", "r=300", "--name", "x", "--quiet"]) == 2
    assert "r=300" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not one of"):
        METHODS["adapters"].config({"activation": "swish"})


def test_a_name_registered_twice_is_refused_and_an_unknown_one_is_named() -> None:
    with pytest.raises(ValueError, match="already registered"):
        METHODS.register("lora", METHODS["lora"])
    with pytest.raises(LoupeError, match="Unknown fine-tuning method 'qlora'; known: full, lora"):
        METHODS.lookup("qlora")


def test_only_prompt_tuning_shortens_the_text() -> None:
    from transformers import BertConfig

    config = BertConfig(max_position_embeddings=128)
    for name, method in METHODS.items():
        expected = 128 - 20 if name == "prompt_tuning" else 512
        assert method.max_length(config, method.config(), 512) == min(expected, 512)


def test_no_module_outside_a_methods_own_file_branches_on_its_name() -> None:
    names = "|".join(METHODS)
    branch = re.compile(rf"(==|!=|\bin)\s*[(\[{{]?\s*[\"']({names})[\"']|[\"']({names})[\"']\s*(==|!=)")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in sorted((ROOT / "model_zoo").rglob("*.py")) if "methods" not in path.parts
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if branch.search(line)]
    assert not found, "\n".join(found)
    assert not (ROOT / "model_zoo" / "peft_support.py").exists()
