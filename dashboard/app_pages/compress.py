"""Compress: quantised, pruned and distilled variants compared on accuracy, latency, size and explanation drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import services, state
from dashboard.components.engine import engine_picker
from dashboard.components.highlight import CSS, highlight_html, legend_html, scale_of
from dashboard.components.jobs import job_from_link, job_panel
from dashboard.components.sidebar import md, page_setup
from dashboard.components.widgets import config_values, setting_widget
from dashboard.report import csv_bytes, table_report
from explainers import Attribution
from explainers.compression_report import CompressConfig
from model_zoo import LoupeError
from model_zoo.compression import VARIANTS

page_setup("Compress a model")
st.caption("Make quantised, pruned and distilled variants of a model and compare them on accuracy, latency, "
           "size — and on whether they still decide for the same reasons (explanation drift).")

LABELS = {"variant": "variant", "accuracy_b1": "accuracy (b=1)", "accuracy_b32": "accuracy (b=32)",
          "f1_macro_b32": "macro F1 (b=32)", "agreement_b1": "agrees with original (b=1)",
          "agreement_b32": "agrees with original (b=32)", "p50_ms_b1": "p50 ms (b=1)", "p95_ms_b1": "p95 ms (b=1)",
          "p50_ms_b32": "p50 ms (b=32)", "p95_ms_b32": "p95 ms (b=32)", "throughput_per_s": "texts/s",
          "size_mb": "size MB", "parameters": "parameters", "sparsity_all_weights": "zeros / all weights",
          "sparsity_pruned_layers": "zeros / pruned layers' weights", "peak_memory_mb": "peak MB",
          "drift_spearman": "drift: rank corr.", "drift_top_k": "drift: top-k overlap",
          "drift_delta_comp": "drift: Δ comp. AOPC"}
DRIFT_LABELS = {"variant": "variant", "explainer": "explainer", "batch_size": "batch size", "spearman": "rank corr.",
                "kendall": "Kendall tau", "top_k_overlap": "top-k overlap", "delta_comp_aopc": "Δ comp. AOPC",
                "delta_suff_aopc": "Δ suff. AOPC", "flipped": "prediction flipped", "n": "sentences",
                "skipped": "skipped because"}
RATIOS = ("accuracy_b1", "accuracy_b32", "f1_macro_b32", "agreement_b1", "agreement_b32", "sparsity_all_weights",
          "sparsity_pruned_layers", "drift_spearman", "drift_top_k", "drift_delta_comp")


def _spec_widgets(kind: str) -> list[dict[str, Any]]:
    """The settings a kind of variant reads (its registry entry's ``fields``), bounds from the spec; a kind with
    a sweep (pruning: sparsities) takes several values of that setting at once, one variant each."""
    variant, settings = VARIANTS[kind], services.variant_settings()
    sweep, levels = variant.sweep, [None]
    values: dict[str, Any] = {"kind": kind}
    for name in variant.fields:
        key = state.cx_setting(kind, name)
        if sweep is not None and name == sweep.setting:
            levels = st.multiselect(sweep.label, list(sweep.options), default=list(sweep.default), key=key,
                                    format_func=sweep.format.format, help=settings[name].help)
        else:
            values[name] = setting_widget(settings[name], key)
    return [values if sweep is None else {**values, sweep.setting: v} for v in levels]


def _labels(result: dict[str, Any]) -> dict[str, str]:
    """Column labels; the headline drift columns name the explainers they average over."""
    if "drift_compared_on" not in result:  # a job finished before drift was compared on shared explainers
        return LABELS
    shared = ", ".join(result["drift_compared_on"]) or "no shared explainer"
    return {**LABELS, **{c: f"{LABELS[c]} [{shared}]" for c in ("drift_spearman", "drift_top_k", "drift_delta_comp")}}


def _notes(result: dict[str, Any]) -> None:
    """What the table's numbers were measured over: explainers, batch sizes, sparsity denominators."""
    shared = result.get("drift_compared_on")
    if shared:
        st.caption(f"Drift columns compared on: **{md(', '.join(shared))}** — the explainers every variant ran "
                   f"(mean over them, model scoring {result.get('drift_batch_size')} texts per pass). "
                   "Every explainer's drift is in the table below.")
    elif shared is not None:
        st.caption("No explainer ran on every variant (int8 passes no gradients), so there are no headline drift "
                   "columns: compare variants per explainer in the table below.")
    st.caption("Dynamic int8 computes one activation scale per padded batch, so its outputs depend on the other "
               "texts in the batch: accuracy and agreement are measured at b=1 (one text per pass, as a typed text "
               "is predicted) and b=32 (32 length-sorted texts per pass).")
    denominators = next((r.get("sparsity_denominators") for r in result["rows"] if r.get("sparsity_denominators")),
                        None)
    if denominators:
        st.caption(f"Zeros / all weights: over {md(denominators['all_weights'])}. Zeros / pruned layers' weights: "
                   f"over {md(denominators['pruned_layers'])}. Counts are the original's; variants with fewer "
                   "layers have fewer.")


def _drift_table(result: dict[str, Any]) -> None:
    records = result.get("drift_rows") or []
    if not records:
        return
    st.markdown("#### Drift per explainer")
    table = pd.DataFrame([{DRIFT_LABELS[k]: r.get(k) for k in DRIFT_LABELS} for r in records])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={DRIFT_LABELS[c]: st.column_config.NumberColumn(format="%.3f") for c in
                                ("spearman", "kendall", "top_k_overlap", "delta_comp_aopc", "delta_suff_aopc",
                                 "flipped")})


