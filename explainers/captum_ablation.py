"""Feature ablation (occlusion of one token at a time), via Captum."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from explainers.base import BaseExplainer, registered
from explainers.captum_ig import baseline_ids
from model_zoo.handle import Encoded, ModelHandle


@dataclass
class AblationConfig:
    baseline: str = field(default="mask", metadata={"help": "Token that replaces the ablated token",
                                                    "choices": ["mask", "pad", "unk"]})
    perturbations_per_eval: int = field(default=32, metadata={"help": "Ablated copies per model pass",
                                                              "min": 1, "max": 512})


@registered
class FeatureAblation(BaseExplainer):
    name = "ablation"
    title = "Feature Ablation"
    Config = AblationConfig
    signed = True
    description = "The drop in the target probability when each token is replaced by [MASK], one at a time."

    def _attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int,
                   config: Any) -> tuple[np.ndarray, dict[str, Any]]:
        from captum.attr import FeatureAblation as CaptumAblation

        special = torch.tensor(enc.special, device=enc.input_ids.device)
        # One feature group per word-piece; special tokens share group 0, which is never ablated.
        groups = torch.cumsum((~special).long(), dim=0) * (~special).long()
        base = baseline_ids(handle, enc, config.baseline)
        n_groups = int(groups.max().item())
        feature_mask = groups.unsqueeze(0)
        # Captum ablates group 0 too; give it the original ids as its baseline so that changes nothing.
        base = torch.where(feature_mask == 0, enc.input_ids, base)
        with torch.no_grad():
            attr = CaptumAblation(handle.forward_probs).attribute(
                enc.input_ids, baselines=base, target=target, additional_forward_args=(enc.attention_mask,),
                feature_mask=feature_mask, perturbations_per_eval=min(config.perturbations_per_eval, n_groups + 1),
            )
        scores = attr[0].float().cpu().numpy()
        scores[np.asarray(enc.special)] = 0.0
        return scores, {}
