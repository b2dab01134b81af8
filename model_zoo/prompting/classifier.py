"""Building a prompt classifier's :class:`~model_zoo.ModelHandle` from a causal LM, its tokenizer and a template.

Tokens. The handle's tokenizer is a copy of the LM's that splits *the user's text* exactly as the LM's tokenizer
splits it inside the whole prompt: with the pattern's space before ``{text}`` folded into the text's first token
(``Review: a dull film`` -> ``Review``, ``:``, ``Ġa``, ``Ġdull``, ``Ġfilm``), offsets trimmed to the words, and
no special tokens of its own (a BOS token, when the LM wants one, starts the template's prefix). The template's
tokens are not in the handle's encoding at all: :class:`~model_zoo.prompting.model.PromptedLM` adds them. So
explainers, which perturb and attribute the handle's tokens, work on the user's text; :func:`whole_prompt` gives
a handle whose text is the whole prompt body (instruction, demonstrations, query), to attribute those too.

Baseline token. A causal LM's tokenizer has no ``[MASK]`` and often no pad token. The handle's pad token (what
Integrated Gradients' baseline and Feature Ablation put in place of a word; padding itself never reaches the
answer position) is the LM's token for a single space, when the LM has one: the baseline is then the prompt
with the review blanked out, the closest thing to the content-free input of contextual calibration. Otherwise
it is the end-of-sequence token. SHAP masks with ``...`` (the tokenizer has no mask token) and LIME deletes.

Label words. A label's probability is read from its words' *first* tokens at the answer position: one forward
pass answers every label, and for a word the LM splits (``unwatchable`` -> ``Ġun`` ``watch`` ``able``) the first
token is what the model must commit to first. :func:`verbaliser_tokens` says which token each word is scored by;
two labels whose words start with the same token are refused (:class:`VerbaliserError`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from model_zoo.errors import ModelLoadError
from model_zoo.handle import ModelHandle
from model_zoo.prompting.model import PromptedLM
from model_zoo.prompting.template import PromptTemplate, TemplateError, VerbaliserError

MAX_TEXT_TOKENS = 512  # tokens of user text a prompt classifier reads (the rest is truncated, as for any model)
_SENTINEL = "\u2063LOUPE_TEXT\u2063"  # marks the text's place in a rendered chat template


@dataclass(frozen=True)
class WordTokens:
    """How one answer word is scored: ``tokens`` are its tokens after the answer cue, ``scored_by`` the first."""

    label: str
    word: str
    tokens: tuple[str, ...]
    scored_by: str

    @property
    def multi_token(self) -> bool:
        return len(self.tokens) > 1


@dataclass
class PromptSpec:
    """What a prompt classifier is made of, kept on its model (``handle.model.prompt``)."""

    template: PromptTemplate
    lm_tokenizer: Any  # the LM's own tokenizer
    base: str  # the base LM's name (bundled id, file, folder or hub id)
    whole_prompt: bool = False  # the handle's "text" is the whole prompt body


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _leading_specials(tokenizer: Any) -> list[int]:
    """The special tokens the tokenizer puts before a text (a BOS token), if any."""
    full, plain = list(tokenizer("x")["input_ids"]), _ids(tokenizer, "x")
    n = len(full) - len(plain)
    return full[:n] if n > 0 and full[n:] == plain else []


def chat_frame(tokenizer: Any) -> tuple[str, str]:
    """The LM's chat template around one user turn: ``(before, after)``, ``after`` ending where the assistant's
    answer starts.

    Raises:
        TemplateError: the LM has no chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("This language model has no chat template; switch 'chat' off.")
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": _SENTINEL}], tokenize=False,
                                             add_generation_prompt=True)
    before, after = str(rendered).split(_SENTINEL, 1)
    return before, after


def text_tokenizer(lm_tokenizer: Any, leading_space: bool, max_tokens: int) -> Any:
    """A copy of the LM's tokenizer for the user's text (see the module docstring)."""
    from tokenizers import normalizers, processors

    tok = copy.deepcopy(lm_tokenizer)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ModelLoadError("Prompt classifiers need a fast (Rust) tokenizer; this language model has none.")
    byte_level = "ByteLevel" in repr(backend.pre_tokenizer) or "ByteLevel" in repr(backend.decoder)
    backend.post_processor = (processors.ByteLevel(trim_offsets=True) if byte_level
                              else processors.TemplateProcessing(single="$A", pair="$A $B"))
    if leading_space:
        prepend = normalizers.Prepend(" ")
        backend.normalizer = prepend if backend.normalizer is None else normalizers.Sequence([prepend,
                                                                                                backend.normalizer])
    space = _ids(lm_tokenizer, " ")
    pad_id = space[0] if len(space) == 1 else (lm_tokenizer.eos_token_id if lm_tokenizer.eos_token_id is not None
                                               else lm_tokenizer.unk_token_id)
    if pad_id is None:
        raise ModelLoadError("This language model's tokenizer has no single-space, end-of-sequence or unknown token "
                             "to use as the baseline.")
    tok.pad_token = tok.convert_ids_to_tokens(int(pad_id))
    tok.padding_side = "right"
    tok.truncation_side = "right"
    tok.model_max_length = max_tokens
    return tok


