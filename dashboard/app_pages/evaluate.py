"""Evaluate explainers over a dataset: which explainer to trust for this model (a background job)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import services, state
from dashboard.components.charts import plain
from dashboard.components.engine import engine_picker
from dashboard.components.jobs import job_from_link, job_panel
from dashboard.components.sidebar import md, page_setup
from explainers.metrics import BINS, describe_bins
from explainers.sanity import THRESHOLD
from model_zoo import LoupeError

handle = page_setup("Evaluate explainers")
st.caption("Runs the explainers over N sentences of a split and ranks them by faithfulness (ERASER "
           "comprehensiveness and sufficiency AOPC, with a random ranking for scale), agreement and cost, with a "
           "model-randomisation sanity check on the first sentences. It runs in the background; results are "
           "cached on disk per model, dataset and explainer settings.")
if handle is None:
    st.info("Pick a model in the sidebar first.")
    st.stop()

model = st.session_state.get(state.MODEL_OK) or handle.id  # the model in use, as the sidebar checked it
choices = services.method_choices(handle)
c1, c2, c3 = st.columns([1, 1, 3])
split = c1.selectbox("Split", ["test", "validation"], help="Rotten Tomatoes split to sample from")
n = int(c2.number_input("Sentences", min_value=5, max_value=1000, value=100, step=5))
methods = c3.multiselect("Explainers", list(choices), format_func=lambda m: choices.get(m, m),
                         default=services.default_methods(handle))
st.caption(f"Rough cost on a CPU: IG and SHAP take 1–3 s per sentence, LIME about as long, attention much less; "
           f"{n} sentences × {len(methods)} explainers is minutes. Finished sentences are kept if you cancel.")
run_on = engine_picker(state.EVAL_ENGINE)
if st.button("Run evaluation", type="primary", disabled=not methods):
    try:
        st.query_params["job"] = services.start_evaluation(model, split, n, methods, run_on)
    except LoupeError as err:
        st.error(str(err), icon="⚠️")

if not st.query_params.get("job"):
    recent = services.recent_jobs("evaluate")  # this person's only
    if recent:
        st.caption("Your recent evaluations:")
        for j in recent:
            if st.button(f"{j['id']} · {j.get('state')}", key=state.eval_open(j["id"])):
                st.query_params["job"] = j["id"]
                st.rerun()
    st.stop()

st.divider()
job_id = job_from_link("evaluate")
if job_id is None:
    st.stop()
status = job_panel(job_id, key=state.EVAL_PANEL)
result = services.job_result(job_id) if status.get("state") == "done" else None
if not result:
    st.stop()


def fmt(e: dict[str, Any]) -> str:
    if e.get("mean") is None:
        return "–"
    return f"{e['mean']:.3f}" + (f" ± {e['ci']:.3f}" if e.get("ci") is not None else "")


def sanity(r: dict[str, Any]) -> str:
    e = r.get("sanity") or {}
    if e.get("mean") is None:
        return "–"
    return f"{e['mean']:.2f}" + (" ✓" if e["mean"] <= THRESHOLD else " ✗ barely changes")


def rank(r: dict[str, Any]) -> str:
    if r["method"] == "random":
        return ""
    return f"{r.get('rank') or ''}" + ("=" if r.get("tied_with") else "")


st.markdown(f"#### Ranking on {md(result['model'])} · {md(result['dataset'])} · {result['n']} sentences")
rows = list(result["rows"]) + ([result["random"]] if result.get("random") else [])
titles = {r["method"]: r["title"] for r in rows}
table = pd.DataFrame([{
    "rank": rank(r),
    "explainer": r["title"] if r["method"] != "random" else "random ranking (scale)",
    "comprehensiveness AOPC ↑": fmt(r["comp_aopc"]), "sufficiency AOPC ↓": fmt(r["suff_aopc"]),
    "deletion AUC ↓": fmt(r["deletion_auc"]), "agreement ρ": fmt(r["agreement"]),
    "sanity ρ ↓": sanity(r) if r["method"] != "random" else "",
    "not significantly different from": ", ".join(titles.get(m, m) for m in r.get("tied_with") or []),
    "passes": fmt(r["passes"]), "seconds": fmt(r["seconds"]),
} for r in rows])
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "rank": st.column_config.TextColumn(help="By mean comprehensiveness. '=' shares a rank: a paired Wilcoxon test "
                                             "on the same sentences (Holm-adjusted, 5%) finds no real difference."),
    "sanity ρ ↓": st.column_config.TextColumn(
        help=f"Model randomisation (Adebayo et al., 2018): mean Spearman correlation of score magnitudes "
             f"between each explanation and the one "
             f"made after every weight was re-drawn, over the first {result['settings'].get('sanity_n', 0)} "
             f"sentences. Above {THRESHOLD}: the explanation barely depends on the model.")})
settings = result.get("settings", {})
st.caption(f"AOPC over the {describe_bins(settings.get('bins', BINS))} (k capped at each sentence's words, repeats "
           "dropped).")
curves = [r for r in result["rows"] if r.get("sanity_curve")]
if curves:
    with st.expander("Sanity check: how each explanation changes as the model is randomised, top layer first"):
        steps = list(curves[0]["sanity_steps"])
        fig_s = go.Figure()
        for r in curves:
            fig_s.add_trace(go.Scatter(x=steps, y=r["sanity_curve"], mode="lines+markers", name=plain(r["title"])))
        fig_s.add_hline(y=THRESHOLD, line_dash="dash", line_color="#999")
        fig_s.update_layout(height=320, margin=dict(l=0, r=0, t=10, b=0), yaxis=dict(title="mean Spearman of |scores|",
                            range=[-1, 1]), legend=dict(orientation="h"))
        st.plotly_chart(fig_s, width="stretch", config={"displayModeBar": False})
        st.caption("An explainer that explains the model falls toward 0 as its weights are re-drawn; one that "
                   "stays high shows the text rather than the decision.")
fig = go.Figure()
for r in rows:
    fig.add_trace(go.Bar(x=[r["title"] if r["method"] != "random" else "random"], y=[r["comp_aopc"]["mean"] or 0],
                         error_y=dict(type="data", array=[r["comp_aopc"].get("ci") or 0]), showlegend=False,
                         marker_color="#999" if r["method"] == "random" else "#2166ac"))
fig.update_layout(height=320, margin=dict(l=0, r=0, t=30, b=0), yaxis_title="comprehensiveness AOPC",
                  title=dict(text="Higher is more faithful (mean ± 95% CI)", font=dict(size=13)))
st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
