"""``PromptedLM``: a causal language model and a prompt template behaving as a sequence classifier.

It is called like a Hugging Face classifier (``model(input_ids=..., attention_mask=...)`` or with
``inputs_embeds``) on the *user's text only*; it puts the template's prefix (instruction, demonstrations, the
start of the query) before the text and its suffix (the answer cue) after it, runs the LM, reads the next-token
logits at the last position and returns, as ``logits``, the log-probabilities of the labels:

    log p(label) = log_softmax over labels of logsumexp over the label's words of logit(first token of word)

that is, the label words' next-token probabilities renormalised over the labels. With contextual calibration
(Zhao et al., 2021) they are divided by the same probabilities for content-free texts (``N/A``, ``""``,
``[MASK]``, averaged) and renormalised: ``log p - log p_cf``, log-softmaxed again.

Because the template lives here, every explainer sees only the text's tokens (so its words, perturbations and
baselines are the text's), and gradients reach only the text's embeddings. Batches are padded on the right, so
a text's answer position never sees padding and batched results equal unbatched ones. The prefix's keys and
values are computed once and reused by every batch (few-shot prompts are mostly prefix); they and the
calibration prior are recomputed when the weights change (e.g. the sanity check's randomised copies).

Structure for the model-randomisation check (the sanity check walks ``base_model_prefix``):
``transformer`` holds the text's embedding layer (``embeddings.word_embeddings``) and the LM's decoder stack;
``lm_head`` is the "classifier head" (for an LM that ties its input and output embeddings, re-drawing it
re-draws the word embeddings too).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class _Embeddings(nn.Module):
    """The text's embedding layer: what gradient x input hooks (its output is the text's input embeddings)."""

    def __init__(self, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.word_embeddings = word_embeddings

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.word_embeddings(input_ids)
        return out


class _Backbone(nn.Module):
    def __init__(self, decoder: nn.Module, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.decoder = decoder
        self.embeddings = _Embeddings(word_embeddings)


@dataclass
class PromptOutput:
    """What a call returns: label log-probabilities (``logits``, shape ``(batch, labels)``); with
    ``output_attentions``, the attention weights over the whole prompt (one per layer, ``(1, heads, S, S)``)."""

    logits: torch.Tensor
    attentions: tuple[torch.Tensor, ...] | None = None


def _fingerprint(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """Changes whenever a weight is written in place or moved (storage and version counter of each)."""
    return tuple((p.data_ptr(), p._version) for p in module.parameters())


_EAGER_SWITCH = threading.Lock()  # one attention pass at a time switches an LM to eager attention


class PromptedLM(nn.Module):
    """See the module docstring.

    Args:
        lm: a causal LM (``base_model`` = decoder stack, ``get_output_embeddings()`` = its head).
        prefix_ids, suffix_ids: the template's token ids before and after the text.
        label_tokens: per label, the first token id of each of its words.
        content_free_ids: the token ids of each content-free text (as the text tokenizer splits it).
        calibrate: divide by the content-free probabilities.
    """

    base_model_prefix = "transformer"

    def __init__(self, lm: Any, prefix_ids: Sequence[int], suffix_ids: Sequence[int],
                 label_tokens: Sequence[Sequence[int]], content_free_ids: Sequence[Sequence[int]],
                 calibrate: bool = False) -> None:
        super().__init__()
        self.transformer = _Backbone(lm.base_model, lm.get_input_embeddings())
        self.lm_head = lm.get_output_embeddings()
        self.config = lm.config
        self.prefix_ids = [int(i) for i in prefix_ids]
        self.suffix_ids = [int(i) for i in suffix_ids]
        self.label_tokens = [[int(t) for t in ts] for ts in label_tokens]
        self.content_free_ids = [[int(i) for i in ids] for ids in content_free_ids]
        self.calibrate = bool(calibrate)
        self._cache_lock = threading.Lock()
        self._prefix_cache: tuple[Any, ...] | None = None  # (fingerprint, keys/values per layer, last hidden)
        self._prior_cache: tuple[Any, torch.Tensor] | None = None  # (fingerprint, log p_cf)

    # --- copying ---------------------------------------------------------------------------------------
    def __deepcopy__(self, memo: dict[int, Any]) -> PromptedLM:
        # The lock cannot be copied; the caches are dropped (a copy's weights are about to change).
        import copy

        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key == "_cache_lock":
                new.__dict__[key] = threading.Lock()
            elif key in ("_prefix_cache", "_prior_cache"):
                new.__dict__[key] = None
            elif key == "prompt":  # the template and the LM's tokenizer: shared, never changed
                new.__dict__[key] = value
            else:
                new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    # --- the parts ----------------------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Embedding:
        # Not a ``word_embeddings`` attribute: explainers look for the module that has one (the text's embedding
        # layer, ``transformer.embeddings``), and it must not be this one.
        emb: nn.Embedding = self.transformer.embeddings.word_embeddings
        return emb

    @property
    def device(self) -> torch.device:
        return self.get_input_embeddings().weight.device

    def _embed(self, ids: Sequence[int]) -> torch.Tensor:
        return self.get_input_embeddings()(torch.tensor(list(ids), dtype=torch.long, device=self.device))

    def _prefix(self) -> tuple[Any, ...] | None:
        """``(keys/values per layer, the prefix's last hidden state)`` of the template prefix (cached)."""
        if not self.prefix_ids:
            return None
        fp = _fingerprint(self)
        with self._cache_lock:
            if self._prefix_cache is not None and self._prefix_cache[0] == fp:
                return self._prefix_cache[1:]
            with torch.no_grad():
                out = self.transformer.decoder(inputs_embeds=self._embed(self.prefix_ids).unsqueeze(0),
                                               use_cache=True)
            past = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
            layers = tuple((layer.keys.detach(), layer.values.detach()) for layer in past.layers)
            self._prefix_cache = (fp, layers, out.last_hidden_state[0, -1].detach())
            return self._prefix_cache[1:]

    # --- running -------------------------------------------------------------------------------------------
    def _hidden(self, rows: Sequence[torch.Tensor], use_prefix: bool) -> torch.Tensor:
        """The last hidden state of each row (``(n_i, d)`` embeddings), after the cached prefix if ``use_prefix``."""
        from transformers import DynamicCache

        prefix = self._prefix() if use_prefix else None
        n_prefix = len(self.prefix_ids) if prefix is not None else 0
        lengths = [int(r.shape[0]) for r in rows]
        width = max(lengths) if lengths else 0
        if width == 0:
            if prefix is None:
                raise ValueError("empty prompt")
            return prefix[1].unsqueeze(0).expand(len(rows), -1)
        x = torch.nn.utils.rnn.pad_sequence(list(rows), batch_first=True)  # right padding
        mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths], device=self.device)
        kwargs: dict[str, Any] = {}
        if prefix is not None:
            layers = [(k.expand(len(rows), -1, -1, -1), v.expand(len(rows), -1, -1, -1)) for k, v in prefix[0]]
            kwargs["cache"] = DynamicCache(ddp_cache_data=layers, config=self.config)
            mask = torch.cat([torch.ones(len(rows), n_prefix, dtype=mask.dtype, device=self.device), mask], dim=1)
        out = self.transformer.decoder(inputs_embeds=x, attention_mask=mask, use_cache=prefix is not None, **kwargs)
        hidden = out.last_hidden_state
        last = torch.tensor([max(n - 1, 0) for n in lengths], device=self.device)
        picked = hidden[torch.arange(len(rows), device=self.device), last]
        if prefix is not None and min(lengths) == 0:  # an empty row answers from the prefix alone
            empty = torch.tensor([n == 0 for n in lengths], device=self.device).unsqueeze(1)
            picked = torch.where(empty, prefix[1].unsqueeze(0), picked)
        return picked

    def _label_log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Label log-probabilities (uncalibrated) from the answer position's hidden states ``(batch, d)``."""
        flat = [t for ts in self.label_tokens for t in ts]
        weight = self.lm_head.weight[flat]
        bias = self.lm_head.bias[flat] if getattr(self.lm_head, "bias", None) is not None else None
        logits = torch.nn.functional.linear(hidden, weight, bias).float()
        logits = _finish_logits(logits, self.config)
        out, start = [], 0
        for ts in self.label_tokens:
            out.append(torch.logsumexp(logits[:, start:start + len(ts)], dim=-1))
            start += len(ts)
        return torch.log_softmax(torch.stack(out, dim=-1), dim=-1)

    def score_texts(self, text_embeds: Sequence[torch.Tensor]) -> torch.Tensor:
        """Uncalibrated label log-probabilities of texts given as embeddings ``(n_i, d)`` each."""
        suffix = self._embed(self.suffix_ids) if self.suffix_ids else None
        rows = [torch.cat([t, suffix]) if suffix is not None else t for t in text_embeds]
        if not self.prefix_ids and any(r.shape[0] == 0 for r in rows):
            raise ValueError("A prompt with no prefix and no suffix needs a non-empty text.")
        return self._label_log_probs(self._hidden(rows, use_prefix=True))

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Uncalibrated label log-probabilities of whole prompts given as token ids (no prefix cache)."""
        rows = [self._embed(p) for p in prompts]
        return self._label_log_probs(self._hidden(rows, use_prefix=False))

    def log_prior(self) -> torch.Tensor:
        """log p_cf: the mean label probabilities of the content-free texts, logged (cached per weights)."""
        fp = _fingerprint(self)
        with self._cache_lock:
            if self._prior_cache is not None and self._prior_cache[0] == fp:
                return self._prior_cache[1]
        with torch.no_grad():
            probs = self.score_texts([self._embed(ids) for ids in self.content_free_ids]).exp().mean(dim=0)
        prior = torch.log(probs.clamp_min(1e-12))
        with self._cache_lock:
            self._prior_cache = (fp, prior)
        return prior

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, output_attentions: bool = False,
                **kwargs: Any) -> PromptOutput:
        if "labels" in kwargs:  # a training loop (the Fine-tune job) expects a classifier head and a loss
            from model_zoo.prompting.template import PromptError

            raise PromptError("A prompt classifier has no classifier head to train; edit its prompt on the Prompt "
                              "playground page instead.")
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("PromptedLM needs input_ids or inputs_embeds.")
            inputs_embeds = self.transformer.embeddings(input_ids)
        mask = attention_mask if attention_mask is not None else torch.ones(inputs_embeds.shape[:2],
                                                                            device=inputs_embeds.device)
        keep = mask.bool()
        rows = [inputs_embeds[i][keep[i]] for i in range(inputs_embeds.shape[0])]
        attentions = None
        if output_attentions:
            if len(rows) != 1:
                raise ValueError("PromptedLM gives attention weights for one text at a time.")
            log_p, attentions = self._prompt_attentions(rows[0])
        else:
            log_p = self.score_texts(rows)
        if self.calibrate:
            log_p = torch.log_softmax(log_p - self.log_prior().to(log_p.device), dim=-1)
        return PromptOutput(logits=log_p, attentions=attentions)

    # --- attention ---------------------------------------------------------------------------------------------
    def attention_readout(self, n_text: int) -> tuple[int, int, int]:
        """Where the attention explainer reads the whole prompt's attention: ``(row, start, end)``, the answer
        position (the prompt's last token, whose next-token logits decide) and the text's columns."""
        start = len(self.prefix_ids)
        return start + n_text + len(self.suffix_ids) - 1, start, start + n_text

    def _prompt_attentions(self, text: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Label log-probabilities and attention weights of the whole prompt around ``text`` (``(n, d)``
        embeddings), in one eager-attention pass without the prefix cache (the cache holds no attention rows)."""
        parts = [self._embed(ids) for ids in (self.prefix_ids, self.suffix_ids)]
        x = torch.cat([parts[0], text, parts[1]]).unsqueeze(0)
        # SDPA returns no weights: eager for this pass. The LM's config is shared (by every layer, and by prompt
        # classifiers over one LM), so attention passes take turns; a plain pass meanwhile computes the same
        # numbers with eager attention.
        with _EAGER_SWITCH:
            previous = self.config._attn_implementation
            self.config._attn_implementation = "eager"
            try:
                out = self.transformer.decoder(inputs_embeds=x, output_attentions=True)
            finally:
                self.config._attn_implementation = previous
        if not out.attentions or out.attentions[0] is None:
            raise ValueError(f"{type(self.transformer.decoder).__name__} returned no attention weights.")
        return self._label_log_probs(out.last_hidden_state[:, -1]), tuple(out.attentions)


def _finish_logits(logits: torch.Tensor, config: Any) -> torch.Tensor:
    """What some LM families do to the head's output before the softmax (scaling, soft-capping)."""
    scale = getattr(config, "logit_scale", None)  # Cohere
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        logits = logits * float(scale)
    scaling = getattr(config, "logits_scaling", None)  # Granite
    if isinstance(scaling, (int, float)) and not isinstance(scaling, bool) and scaling:
        logits = logits / float(scaling)
    cap = getattr(config, "final_logit_softcapping", None)  # Gemma 2/3
    if isinstance(cap, (int, float)) and not isinstance(cap, bool) and cap:
        logits = torch.tanh(logits / float(cap)) * float(cap)
    return logits