def _results(job_id: str, result: dict[str, Any]) -> None:
    rows = result["rows"]
    labels = _labels(result)
    st.markdown(f"#### Results · {md(result['model'])} · {result.get('eval_texts')} test texts · "
                f"drift on {result.get('drift_texts')} sentences · {result.get('threads')} threads")
    # Drift first after accuracy: it is the column no other compression tool has.
    first = ["variant", "accuracy_b1", "accuracy_b32", "f1_macro_b32", "drift_spearman", "drift_top_k",
             "drift_delta_comp"]
    order = first + [c for c in result["columns"] if c not in first]
    table = pd.DataFrame([{labels[c]: r.get(c) for c in order if c in labels} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={labels[c]: st.column_config.NumberColumn(format="%.3f") for c in RATIOS})
    _notes(result)
    for name, err in (result.get("errors") or {}).items():
        st.warning(f"{md(name)}: {md(services.shown_error(err))}")
    c1, c2 = st.columns(2)
    fig = go.Figure()
    for r in rows:
        fig.add_trace(go.Scatter(x=[r.get("p50_ms_b1")], y=[r.get("accuracy_b1")], mode="markers+text",
                                 text=[r["variant"]], textposition="top center", name=r["variant"],
                                 marker=dict(size=max(8, (r.get("size_mb") or 10) ** 0.5 * 4), opacity=0.7)))
    fig.update_layout(height=360, margin=dict(l=0, r=0, t=30, b=0), showlegend=False,
                      xaxis_title="latency p50 at batch 1 (ms)", yaxis_title="accuracy at batch 1",
                      title=dict(text="Accuracy against latency (bubble: size on disk)", font=dict(size=13)))
    c1.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
    fig = go.Figure()
    names = [r["variant"] for r in rows]
    fig.add_trace(go.Bar(x=names, y=[r.get("drift_spearman") for r in rows], name="rank correlation"))
    fig.add_trace(go.Bar(x=names, y=[r.get("drift_top_k") for r in rows], name="top-k overlap"))
    shared = ", ".join(result.get("drift_compared_on") or []) or "no shared explainer"
    fig.update_layout(height=360, margin=dict(l=0, r=0, t=30, b=0), yaxis=dict(range=[0, 1.05]), barmode="group",
                      title=dict(text=f"Explanation drift against the original (1 = same reasons), compared on: "
                                      f"{shared}", font=dict(size=13)), legend=dict(orientation="h"))
    c2.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
    _drift_table(result)
    export = [{labels.get(k, k): v for k, v in r.items() if k in labels} for r in rows]
    d1, d2, _ = st.columns([1, 1, 3])
    d1.download_button("Table as CSV", csv_bytes(export), file_name=f"{job_id}.csv", mime="text/csv", width="stretch")
    d2.download_button("HTML report", table_report(f"Compression of {result['model']}", export).encode(),
                       file_name=f"{job_id}.html", mime="text/html", width="stretch")
    _viewer(result)
    _save(result)


def _viewer(result: dict[str, Any]) -> None:
    viewer = result.get("viewer") or {}
    texts = viewer.get("texts") or []
    if not texts:
        return
    st.markdown("#### Per-sentence explanations: original and variant side by side")
    variants = [v for v in viewer["attributions"] if v != "original"]
    c1, c2, c3 = st.columns([3, 1, 1])
    i = c1.selectbox("Sentence", range(len(texts)), format_func=lambda k: texts[k][:90], key=state.CX_SENTENCE)
    variant = c2.selectbox("Variant", variants, key=state.CX_VARIANT)
    methods = [m for m in viewer["methods"] if m in viewer["attributions"].get(variant, {})]
    if not methods:
        st.info(f"{variant} has no explanations to compare (gradient explainers cannot run on int8 layers).")
        return
    method = c3.selectbox("Explainer", methods, key=state.CX_METHOD)
    pair = [Attribution.from_dict(viewer["attributions"][name][method][i]) for name in ("original", variant)]
    shared = max(scale_of(a) for a in pair)
    st.markdown(CSS + legend_html(pair[0].target_label, pair[0].signed), unsafe_allow_html=True)
    for col, name, a in zip(st.columns(2), ("original", variant), pair):
        col.caption(f"{name} · p({md(a.target_label)}) = {a.probs[a.target]:.3f}" +
                    (f" · scored {viewer['batch_size']} texts per pass" if "batch_size" in viewer else ""))
        col.markdown(highlight_html(a, "words", shared), unsafe_allow_html=True)
    d = viewer["drift"].get(variant, {}).get(method, [])
    if i < len(d):
        rho = d[i].get("spearman")
        st.caption(f"This sentence: rank correlation {rho if rho is None else f'{rho:.3f}'}, top-k overlap "
                   f"{d[i]['top_k_overlap']:.2f}, prediction flipped: {'yes' if d[i]['prediction_flipped'] else 'no'}.")


def _save(result: dict[str, Any]) -> None:
    dirs = result.get("variant_dirs") or {}
    if not dirs:
        return
    st.markdown("#### Save a variant to the store")
    c1, c2, c3 = st.columns([1, 2, 1])
    name = c1.selectbox("Variant", list(dirs), key=state.CX_SAVE_VARIANT)
    new_id = c2.text_input("Name in the store", value=f"{Path(str(result['model'])).name}-{name}",
                           key=state.cx_save_name(name))
    if c3.button("Save", type="primary", width="stretch"):
        try:
            services.save_variant(dirs[name], new_id)
        except LoupeError as err:
            st.error(md(services.shown_error(err)))
        else:
            st.session_state[state.CX_SAVED] = new_id
    saved = st.session_state.get(state.CX_SAVED)
    if saved and services.in_store(saved):
        st.success(f"Saved as {saved}; its card says how it was made.")
        if st.button("Explain it"):
            state.use_model(saved)
            st.switch_page("app_pages/explain.py")


if st.query_params.get("job"):
    job_id = job_from_link("compress")  # None (and why) for a job that is not this person's compression job
    if job_id:
        status = job_panel(job_id, key=state.CX_PANEL)
        result = services.job_result(job_id) if status.get("state") == "done" else None
        if result:
            _results(job_id, result)
    if st.button("New comparison"):
        del st.query_params["job"]
        st.rerun()
    st.stop()

ids = [c["id"] for c in services.store_models() if not c.get("peft") and not c.get("quantization")]
if not ids:
    st.info("The store has no model to compress yet.")
    st.stop()
current = st.session_state.get(state.MODEL)
model = st.selectbox("Model", ids, index=ids.index(current) if current in ids else 0, key=state.CX_MODEL)
device = services.device_type()
kinds = services.variant_kinds()
st.caption(f"Variants available on **{md(device)}**: " + ", ".join(VARIANTS[k].title for k in kinds) +
           (" · fp16/bf16 need a GPU." if device == "cpu" else " · int8 dynamic quantisation runs on the CPU."))
specs: list[dict[str, Any]] = []
cols = st.columns(len(kinds))
for col, kind in zip(cols, kinds):
    with col:
        if st.checkbox(VARIANTS[kind].title, value=kind in ("int8", "prune"), key=state.cx_kind_on(kind),
                       help=VARIANTS[kind].changes):
            specs += _spec_widgets(kind)
c1, c2, c3 = st.columns([1, 1, 2])
with c1:  # bounds, defaults and help from the job's config spec (the limits the job itself checks)
    n_eval = int(config_values(CompressConfig, state.CX_SETTINGS, scope="compress", only=["n_eval"])["n_eval"])
with c2:
    n_drift = int(config_values(CompressConfig, state.CX_SETTINGS, scope="compress", only=["n_drift"])["n_drift"])
all_methods = services.all_methods()
methods = c3.multiselect("Explainers for drift", list(all_methods), default=["ig", "shap"],
                         format_func=lambda m: all_methods.get(m, m))
run_on = engine_picker(state.CX_ENGINE)  # where the drift sentences are explained
if st.button("Run comparison", type="primary", disabled=not specs or not methods):
    config = {"model": model, "variants": specs, "methods": methods, "n_eval": n_eval, "n_drift": n_drift}
    try:
        new_job = services.start_compression(config, run_on)  # refuses bad settings here, not minutes later in the job
    except LoupeError as err:
        st.error(md(services.shown_error(err)))
    else:
        st.query_params["job"] = new_job
        st.rerun()
st.caption("Distillation and layer recovery fine-tune on Rotten Tomatoes training texts: minutes on a CPU.")
