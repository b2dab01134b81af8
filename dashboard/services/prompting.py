"""The prompt playground's calls: base LMs, building this session's prompt classifier, predicting, explaining,
leave-one-out, evaluating and saving to the store.

Base LMs are server resources and are cached per process (``st.cache_resource``). A prompt classifier being
edited is this session's alone: it lives in the session (one at a time, rebuilt when the prompt changes; it shares
the LM's weights), and its explanations are never put in a shared cache. Saved to the store, it is a model like any
other (every page's list, cached like any model).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

import explainers
from dashboard import state
from dashboard.services.explaining import WORK, Notify, session_owner
from explainers import Attribution
from explainers.metrics import Faithfulness
from model_zoo import LoupeError, ModelHandle, hosting, limits, prompting, resolve_device
from model_zoo.prompting import Demonstration, PromptError, PromptScores, PromptTemplate

OTHER_LM = "another language model…"
MAX_EVAL = 1000
DEFAULT_METHODS = ("ig", "ablation")  # the quick ones: SHAP and LIME take a minute each on SmolLM2 on a CPU


def base_lms() -> dict[str, str]:
    """id -> title of the bundled language models that are installed."""
    return prompting.bundled_lms()


def other_lm_allowed() -> bool:
    """Whether a person may name a folder or GGUF file (locally always; hosted, under the operator's roots)."""
    return not hosting.hosted() or bool(hosting.model_roots())


@st.cache_resource(max_entries=2, show_spinner="Loading the language model (the first time a GGUF file is read, "
                                               "about half a minute)…")
def _lm(name: str, stamp: str, device: str) -> tuple[Any, Any]:
    import torch

    lm, tokenizer, _ = prompting.load_lm(name, torch.device(device))
    return lm, tokenizer


# --- the prompt as a form ----------------------------------------------------------------------------------------
def parse_words(raw: str) -> dict[str, list[str]]:
    """``label: word, word`` lines to a verbaliser (label order kept).

    Raises:
        PromptError: a line without a colon (a :class:`VerbaliserError` when nothing is left).
    """
    out: dict[str, list[str]] = {}
    for n, line in enumerate(str(raw).splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise prompting.VerbaliserError(f"Label words, line {n}: write each label on its own line as "
                                            "'label: word, word'.")
        label, words = line.split(":", 1)
        out.setdefault(label.strip(), []).extend(w.strip() for w in words.split(",") if w.strip())
    if not out:
        raise prompting.VerbaliserError("The verbaliser is empty: give each label a line 'label: word, word'.")
    return out


def format_words(template: PromptTemplate) -> str:
    return "\n".join(f"{label}: {', '.join(template.words(label))}" for label in template.labels)


def parse_demonstrations(raw: str) -> list[Demonstration]:
    """``label: text`` lines to demonstrations.

    Raises:
        DemonstrationError: a line without a colon.
    """
    out = []
    for n, line in enumerate(str(raw).splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise prompting.DemonstrationError(f"Typed demonstrations, line {n}: write 'label: text'.")
        label, text = line.split(":", 1)
        out.append(Demonstration(text.strip(), label.strip()))
    return out


def format_demonstrations(demos: Sequence[Demonstration]) -> str:
    return "\n".join(f"{d.label}: {' '.join(d.text.split())}" for d in demos)


@st.cache_data(show_spinner=False)
def training_examples(n: int = 60, max_chars: int = 120) -> dict[str, tuple[str, str]]:
    """Short Rotten Tomatoes training sentences to pick demonstrations from: option -> (text, label), balanced."""
    from model_zoo.data import RT_LABELS, rotten_tomatoes
    from model_zoo.errors import DatasetError

    try:
        train = rotten_tomatoes("train")
    except DatasetError:
        return {}
    order = np.random.default_rng(0).permutation(len(train))
    picked: dict[int, list[int]] = {0: [], 1: []}
    for i in order:
        if 25 <= len(train.texts[i]) <= max_chars and len(picked[train.labels[i]]) < n // 2:
            picked[train.labels[i]].append(int(i))
    rows = [i for pair in zip(picked[0], picked[1]) for i in pair]
    return {f"{RT_LABELS[train.labels[i]]} · {train.texts[i]}": (train.texts[i], RT_LABELS[train.labels[i]])
            for i in rows}


def template_from_form(instruction: str, pattern: str, words: str, picked: Sequence[str], typed: str, chat: bool,
                       calibrate: bool) -> PromptTemplate:
    """The form's prompt, checked.

    Raises:
        PromptError: with a message for the person (no {text} slot, empty verbaliser, a shared word...).
    """
    options = training_examples()
    demos = [Demonstration(*options[p]) for p in picked if p in options] + parse_demonstrations(typed)
    return PromptTemplate.from_dict({
        "instruction": instruction, "pattern": pattern, "verbaliser": parse_words(words),
        "demonstrations": [{"text": d.text, "label": d.label} for d in demos], "chat": chat, "calibrate": calibrate})


def stored_prompt(handle: ModelHandle | None) -> tuple[PromptTemplate, str] | None:
    """``(template, base LM)`` of a loaded prompt classifier (e.g. the sidebar's model), else None."""
    spec = prompting.spec_of(handle) if handle is not None else None
    return (spec.template, spec.base) if spec is not None and not spec.whole_prompt else None


# --- this session's prompt classifier ------------------------------------------------------------------------------
def prompt_classifier(base: str, template: PromptTemplate) -> tuple[str, ModelHandle]:
    """``(key, handle)``: the prompt classifier for ``template`` over ``base``, kept in this session.

    Raises:
        LoupeError: the LM cannot be loaded (or is not allowed here), or the template does not fit it.
    """
    device = str(resolve_device())
    source = prompting.locate_lm(base)  # hosted: only the bundled LMs, the operator's roots and allowed hub ids
    key = json.dumps({"base": base, "stamp": source.stamp, "device": device, **template.to_dict()}, sort_keys=True)
    held = st.session_state.get(state.PR_HANDLE)
    if held is not None and held[0] == key:
        return key, held[1]
    lm, tokenizer = _lm(base, source.stamp, device)
    handle = prompting.build(lm, tokenizer, template, base=base, device=resolve_device(),
                             info={"id": "prompt-playground", "source": "prompt playground",
                                   "base_source": source.kind})
    st.session_state[state.PR_HANDLE] = (key, handle)
    return key, handle


def verbaliser_table(handle: ModelHandle) -> list[dict[str, str]]:
    """One row per answer word: its label, the tokens it becomes after the cue, the token it is scored by."""
    return [{"label": w.label, "word": w.word, "tokens": " ".join(w.tokens), "scored by": w.scored_by}
            for w in prompting.verbaliser_report(handle)]


def prompt_preview(handle: ModelHandle, text: str) -> str:
    """The prompt the LM reads for ``text`` (chat frame included)."""
    return prompting.prompt_text(handle, text)


@dataclass(frozen=True)
class Prediction:
    labels: tuple[str, ...]
    raw: tuple[float, ...]  # uncalibrated
    calibrated: tuple[float, ...]
    prior: tuple[float, ...]  # p_cf


def predict(handle: ModelHandle, text: str) -> Prediction:
    """The label probabilities of ``text`` before and after contextual calibration, and the prior."""
    raw = prompting.raw_proba(handle, [text])[0]
    p_cf = prompting.prior(handle)
    cal = prompting.calibrate(raw[None, :], p_cf)[0]
    return Prediction(tuple(handle.label_names), tuple(float(x) for x in raw), tuple(float(x) for x in cal),
                      tuple(p_cf))


# --- explaining ------------------------------------------------------------------------------------------------
def method_choices(handle: ModelHandle) -> dict[str, str]:
    return {e.name: e.title for e in explainers.available(handle)}


def whole_prompt_problem(handle: ModelHandle, text: str) -> str | None:
    """Why the whole prompt cannot be explained here (longer than this server explains), or None."""
    spec = prompting.spec_of(handle)
    if spec is None:
        return "This model is not a prompt classifier."
    body = spec.template.body(text)
    problem = _text_problem(body)
    if problem:
        return f"The whole prompt is too long to explain here: {problem}"
    whole = prompting.whole_prompt(handle)
    n = len(whole.encode(body).tokens) if body.strip() else 0
    cap = limits.current().tokens_for(whole.max_length)
    if n > cap:
        return (f"The whole prompt has {n} tokens and this server explains at most {cap}: its end (your text and "
                "the answer cue) would be cut off. Use fewer or shorter demonstrations, or explain your text only.")
    return None


def _text_problem(text: str) -> str | None:
    try:
        limits.check_text(text)
    except limits.BudgetError as err:
        return str(err)
    return None


@dataclass
class Explained:
    """One explanation of the playground: on the text, or on the whole prompt (``whole``)."""

    method: str
    attribution: Attribution | None
    faithfulness: Faithfulness | None
    error: str | None = None


def explain(handle: ModelHandle, text: str, methods: Sequence[str], configs: Mapping[str, Any], whole: bool,
            target: int | None = None, on_wait: Notify | None = None) -> list[Explained]:
    """Run the explainers on ``text`` (or on the whole prompt built around it), each with its faithfulness.

    Work waits its turn like every explanation (``WORK``). Failures come back per explainer, as messages.
    """
    from explainers.metrics import faithfulness

    spec = prompting.spec_of(handle)
    target_handle = prompting.whole_prompt(handle) if whole and spec is not None else handle
    explained = spec.template.body(text) if whole and spec is not None else text
    out = []
    for method in methods:
        explainer = explainers.get(method)
        try:
            with WORK.admit(session_owner(), on_wait):
                a = explainer.explain(target_handle, explained, target, configs.get(method))
                f = faithfulness(target_handle, a) if a.words else None
            out.append(Explained(method, a, f))
        except LoupeError as err:
            out.append(Explained(method, None, None, hosting.redact(err)))
    return out


def demonstration_effects(handle: ModelHandle, text: str, target: int | None) -> prompting.DemonstrationEffects:
    """Leave-one-out effect of each demonstration (one batched call)."""
    with WORK.admit(session_owner()):
        return prompting.demonstration_effects(handle, text, target)


def segment_mass(handle: ModelHandle, text: str, attribution: Attribution) -> list[tuple[str, float]]:
    """The share of a whole-prompt attribution's absolute score on the instruction, each demonstration and the
    query: ``(part, share)``."""
    spec = prompting.spec_of(handle)
    if spec is None:
        return []
    segments = spec.template.segments_for(text)
    shares = prompting.segment_mass(segments, [(w.start, w.end, w.score) for w in attribution.words])
    names = []
    for s in segments:
        if s.kind == "demonstration":
            names.append(f"demonstration {s.index + 1} ({spec.template.demonstrations[s.index].label})")
        else:
            names.append("query (your text)" if s.kind == "query" else s.kind)
    return list(zip(names, shares))


# --- evaluating and saving -----------------------------------------------------------------------------------
def max_eval() -> int:
    return MAX_EVAL // 4 if hosting.hosted() else MAX_EVAL


def evaluate(handle: ModelHandle, n: int, progress: Callable[[int, int], None] | None = None) -> PromptScores:
    """Accuracy on ``n`` Rotten Tomatoes validation sentences (a fixed sample), before and after calibration.

    Raises:
        PromptError: the classifier's labels are not Rotten Tomatoes' (negative, positive), or n is out of range.
    """
    from model_zoo.data import rotten_tomatoes

    if not 1 <= int(n) <= max_eval():
        raise PromptError(f"Evaluate on 1 to {max_eval()} sentences.")
    names = list(handle.label_names)
    missing = [name for name in ("negative", "positive") if name not in names]
    if missing or len(names) != 2:
        raise PromptError("Evaluation uses Rotten Tomatoes, whose labels are 'negative' and 'positive': name the two "
                          f"labels so (this prompt has {', '.join(names)}).")
    val = rotten_tomatoes("validation")
    order = np.random.default_rng(0).permutation(len(val))[: int(n)]
    texts = [val.texts[i] for i in order]
    labels = [names.index(("negative", "positive")[val.labels[i]]) for i in order]
    with WORK.admit(session_owner()):
        return prompting.evaluate(handle, texts, labels, progress=progress)


def save(name: str, handle: ModelHandle, scores: PromptScores | None) -> str:
    """Save the session's prompt classifier to the store as ``name`` (with its validation scores, if measured on
    this very prompt); returns the id.

    Raises:
        ModelLoadError: a bad or taken name. PromptError: not a prompt classifier.
    """
    spec = prompting.spec_of(handle)
    if spec is None:
        raise PromptError("Nothing to save: this is not a prompt classifier.")
    name = str(name).strip()
    metrics = {"validation": scores.metrics(spec.template.calibrate)} if scores is not None else None
    prompting.save(name, spec.template, spec.base, metrics=metrics, notes="Saved from the prompt playground.")
    return name
