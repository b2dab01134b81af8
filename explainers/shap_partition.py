"""SHAP's Partition explainer (Lundberg & Lee, 2017) with the tokenizer's text masker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explainers.base import BaseExplainer, ExplainerError, registered
from model_zoo.handle import Encoded, ModelHandle


@dataclass
class ShapConfig:
    max_evals: int = field(default=500, metadata={"help": "Masked texts to evaluate (more: finer detail)",
                                                  "min": 10, "max": 20000, "hosted_max": 2000})
    batch_size: int = field(default=64, metadata={"help": "Masked texts per model pass", "min": 1, "max": 1024,
                                                  "hosted_max": 128})
    perturbation: str = field(default="mask", metadata={
        "help": "What happens to a hidden token: replaced by [MASK] (shap's text masker) or deleted (as the "
                "faithfulness metrics and LIME do)", "choices": ["mask", "delete"]})


@registered
class PartitionShap(BaseExplainer):
    name = "shap"
    title = "SHAP (Partition)"
    Config = ShapConfig
    signed = True
    description = ("Shapley values over a hierarchy of token groups: tokens are masked with [MASK] and "
                   "the values add up exactly to f(x) minus the fully masked output.")

    def supports(self, handle: ModelHandle) -> bool:
        return bool(getattr(handle.tokenizer, "is_fast", False))

    def _attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int,
                   config: Any) -> tuple[np.ndarray, dict[str, Any]]:
        import shap

        explained = text[: enc.explained_chars]
        # The masker calls the tokenizer itself; other sessions may be tokenizing at the same time, so it gets
        # a copy of its own (a fast tokenizer is not safe to share between threads).
        with handle.private_tokenizer() as tokenizer:
            masker = shap.maskers.Text(tokenizer)
            if config.perturbation == "delete":
                # An empty mask token makes the masker drop hidden tokens (it joins the rest single-spaced). Set
                # after construction: given to the constructor, "" is tokenized for an id, which fails for a
                # tokenizer that adds no special tokens (a prompt classifier's).
                masker.mask_token, masker.collapse_mask_token = "", True
            explainer = shap.Explainer(lambda xs: handle.predict_proba(list(xs)), masker,
                                       algorithm="partition", output_names=handle.label_names)
            sv = explainer([explained], max_evals=config.max_evals, batch_size=config.batch_size, silent=True)
        values = np.asarray(sv.values[0], dtype=float)  # (tokens, classes)
        if values.shape[0] != len(enc.tokens):
            raise ExplainerError(f"SHAP split the text into {values.shape[0]} tokens, the model into "
                                 f"{len(enc.tokens)}; cannot align them.")
        base_values = np.asarray(sv.base_values[0], dtype=float)
        return values[:, target], {"base_value": float(base_values[target]),
                                   "base_values": base_values, "values_all_classes": values}
