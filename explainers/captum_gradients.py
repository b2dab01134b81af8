"""Gradient-based saliency: Saliency (Simonyan et al., 2014) and Gradient x Input (Shrikumar et al., 2016).

Both compute what Captum's ``Saliency(abs=True)`` and ``LayerGradientXActivation`` compute (the tests check them
against a hand computation), in the same forward pass that gives the prediction: one pass per explanation
instead of a prediction pass plus a gradient pass.
"""

from __future__ import annotations

import weakref
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


# model -> its embedding layer (or None): found once per model object rather than by walking its modules on
# every explanation.
_EMBEDDING_LAYERS: weakref.WeakKeyDictionary[Any, torch.nn.Module | None] = weakref.WeakKeyDictionary()


def embedding_layer(model: Any) -> torch.nn.Module | None:
    """The module whose output is the model's input representation: word + position + type embeddings,
    after their LayerNorm (BERT's ``embeddings``, DistilBERT's, RoBERTa's ...); None if there is none."""
    if model in _EMBEDDING_LAYERS:
        return _EMBEDDING_LAYERS[model]
    found = next((module for module in model.modules()
                  if isinstance(getattr(module, "word_embeddings", None), torch.nn.Embedding)), None)
    _EMBEDDING_LAYERS[model] = found
    return found


def _embeds(handle: ModelHandle, enc: Encoded) -> torch.Tensor:
    return handle.model.get_input_embeddings()(enc.input_ids).detach().requires_grad_()


def _probs_and_gradient(handle: ModelHandle, enc: Encoded, target: int | None, wrt: torch.Tensor | None = None,
                        layer: torch.nn.Module | None = None) -> tuple[np.ndarray, int, torch.Tensor, torch.Tensor]:
    """One forward + backward pass: ``(probabilities, target, d p_target / d x, x)``, where ``x`` is ``wrt``
    (input embeddings passed in) or the output of ``layer`` (captured by a hook for this pass only)."""
    captured: list[torch.Tensor] = []

    def keep(_module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        output = output if output.requires_grad else output.detach().requires_grad_()
        captured.append(output)
        return output

    hook = layer.register_forward_hook(keep) if layer is not None else None
    try:
        with torch.enable_grad():
            if wrt is not None:
                probs = handle.forward_probs(None, enc.attention_mask, inputs_embeds=wrt)  # type: ignore[arg-type]
            else:
                probs = handle.forward_probs(enc.input_ids, enc.attention_mask)
            target = int(torch.argmax(probs[0]).item()) if target is None else target
            x = wrt if wrt is not None else captured[0]
            (grad,) = torch.autograd.grad(probs[0, target], x)
    finally:
        if hook is not None:
            hook.remove()
    return probs[0].detach().double().cpu().numpy(), target, grad, x.detach()


@registered
class Saliency(BaseExplainer):
    name = "saliency"
    title = "Saliency"
    Config = SaliencyConfig
    signed = False
    needs_gradients = True
    needs_exclusive_model = False  # gradients of the embeddings it passes in: no hooks on the model
    description = "The size of the gradient of the target probability with respect to each token's embedding."

    def _predict_and_attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int | None,
                               config: Any) -> tuple[np.ndarray, int, np.ndarray, dict[str, Any]]:
        probs, target, grad, _ = _probs_and_gradient(handle, enc, target, wrt=_embeds(handle, enc))
        g = grad[0].detach().float().abs()
        score = {"l2": g.norm(dim=-1), "l1": g.sum(dim=-1), "max": g.max(dim=-1).values}[config.norm]
        return probs, target, score.cpu().numpy(), {}


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

    def _predict_and_attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int | None,
                               config: Any) -> tuple[np.ndarray, int, np.ndarray, dict[str, Any]]:
        # Not the raw word embedding: BERT adds position and type embeddings and applies LayerNorm, which
        # ignores any shift and scale of its input, so grad . word_embedding measures the position instead.
        probs, target, grad, act = _probs_and_gradient(handle, enc, target, layer=embedding_layer(handle.model))
        # Prompt tuning prepends virtual tokens to the embedding output; the text's tokens are the last ones.
        scores = (grad * act)[0].sum(dim=-1)[-enc.input_ids.shape[1]:]
        return probs, target, scores.detach().float().cpu().numpy(), {}
