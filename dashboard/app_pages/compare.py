"""Compare models: one text through two or more models; predictions, attributions and drift side by side."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import services, state
from dashboard.components import charts
from dashboard.components.highlight import CSS, esc_md, highlight_html, legend_html, scale_of
from dashboard.components.privacy import DEPENDENCE_HELP, dependence_panel, pii_controls, pii_found, pii_view_or_none
from dashboard.components.sidebar import page_setup
from dashboard.components.waiting import say_in
from dashboard.redaction import pii_share
from explainers import Attribution
from model_zoo import LoupeError, ModelHandle, ModelLoadError

current = page_setup("Compare models")
st.caption("The same text through several models — a base and its fine-tuned version, fp32 and int8 — with "
           "each explainer's attributions on one colour scale, and how far the explanation drifted.")

DEFAULT_METHODS = ("ig", "lime")
ids = [c["id"] for c in services.store_models()]
all_methods = services.all_methods()
# A link fills the page; nothing runs until Compare is pressed.
if not st.session_state.get(state.COMPARE_LINK_APPLIED):
    st.session_state[state.COMPARE_LINK_APPLIED] = True
    link = services.read_link(st.query_params.to_dict(), all_methods, models=ids)
    if link.models is not None:
        st.session_state[state.COMPARE_MODELS] = link.models
    if link.methods is not None:
        st.session_state[state.COMPARE_METHODS] = link.methods
    if link.text is not None:
        st.session_state[state.COMPARE_TEXT] = link.text
        n_models = len(link.models or ids[:2])
        blocker = services.autorun_blocker(link, n_models * len(link.methods or DEFAULT_METHODS), n_models)
        st.session_state[state.COMPARE_LINK_PENDING if blocker else state.COMPARE_AUTORUN] = blocker or True
    if services.pii_link_mode(st.query_params.to_dict()):
        st.session_state[state.COMPARE_PII_MODE] = services.pii_link_mode(st.query_params.to_dict())
    st.session_state[state.COMPARE_LINK_NOTES] = services.link_message(link)
if st.session_state.get(state.COMPARE_LINK_NOTES):
    st.warning(st.session_state[state.COMPARE_LINK_NOTES], icon="🔗")
default_models = [m for m in [st.session_state.get(state.MODEL)] if m in ids] + [m for m in ids][:2]
st.session_state.setdefault(state.COMPARE_MODELS, list(dict.fromkeys(default_models))[:2])
st.session_state.setdefault(state.COMPARE_TEXT, st.session_state.get(state.TEXT) or "")
st.session_state.setdefault(state.COMPARE_METHODS, list(DEFAULT_METHODS))

st.session_state[state.COMPARE_MODELS] = [m for m in st.session_state[state.COMPARE_MODELS] if m in ids]
st.session_state[state.COMPARE_METHODS] = [m for m in st.session_state[state.COMPARE_METHODS] if m in all_methods]
if len(st.session_state[state.COMPARE_TEXT]) > services.text_limit():
    st.session_state[state.COMPARE_TEXT] = ""
models = st.multiselect("Models (the first is the reference)", ids, key=state.COMPARE_MODELS,
                        help="Models in the store. Drift is measured against the first one.")
text = st.text_area("Text", key=state.COMPARE_TEXT, height=100, max_chars=services.text_limit())
pii_mode, pii_style, _ = pii_controls(state.COMPARE_PII_MODE, state.COMPARE_PII_STYLE)
typed = pii_view_or_none(text, pii_mode, pii_style, pii_mode != "off" and not services.check_text(text))
if typed is not None:
    pii_found(typed)
methods = st.multiselect("Explainers", list(all_methods), format_func=lambda m: all_methods.get(m, m),
                         key=state.COMPARE_METHODS)
run = st.button("Compare", type="primary", disabled=len(models) < 2 or not methods)
if st.session_state.get(state.COMPARE_LINK_PENDING) and not run:
    st.info("Opened from a link: the models, text and explainers are filled in, and nothing has run yet. "
            f"{st.session_state[state.COMPARE_LINK_PENDING]} Press **Compare** to run them.", icon="🔗")
if run or st.session_state.pop(state.COMPARE_AUTORUN, False):
    st.session_state.pop(state.COMPARE_LINK_PENDING, None)
    st.session_state.pop(state.COMPARE_LINK_NOTES, None)
    too_long = services.check_text(text)
    if too_long:
        st.error(too_long)
        st.stop()
    if not text.strip():
        st.warning("The text is empty. Type or paste some text to compare.")
        st.stop()
    if len(models) < 2:
        st.warning("Pick at least two models.")
        st.stop()
    st.session_state[state.COMPARE_REQUEST] = (tuple(models), text, tuple(methods), pii_mode, pii_style)
    params = {"models": ",".join(models), "text": typed.shown_text if typed is not None else text,
              "methods": ",".join(methods)}
    if pii_mode != "off":
        params["pii"] = pii_mode
    st.query_params.from_dict(params)

request = st.session_state.get(state.COMPARE_REQUEST)
if not request or len(request) != 5:
    st.stop()
models, text, methods, pii_mode, pii_style = request
# Hide: the models read the text as typed, everything shown holds it redacted; redact: they read it redacted.
view = pii_view_or_none(text, pii_mode, pii_style, pii_mode != "off")
model_text = view.model_text if view is not None else text
private = view is not None and view.private
handles: dict[str, ModelHandle] = {}
for m in models:
    try:
        handles[m] = services.get_handle(m)
    except ModelLoadError as err:
        st.error(f"{esc_md(m)}: {esc_md(err)}")
if len(handles) < 2:
    st.stop()

st.divider()
st.markdown(CSS, unsafe_allow_html=True)
cols = st.columns(len(handles))
preds: dict[str, list[float]] = {}
for col, (m, h) in zip(cols, handles.items()):
    with col:
        st.markdown(f"**{esc_md(m)}**")
        probs = services.predict(h, model_text, private=private)
        preds[m] = probs
        labels = h.label_names
        st.plotly_chart(charts.probability_chart(labels, probs, max(range(len(probs)), key=probs.__getitem__)),
                        width="stretch", key=f"loupe_cmp_prob_{m}", config={"displayModeBar": False})

reference = models[0]
drift_rows: list[dict[str, Any]] = []
explained: dict[str, list[Attribution]] = {m: [] for m in handles}  # per model, for the personal-data panel
for method in methods:
    st.markdown(f"#### {esc_md(all_methods.get(method, method))}")
    results: dict[str, Attribution] = {}
    for m, h in handles.items():
        if not services.supports(method, h):
            continue
        with st.spinner(f"{esc_md(all_methods[method])} on {esc_md(m)}…"):
            waiting = st.empty()
            try:
                req = services.ExplainRequest(services.model_key(h), model_text, [method], pii=pii_mode,
                                              style=pii_style, original=text if view is not None else "")
                results[m] = services.run_one(h, req, method, on_wait=say_in(waiting))
            except LoupeError as err:
                st.error(f"{esc_md(m)}: {esc_md(err)}")
            finally:
                waiting.empty()
    if not results:
        continue
    for m, a in results.items():
        explained[m].append(a)
    shown = {m: view.shown(a) if view is not None else a for m, a in results.items()}
    shared = max(scale_of(a) for a in shown.values())  # one colour scale across the models
    first = next(iter(results.values()))
    st.markdown(legend_html(first.target_label, first.signed), unsafe_allow_html=True)
    for col, (m, a) in zip(st.columns(len(shown)), shown.items()):
        with col:
            st.caption(f"{esc_md(m)} · explains {esc_md(a.target_label)} · {a.cost.passes} passes, "
                       f"{a.cost.seconds:.2f} s")
            st.markdown(highlight_html(a, "words", shared), unsafe_allow_html=True)
    if reference in results:
        for m, a in results.items():
            if m == reference:
                continue
            d = services.drift_between(results[reference], a)
            drift_rows.append({"explainer": all_methods[method], "model": m, "Spearman": d.spearman,
                               "Kendall": d.kendall, "top-k overlap": d.top_k_overlap,
                               "prediction flipped": d.prediction_flipped,
                               "Δ p(target)": d.delta_prob})

if drift_rows:
    st.divider()
    st.markdown(f"#### Drift against {esc_md(reference)}", help="Rank correlation of word scores and overlap of the "
                "top-k words between the reference model's explanation and each other model's (1.0 = same).")
    st.dataframe(pd.DataFrame(drift_rows), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("Spearman", "Kendall", "top-k overlap", "Δ p(target)")})

if view is not None:  # hide or redact: does each model's decision depend on the personal data?
    st.divider()
    st.markdown("#### Does each model's decision depend on personal data?", help=DEPENDENCE_HELP)
    for col, (m, h) in zip(st.columns(len(handles)), handles.items()):
        with col:
            dependence_panel(view, h.label_names, services.predict(h, view.original, private=True),
                             services.predict(h, view.redacted), [pii_share(a, view.ranges()) for a in explained[m]],
                             all_methods, heading=f"**{esc_md(m)}**")
