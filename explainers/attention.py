"""Attention: raw weights per layer and head, attention rollout (Abnar & Zuidema, 2020) as token
scores, and bertviz's head and model views as self-contained HTML that works with no network."""

from __future__ import annotations

import html
import json
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from explainers.base import Attribution, BaseExplainer, ExplainerError, registered
from model_zoo.handle import Encoded, ModelHandle
from model_zoo.methods import METHODS


@dataclass
class AttentionConfig:
    residual: float = field(default=0.5, metadata={"help": "Weight of the residual (identity) in rollout",
                                                   "min": 0.0, "max": 1.0})
    start_layer: int = field(default=0, metadata={"help": "First layer included in the rollout", "min": 0, "max": 96})


def rollout(attentions: np.ndarray, residual: float = 0.5, start_layer: int = 0) -> np.ndarray:
    """Attention rollout: head-averaged attention mixed with the identity, multiplied through layers.

    Args:
        attentions: ``(layers, heads, seq, seq)`` weights of one text.
    Returns:
        ``(seq, seq)`` matrix; row ``i`` is how much position ``i`` draws on each input token.
    """
    seq = attentions.shape[-1]
    result = np.eye(seq)
    for layer in attentions[start_layer:]:
        a = residual * np.eye(seq) + (1 - residual) * layer.mean(axis=0)
        a = a / a.sum(axis=-1, keepdims=True)
        result = a @ result
    return result


@registered
class Attention(BaseExplainer):
    name = "attention"
    title = "Attention (rollout)"
    Config = AttentionConfig
    signed = False
    claims_faithfulness = False  # attention weights are not an account of the decision
    description = ("What the model attends to: rollout follows attention from the [CLS] token (a prompt "
                   "classifier: the answer position) through all layers. Attention is not an explanation of the "
                   "decision; compare it with the others.")

    def supports(self, handle: ModelHandle) -> bool:
        if hasattr(handle.model, "attention_readout"):  # a prompt classifier: an eager pass on request
            return True
        # A method that prepends tokens (prompt tuning) leaves attention rows out of line with the text's tokens.
        method = METHODS.get(str((handle.info.get("peft") or {}).get("type")))
        return handle.attn_implementation == "eager" and not (method is not None and method.adds_tokens)

    def _predict_and_attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int | None,
                               config: Any) -> tuple[np.ndarray, int, np.ndarray, dict[str, Any]]:
        # One pass gives the probabilities and the attention weights.
        probs, att = handle.forward_attentions(enc.input_ids, enc.attention_mask)
        target = int(np.argmax(probs[0])) if target is None else target
        # Which row the decision reads and which columns are the text: [CLS] and every token for an encoder; a
        # prompt classifier's answer position and the text inside its prompt (the model says).
        readout = getattr(handle.model, "attention_readout", None)
        n = int(enc.input_ids.shape[1])
        row, start, end = readout(n) if readout is not None else (0, 0, n)
        return probs[0], target, *self._rollout(att[:, 0], enc, config, row, start, end)

    def _rollout(self, att: np.ndarray, enc: Encoded, config: Any, row: int = 0, start: int = 0,
                 end: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Rollout scores from attention weights ``(layers, heads, seq, seq)``: what position ``row`` (the one
        the head reads) draws on, through all layers, at the text's positions ``start:end``."""
        if config.start_layer >= att.shape[0]:
            raise ExplainerError(f"start_layer {config.start_layer} >= the model's {att.shape[0]} layers.")
        end = att.shape[-1] if end is None else end
        roll = rollout(att, config.residual, config.start_layer)
        scores = roll[row, start:end].copy()
        scores[np.asarray(enc.special)] = 0.0
        if (start, end) != (0, att.shape[-1]) and scores.sum() > 0:
            # Inside a prompt nearly all of the mass sits on the template (a causal LM's first token draws most
            # attention: ~1e-7 is left for a review's words in SmolLM2): the text's share of it, summing to 1.
            scores = scores / scores.sum()
        return scores, {"attentions": att[:, :, start:end, start:end].astype(np.float32)}

# --- bertviz, offline ------------------------------------------------------------------------------

_SHIM = ("window.require={config:function(){}};"
         "window.requirejs=function(deps,cb){cb(window.jQuery,window.d3);};")


@lru_cache(maxsize=1)
def _vendor_js() -> str:
    """jQuery (xstatic-jquery) and d3 v5 (mpld3), read from installed packages; no CDN."""
    import mpld3
    import xstatic.pkg.jquery as xjq

    jquery = (Path(xjq.BASE_DIR) / "jquery.min.js").read_text(encoding="utf-8")
    d3 = (Path(mpld3.__file__).parent / "js" / "d3.v5.min.js").read_text(encoding="utf-8")
    # d3 must load while window.define is unset, or it registers as an AMD module instead of window.d3.
    return f"<script>{jquery}</script>\n<script>{d3}</script>\n<script>{_SHIM}</script>"


def _safe_json(data: Any) -> str:
    """JSON that cannot close a <script> element or start HTML."""
    return (json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def bertviz_html(attribution: Attribution, view: str = "head", max_tokens: int = 80) -> str:
    """bertviz's ``head`` or ``model`` view for an attention Attribution, as a full HTML document.

    Token strings are passed as escaped JSON and drawn by d3's ``.text()``, never as HTML.
    """
    att = attribution.extras.get("attentions")
    if att is None:
        raise ExplainerError("This attribution has no attention weights (make it with the attention explainer).")
    if view not in ("head", "model"):
        raise ExplainerError("view must be 'head' or 'model'.")
    tokens = [t.replace("Ġ", " ").replace("▁", " ").replace("</w>", "") for t in attribution.tokens][:max_tokens]
    n = len(tokens)
    att = np.asarray(att)[:, :, :n, :n]
    layers, heads = att.shape[0], att.shape[1]
    vis_id = f"bertviz-{uuid.uuid4().hex}"
    data = [{"name": None, "attn": att.round(4).tolist(), "left_text": tokens, "right_text": tokens}]
    if view == "head":
        params = {"attention": data, "default_filter": "0", "root_div_id": vis_id, "layer": None,
                  "heads": None, "include_layers": list(range(layers))}
        controls = 'Layer: <select id="layer"></select>'
    else:
        params = {"attention": data, "default_filter": "0", "display_mode": "light", "root_div_id": vis_id,
                  "include_layers": list(range(layers)), "include_heads": list(range(heads)), "total_heads": heads}
        controls = ""
    js = resources.files("bertviz").joinpath(f"{view}_view.js").read_text(encoding="utf-8")
    js = js.replace("PYTHON_PARAMS", _safe_json(params))
    note = (f"<p style='font:12px sans-serif;color:#666'>Showing the first {max_tokens} of "
            f"{len(attribution.tokens)} tokens.</p>" if len(attribution.tokens) > max_tokens else "")
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(view)} view</title></head><body style='margin:4px'>{note}"
        f"{_vendor_js()}"
        f"<div id='{vis_id}' style=\"font-family:'Helvetica Neue', Helvetica, Arial, sans-serif;\">"
        f"<span style='user-select:none'>{controls}</span><div id='vis'></div></div>"
        f"<script>{js}</script></body></html>"
    )
