"""LIME (Ribeiro et al., 2016): a sparse linear model fit to predictions on texts with words removed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explainers.base import BaseExplainer, registered
from model_zoo.handle import Encoded, ModelHandle

_SPLIT = r"\W+"


@dataclass
class LimeConfig:
    num_samples: int = field(default=500, metadata={"help": "Perturbed texts to fit the local model on",
                                                    "min": 20, "max": 20000})
    seed: int = field(default=0, metadata={"help": "Random seed of the sampling", "min": 0, "max": 2**31 - 1})
    kernel_width: float = field(default=25.0, metadata={"help": "Width of the proximity kernel",
                                                        "min": 0.1, "max": 1000.0})


@registered
class Lime(BaseExplainer):
    name = "lime"
    title = "LIME"
    Config = LimeConfig
    signed = True
    description = ("Removes random subsets of words, and fits a weighted linear model to the target "
                   "probability; each word's weight is its score.")

    def _attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int,
                   config: Any) -> tuple[np.ndarray, dict[str, Any]]:
        from lime.lime_text import IndexedString, LimeTextExplainer

        explained = text[: enc.explained_chars]
        scores = np.zeros(len(enc.tokens))
        words = IndexedString(explained, split_expression=_SPLIT, bow=False)
        if words.num_words() == 0:
            return scores, {"note": "no words LIME can remove (only symbols)"}
        explainer = LimeTextExplainer(class_names=[handle.label_name(i) for i in range(handle.num_labels)],
                                      split_expression=_SPLIT, bow=False, random_state=config.seed,
                                      kernel_width=config.kernel_width)
        exp = explainer.explain_instance(explained, handle.predict_proba, labels=(target,),
                                         num_features=words.num_words(), num_samples=config.num_samples)
        # Spread each word's weight evenly over the word-pieces inside it.
        for feature, weight in exp.as_map()[target]:
            start = int(words.string_position(feature)[0])
            end = start + len(words.word(feature))
            inside = [i for i, ((a, b), s) in enumerate(zip(enc.offsets, enc.special))
                      if not s and a < end and b > start]
            for i in inside:
                scores[i] += weight / len(inside)
        return scores, {"r2": float(exp.score), "intercept": float(exp.intercept[target])}
