"""Compare models: one text through two or more models; predictions, attributions and drift side by side."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import explainers
from dashboard import services, state
from dashboard.components import charts
from dashboard.components.highlight import CSS, highlight_html, legend_html, scale_of
from dashboard.components.sidebar import md, page_setup
from explainers.metrics import drift
from model_zoo import LoupeError, ModelLoadError

current = page_setup("Compare models")
st.caption("The same text through several models — a base and its fine-tuned version, fp32 and int8 — with "
           "each explainer's attributions on one colour scale, and how far the explanation drifted.")

ids = [c["id"] for c in state.store_models()]
qp = st.query_params
if not st.session_state.get("loupe_cmp_qp"):
    st.session_state["loupe_cmp_qp"] = True
    if qp.get("models"):
        st.session_state["loupe_cmp_models"] = [m for m in qp["models"].split(",") if m in ids]
    if qp.get("text"):
        st.session_state["loupe_cmp_text"] = qp["text"]
        st.session_state["loupe_cmp_run"] = True
    if qp.get("methods"):
        st.session_state["loupe_cmp_methods"] = qp["methods"].split(",")
default_models = [m for m in [st.session_state.get(state.MODEL)] if m in ids] + [m for m in ids][:2]
st.session_state.setdefault("loupe_cmp_models", list(dict.fromkeys(default_models))[:2])
st.session_state.setdefault("loupe_cmp_text", st.session_state.get(state.TEXT) or "")
st.session_state.setdefault("loupe_cmp_methods", ["ig", "lime"])

models = st.multiselect("Models (the first is the reference)", ids, key="loupe_cmp_models",
                        help="Models in the store. Drift is measured against the first one.")
text = st.text_area("Text", key="loupe_cmp_text", height=100)
all_methods = {e.name: e.title for e in explainers.REGISTRY.values()}
methods = st.multiselect("Explainers", list(all_methods), format_func=all_methods.get, key="loupe_cmp_methods")
run = st.button("Compare", type="primary", disabled=len(models) < 2 or not methods)
if run or st.session_state.pop("loupe_cmp_run", False):
    if not text.strip():
        st.warning("The text is empty. Type or paste some text to compare.")
        st.stop()
    if len(models) < 2:
        st.warning("Pick at least two models.")
        st.stop()
    st.session_state["loupe_cmp_request"] = (tuple(models), text, tuple(methods))
    st.query_params.from_dict({"models": ",".join(models), "text": text, "methods": ",".join(methods)})

request = st.session_state.get("loupe_cmp_request")
if not request:
    st.stop()
models, text, methods = request
handles = {}
for m in models:
    try:
        handles[m] = state.get_handle(m)
    except ModelLoadError as err:
        st.error(f"{m}: {err}")
if len(handles) < 2:
    st.stop()

st.divider()
st.markdown(CSS, unsafe_allow_html=True)
cols = st.columns(len(handles))
preds = {}
for col, (m, h) in zip(cols, handles.items()):
    with col:
        st.markdown(f"**{md(m)}**")
        probs = state.predict(h, text)
        preds[m] = probs
        labels = [h.label_name(i) for i in range(h.num_labels)]
        st.plotly_chart(charts.probability_chart(labels, probs, max(range(len(probs)), key=probs.__getitem__)),
                        width="stretch", key=f"loupe_cmp_prob_{m}", config={"displayModeBar": False})

reference = models[0]
drift_rows = []
for method in methods:
    st.markdown(f"#### {md(all_methods.get(method, method))}")
    results = {}
    for m, h in handles.items():
        if not explainers.get(method).supports(h):
            continue
        with st.spinner(f"{all_methods[method]} on {m}…"):
            try:
                results[m] = services.run_one(h, services.ExplainRequest(state.model_key(h), text, [method]), method)
            except LoupeError as err:
                st.error(f"{m}: {err}")
    if not results:
        continue
    shared = max(scale_of(a) for a in results.values())  # one colour scale across the models
    first = next(iter(results.values()))
    st.markdown(legend_html(first.target_label, first.signed), unsafe_allow_html=True)
    for col, (m, a) in zip(st.columns(len(results)), results.items()):
        with col:
            st.caption(f"{m} · explains {a.target_label} · {a.cost.passes} passes, {a.cost.seconds:.2f} s")
            st.markdown(highlight_html(a, "words", shared), unsafe_allow_html=True)
    if reference in results:
        for m, a in results.items():
            if m == reference:
                continue
            d = drift(results[reference], a)
            drift_rows.append({"explainer": all_methods[method], "model": m, "Spearman": d.spearman,
                               "Kendall": d.kendall, "top-k overlap": d.top_k_overlap,
                               "prediction flipped": d.prediction_flipped,
                               "Δ p(target)": d.delta_prob})

if drift_rows:
    st.divider()
    st.markdown(f"#### Drift against {md(reference)}", help="Rank correlation of word scores and overlap of the "
                "top-k words between the reference model's explanation and each other model's (1.0 = same).")
    st.dataframe(pd.DataFrame(drift_rows), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("Spearman", "Kendall", "top-k overlap", "Δ p(target)")})