def verbaliser_tokens(lm_tokenizer: Any, template: PromptTemplate, context: str) -> list[WordTokens]:
    """The tokens each answer word becomes right after ``context`` (the end of the prompt), as the LM would split
    the prompt followed by the word."""
    gap = "" if template.chat else template.answer_gap
    ctx_ids = _ids(lm_tokenizer, context)
    out = []
    for label in template.labels:
        for word in template.words(label):
            full = _ids(lm_tokenizer, context + gap + word)
            ids = full[len(ctx_ids):] if full[:len(ctx_ids)] == ctx_ids else _ids(lm_tokenizer, gap + word)
            if not ids:
                raise VerbaliserError(f"The answer word {word!r} of {label!r} has no tokens.")
            names = tuple(str(t) for t in lm_tokenizer.convert_ids_to_tokens(ids))
            out.append(WordTokens(label, word, names, names[0]))
    return out


def _label_token_ids(lm_tokenizer: Any, template: PromptTemplate, words: list[WordTokens]) -> list[list[int]]:
    owner: dict[int, str] = {}
    per_label: list[list[int]] = []
    for label in template.labels:
        ids = []
        for w in (w for w in words if w.label == label):
            token_id = int(lm_tokenizer.convert_tokens_to_ids(w.scored_by))
            if owner.get(token_id, label) != label:
                raise VerbaliserError(f"The answer words of {owner[token_id]!r} and {label!r} start with the same "
                                      f"token ({w.scored_by!r}); the model's next token cannot tell them apart. "
                                      "Use words that differ in their first token.")
            owner[token_id] = label
            if token_id not in ids:
                ids.append(token_id)
        per_label.append(ids)
    return per_label


def _lm_limit(lm_tokenizer: Any, config: Any) -> int:
    positions = int(getattr(config, "max_position_embeddings", 0) or 0)
    n = int(getattr(lm_tokenizer, "model_max_length", 0) or 0)
    n = n if 0 < n < 1_000_000 else positions or 2048
    return min(n, positions) if positions else n


