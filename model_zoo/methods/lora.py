"""LoRA (Hu et al., 2021) through ``peft.LoraConfig``: ``W + (alpha / r) * B A`` on the target layers, ``B``
starting at zero; the head (and by default the pooler) trains in full as ``modules_to_save``.

Saved merged into the weights (a plain model) or, with ``merge`` off, as an adapter plus its base; an adapter
is merged again on load, so explainers always see a plain model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from model_zoo.methods.base import INCLUDE_POOLER_HELP, FinetuneMethod, PeftLibraryMethod, register
from model_zoo.spec import setting


@dataclass
class LoraConfig:
    """LoRA's settings (bounds hold everywhere: page, command line, job JSON)."""

    r: int = setting(8, "Rank of the update matrices", min=1, max=256)
    alpha: int = setting(16, "Scaling numerator (update scale = alpha / r)", min=1, max=512)
    dropout: float = setting(0.1, "Dropout on the LoRA input", min=0.0, max=0.5)
    target_modules: str = setting("query,value", "Comma-separated names of the linear layers to adapt (empty: "
                                                 "peft's default for the model)")
    merge: bool = setting(True, "Save the update merged into the weights (a plain model) instead of an adapter "
                                "plus its base")
    include_pooler: bool = setting(False, INCLUDE_POOLER_HELP)

    def targets(self) -> list[str] | None:
        names = [t.strip() for t in self.target_modules.split(",") if t.strip()]
        return names or None


@register
class Lora(PeftLibraryMethod):
    name = "lora"
    title = "LoRA"
    summary = "Low-rank updates on the attention projections; the head trains in full."
    trains = ("Low-rank update matrices on the attention query and value projections, plus the classification "
              "head; the encoder and pooler stay frozen.")
    Config = LoraConfig
    recipe = {"learning_rate": 2e-3, "batch_size": 16, "epochs": 3.0}

    def peft_config(self, cfg: LoraConfig, modules_to_save: list[str]) -> Any:
        import peft

        return peft.LoraConfig(task_type=peft.TaskType.SEQ_CLS, r=cfg.r, lora_alpha=cfg.alpha,
                               lora_dropout=cfg.dropout, target_modules=cfg.targets(),
                               modules_to_save=modules_to_save)

    def saves_adapter(self, cfg: LoraConfig) -> bool:
        return not cfg.merge

    def save(self, model: nn.Module, folder: Path, cfg: LoraConfig) -> dict[str, Any]:
        if not cfg.merge:
            return super().save(model, folder, cfg)
        merged = model.merge_and_unload()  # type: ignore[operator]
        FinetuneMethod.save(self, merged, folder, cfg)
        return {"merged": True}

    def attach(self, model: nn.Module, folder: Path, cfg: LoraConfig) -> tuple[nn.Module, set[str]]:
        wrapped, saved = super().attach(model, folder, cfg)
        return wrapped.merge_and_unload(), saved  # type: ignore[operator]
