"""Prompt tuning (Lester et al., 2021) through ``peft.PromptTuningConfig``: trainable virtual-token embeddings
before the text, plus the head (and by default the pooler). It cannot be merged: saved as an adapter plus its
base, and the virtual tokens take positions the text would otherwise have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model_zoo.methods.base import INCLUDE_POOLER_HELP, PeftLibraryMethod, register
from model_zoo.spec import setting


@dataclass
class PromptTuningConfig:
    """Prompt tuning: ``num_virtual_tokens`` trainable embeddings before the text, plus the head."""

    num_virtual_tokens: int = setting(20, "Number of trainable prompt tokens", min=1, max=200)
    init: str = setting("sample_vocab", "Start the prompt from embeddings of random vocabulary tokens, or from "
                                        "random vectors", choices=["sample_vocab", "random"])
    include_pooler: bool = setting(False, INCLUDE_POOLER_HELP)


@register
class PromptTuning(PeftLibraryMethod):
    name = "prompt_tuning"
    title = "Prompt tuning"
    summary = "Trainable virtual tokens before the text; the head trains."
    trains = ("The embeddings of the virtual tokens put before the text (the head reads the first one's output), "
              "plus the classification head; the encoder and pooler stay frozen.")
    Config = PromptTuningConfig
    adds_tokens = True
    recipe = {"learning_rate": 3e-2, "batch_size": 8, "epochs": 5.0, "warmup_ratio": 0.1, "weight_decay": 0.0}

    def peft_config(self, cfg: PromptTuningConfig, modules_to_save: list[str]) -> Any:
        import peft

        init = peft.PromptTuningInit.SAMPLE_VOCAB if cfg.init == "sample_vocab" else peft.PromptTuningInit.RANDOM
        return peft.PromptTuningConfig(task_type=peft.TaskType.SEQ_CLS, num_virtual_tokens=cfg.num_virtual_tokens,
                                       prompt_tuning_init=init, modules_to_save=modules_to_save)

    def max_length(self, model_config: Any, cfg: PromptTuningConfig, max_length: int) -> int:
        positions = int(getattr(model_config, "max_position_embeddings", 512))
        return min(max_length, positions - cfg.num_virtual_tokens)
