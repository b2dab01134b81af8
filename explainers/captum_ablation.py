"""Feature ablation (occlusion of one word at a time, all its word-pieces together), via Captum."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from explainers.base import BaseExplainer, registered, token_words, word_spans
from explainers.captum_ig import baseline_ids
from model_zoo.handle import Encoded, ModelHandle


@dataclass
class AblationConfig:
    baseline: str = field(default="mask", metadata={"help": "Token that replaces each word-piece of the ablated word",
                                                    "choices": ["mask", "pad", "unk"]})
    perturbations_per_eval: int = field(default=32, metadata={"help": "Ablated copies per model pass",
                                                              "min": 1, "max": 512, "hosted_max": 64})


@registered
class FeatureAblation(BaseExplainer):
    name = "ablation"
    title = "Feature Ablation"
    Config = AblationConfig
    signed = True
    description = ("The drop in the target probability when a word (all its word-pieces) is replaced by "
                   "[MASK], one word at a time.")

    def _attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int,
                   config: Any) -> tuple[np.ndarray, dict[str, Any]]:
        from captum.attr import FeatureAblation as CaptumAblation

        # One feature group per word, so a word is removed whole as the faithfulness metrics remove it.
        # Specials (and anything outside a word) share group 0, which is never ablated.
        owner = token_words(enc.offsets, enc.special, word_spans(text, enc.explained_chars))
        groups = torch.tensor([w + 1 for w in owner], device=enc.input_ids.device)
        n_groups = int(groups.max().item())
        feature_mask = groups.unsqueeze(0)
        # Captum ablates group 0 too; give it the original ids as its baseline so that changes nothing.
        base = torch.where(feature_mask == 0, enc.input_ids, baseline_ids(handle, enc, config.baseline))
        with torch.no_grad():
            attr = CaptumAblation(handle.forward_probs).attribute(
                enc.input_ids, baselines=base, target=target, additional_forward_args=(enc.attention_mask,),
                feature_mask=feature_mask, perturbations_per_eval=min(config.perturbations_per_eval, n_groups + 1),
            )
        # Captum gives every token of a group the group's drop; share it out so the word view sums back to it.
        sizes = torch.bincount(groups, minlength=n_groups + 1)[groups]
        scores = (attr[0] / sizes).float().cpu().numpy()
        scores[groups.cpu().numpy() == 0] = 0.0
        return scores, {}
