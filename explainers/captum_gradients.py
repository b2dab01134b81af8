"""Gradient-based saliency: Saliency (Simonyan et al., 2014) and Gradient x Input (Shrikumar et al., 2016),
via Captum."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from explainers.base import BaseExplainer, registered
from model_zoo.handle import Encoded, ModelHandle


@dataclass
class SaliencyConfig:
    norm: str = field(default="l2", metadata={"help": "How a token's gradient vector becomes one score",
                                              "choices": ["l2", "l1", "max"]})


@dataclass
class GradientXInputConfig:
    pass


def embedding_layer(model: Any) -> torch.nn.Module | None:
    """The module whose output is the model's input representation: word + position + type embeddings,
    after their LayerNorm (BERT's ``embeddings``, DistilBERT's, RoBERTa's ...); None if there is none."""
    for module in model.modules():
        if isinstance(getattr(module, "word_embeddings", None), torch.nn.Embedding):
            return module
    return None


def _embeds(handle: ModelHandle, enc: Encoded) -> torch.Tensor:
    return handle.model.get_input_embeddings()(enc.input_ids).detach().requires_grad_()


def _forward_embeds(handle: ModelHandle) -> Any:
    def forward(embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return handle.forward_probs(None, attention_mask, inputs_embeds=embeds)  # type: ignore[arg-type]

    return forward


@registered
class Saliency(BaseExplainer):
    name = "saliency"
    title = "Saliency"
    Config = SaliencyConfig
    signed = False
    needs_gradients = True
    needs_exclusive_model = False  # gradients of the embeddings it passes in: no hooks on the model
    description = "The size of the gradient of the target probability with respect to each token's embedding."

    def _attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int,
                   config: Any) -> tuple[np.ndarray, dict[str, Any]]:
        from captum.attr import Saliency as CaptumSaliency

        with torch.enable_grad():
            grads = CaptumSaliency(_forward_embeds(handle)).attribute(
                _embeds(handle, enc), target=target, abs=True, additional_forward_args=(enc.attention_mask,))
        g = grads[0].detach().float()
        score = {"l2": g.norm(dim=-1), "l1": g.sum(dim=-1), "max": g.max(dim=-1).values}[config.norm]
        return score.cpu().numpy(), {}


@registered
class GradientXInput(BaseExplainer):
    name = "grad_x_input"
    title = "Gradient x Input"
    Config = GradientXInputConfig
    signed = True
    needs_gradients = True
    claims_faithfulness = False  # a local first-order estimate; weak where the model is saturated
    needs_exclusive_model = True  # LayerGradientXActivation hooks the embedding module for the whole run
    description = ("Gradient of the target probability times the embedding layer's output (word + position "
                   "+ type embeddings after LayerNorm), summed over dimensions: a first-order estimate of "
                   "each token's effect. It is local: on a confident prediction the gradients are small and "
                   "noisy, so check its faithfulness before trusting it.")

    def supports(self, handle: ModelHandle) -> bool:
        return super().supports(handle) and embedding_layer(handle.model) is not None

    def _attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int,
                   config: Any) -> tuple[np.ndarray, dict[str, Any]]:
        from captum.attr import LayerGradientXActivation

        # Not the raw word embedding: BERT adds position and type embeddings and applies LayerNorm, which
        # ignores any shift and scale of its input, so grad . word_embedding measures the position instead.
        layer = embedding_layer(handle.model)
        with torch.enable_grad():
            attr = LayerGradientXActivation(handle.forward_probs, layer).attribute(
                enc.input_ids, target=target, additional_forward_args=(enc.attention_mask,))
        # Prompt tuning prepends virtual tokens to the embedding output; the text's tokens are the last ones.
        scores = attr[0].sum(dim=-1)[-enc.input_ids.shape[1]:]
        return scores.detach().float().cpu().numpy(), {}