def build(lm: Any, lm_tokenizer: Any, template: PromptTemplate, *, base: str, device: torch.device,
          info: dict[str, Any] | None = None, whole_prompt: bool = False) -> ModelHandle:
    """A :class:`ModelHandle` for ``template`` over ``lm`` (which may be shared with other prompt classifiers).

    Raises:
        PromptError: the template, verbaliser or demonstrations cannot be used (a ``LoupeError``).
        ModelLoadError: the LM's tokenizer cannot serve (no fast tokenizer), or the template leaves no room.
    """
    template.check()
    before, after = chat_frame(lm_tokenizer) if template.chat else ("", "")
    lead = [] if template.chat else _leading_specials(lm_tokenizer)
    if whole_prompt:
        prefix, suffix, space = before, after, False
    else:
        r = template.render()
        prefix, suffix, space = before + r.prefix, r.suffix + after, r.space
    prefix_ids = lead + _ids(lm_tokenizer, prefix)
    suffix_ids = _ids(lm_tokenizer, suffix)
    room = _lm_limit(lm_tokenizer, lm.config) - len(prefix_ids) - len(suffix_ids)
    if room < 8:
        raise TemplateError(f"The prompt takes {len(prefix_ids) + len(suffix_ids)} tokens, leaving no room for the "
                            "text in this model's context; use fewer or shorter demonstrations.")
    max_tokens = min(room, MAX_TEXT_TOKENS * (8 if whole_prompt else 1))
    tokenizer = text_tokenizer(lm_tokenizer, space, max_tokens)
    context = (before + template.body("x") + after) if template.chat else template.body("x")
    words = verbaliser_tokens(lm_tokenizer, template, context)
    label_ids = _label_token_ids(lm_tokenizer, template, words)
    content_free = [list(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in template.content_free]
    model = PromptedLM(lm, prefix_ids, suffix_ids, label_ids, content_free, calibrate=template.calibrate)
    model.prompt = PromptSpec(template, lm_tokenizer, base, whole_prompt)  # type: ignore[assignment]
    model.eval()
    info = dict(info or {})
    info.setdefault("id", "prompt-classifier")
    info.setdefault("task", "text classification (prompted language model)")
    info.update(architecture=f"prompted {type(lm).__name__}", prompt={"base": base, **template.to_dict()},
                whole_prompt=whole_prompt, prompt_tokens=len(prefix_ids) + len(suffix_ids))
    # PromptedLM is called as a sequence classifier is (it is not a transformers PreTrainedModel)
    classifier: Any = model
    return ModelHandle(model=classifier, tokenizer=tokenizer, labels=dict(enumerate(template.labels)), device=device,
                       dtype=torch.float32, max_length=max_tokens, info=info,
                       batch_size=64 if device.type == "cuda" else 16)


# --- what a page or a benchmark asks of a prompt classifier ----------------------------------------------------
def spec_of(handle: ModelHandle) -> PromptSpec | None:
    """The prompt classifier's parts, or None when ``handle`` is not a prompt classifier."""
    spec = getattr(handle.model, "prompt", None)
    return spec if isinstance(handle.model, PromptedLM) and isinstance(spec, PromptSpec) else None


def is_prompt_classifier(handle: ModelHandle) -> bool:
    return spec_of(handle) is not None


def _spec(handle: ModelHandle) -> PromptSpec:
    spec = spec_of(handle)
    if spec is None:
        raise TemplateError(f"{handle.id} is not a prompt classifier.")
    return spec


def _lm_of(model: PromptedLM) -> Any:
    """An object with what :func:`build` reads from an LM (its parts, shared, not copied)."""

    class _LM:
        config = model.config
        base_model = model.transformer.decoder

        @staticmethod
        def get_input_embeddings() -> Any:
            return model.get_input_embeddings()

        @staticmethod
        def get_output_embeddings() -> Any:
            return model.lm_head

    _LM.__name__ = str((getattr(model.config, "architectures", None) or ["CausalLM"])[0])
    return _LM()


def rebuild(handle: ModelHandle, template: PromptTemplate | None = None, *, whole_prompt: bool | None = None,
            calibrate: bool | None = None) -> ModelHandle:
    """The same LM with another template, calibration setting or text scope (whole prompt or user text only)."""
    spec = _spec(handle)
    model = handle.model
    assert isinstance(model, PromptedLM)
    template = template if template is not None else spec.template
    if calibrate is not None:
        from model_zoo.prompting.template import replace_template

        template = replace_template(template, calibrate=calibrate)
    info = {k: v for k, v in handle.info.items() if k not in ("prompt", "whole_prompt", "prompt_tokens")}
    return build(_lm_of(model), spec.lm_tokenizer, template, base=spec.base, device=handle.device, info=info,
                 whole_prompt=spec.whole_prompt if whole_prompt is None else whole_prompt)


def whole_prompt(handle: ModelHandle) -> ModelHandle:
    """A handle whose text is the whole prompt body (:meth:`PromptTemplate.body`): explainers then attribute the
    instruction, the demonstrations and the cue too. Only a chat template's frame stays out of reach."""
    return rebuild(handle, whole_prompt=True)


def verbaliser_report(handle: ModelHandle) -> list[WordTokens]:
    """Which token scores each answer word of ``handle``'s verbaliser."""
    spec = _spec(handle)
    t = spec.template
    before, after = chat_frame(spec.lm_tokenizer) if t.chat else ("", "")
    context = (before + t.body("x") + after) if t.chat else t.body("x")
    return verbaliser_tokens(spec.lm_tokenizer, t, context)


def prompt_text(handle: ModelHandle, text: str) -> str:
    """The prompt the LM reads for ``text``, as a string (chat frame included)."""
    spec = _spec(handle)
    t = spec.template
    body = text if spec.whole_prompt else t.body(text)
    if t.chat:
        before, after = chat_frame(spec.lm_tokenizer)
        return before + body + after
    return body


def prior(handle: ModelHandle) -> list[float]:
    """p_cf: the label probabilities of the content-free texts (what calibration divides by)."""
    model = handle.model
    assert isinstance(model, PromptedLM)
    with handle.use():
        return [float(p) for p in model.log_prior().exp().cpu()]


def text_ids(handle: ModelHandle, texts: Sequence[str]) -> list[list[int]]:
    """The token ids of ``texts`` as the handle's model reads them (truncated to its limit)."""
    with handle.private_tokenizer() as tok:
        enc = tok(list(texts), truncation=True, max_length=handle.max_length, add_special_tokens=False)
    return [list(ids) for ids in enc["input_ids"]]
