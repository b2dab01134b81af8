"""Error analysis: where the model in use goes wrong on a Rotten Tomatoes split, and how honest its confidence is."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import services, state
from dashboard.components.charts import plain
from dashboard.components.highlight import esc_md
from dashboard.components.sidebar import page_setup
from dashboard.report import csv_bytes, sections_report
from model_zoo import LoupeError

handle = page_setup("Error analysis")
st.caption("The model in use predicts every text of a labelled Rotten Tomatoes split in one batch: its accuracy, "
           "macro F1 and confusion matrix, how calibrated its confidence is, the slices of the split where it is "
           "worst, and the texts it gets wrong.")
if handle is None:
    st.info("Pick a model in the sidebar first.")
    st.stop()
model = st.session_state.get(state.MODEL_OK) or handle.id  # the model in use, as the sidebar checked it
if not services.rt_labels_ok(handle):
    classes = ", ".join(handle.label_names)
    st.info(f"This model's classes are {esc_md(classes)}. The bundled Rotten Tomatoes splits need a model whose "
            "classes are negative, positive (in that order), so there is nothing to analyse it on here. "
            "Analysing your own labelled CSV is not available on this page yet.")
    st.stop()

split = st.selectbox("Split", services.ERROR_SPLITS, key=state.ERR_SPLIT, format_func=services.split_title,
                     help="Test is held out from training and checkpoint choice; validation chose the checkpoint "
                          "and is where the temperature is fitted.")
try:
    with st.spinner(f"Predicting every text of {services.split_title(split)}…"):
        report = services.analyse(handle, split)
except LoupeError as err:
    st.error(f"Could not analyse the model on this split. {esc_md(services.shown_error(err))}")
    st.stop()
names = list(report.label_names)
where = esc_md(report.split)

# --- metrics --------------------------------------------------------------------------------------------------
st.markdown(f"#### Metrics · {where}")
c1, c2, c3 = st.columns(3)
c1.metric("Accuracy", f"{report.accuracy:.3f}")
c2.metric("Macro F1", f"{report.f1_macro:.3f}")
c3.metric("Texts", f"{report.n:,}")
per_class = [{"class": n, "precision": p, "recall": r, "texts": s}
             for n, p, r, s in zip(names, report.precision, report.recall, report.support)]
left, right = st.columns(2)
with left:
    st.caption(f"Per class · {where}")
    st.dataframe(pd.DataFrame(per_class), hide_index=True, width="stretch", column_config={
        "precision": st.column_config.NumberColumn(format="%.3f", help="Of the texts predicted as this class, "
                                                                       "the share that are"),
        "recall": st.column_config.NumberColumn(format="%.3f", help="Of the texts of this class, the share found")})
with right:
    cm = [list(row) for row in report.confusion]
    fig = go.Figure(go.Heatmap(z=cm, x=[plain(n) for n in names], y=[plain(n) for n in names], text=cm,
                               texttemplate="%{text}", colorscale="Blues", showscale=False, hoverinfo="skip"))
    fig.update_layout(height=260, margin=dict(l=0, r=0, t=30, b=0), xaxis_title="predicted", yaxis_title="true",
                      yaxis=dict(autorange="reversed"),
                      title=dict(text=f"Confusion matrix · {plain(report.split)}", font=dict(size=13)))
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})

# --- slices ---------------------------------------------------------------------------------------------------
st.markdown(f"#### Slices · {where}")
k1, k2 = st.columns([4, 1])
keyword = k1.text_input("Keyword or regular expression", key=state.ERR_KEYWORD, max_chars=200,
                        placeholder="e.g. plot, or with the box ticked: \\b(boring|dull)\\b",
                        help="Adds a slice of the texts that contain it and one of those that do not "
                             "(case-insensitive).")
as_regex = k2.checkbox("Regular expression", key=state.ERR_REGEX)
try:
    found = services.error_slices(report, keyword, as_regex)
except LoupeError as err:
    st.error(esc_md(err))
    found = services.error_slices(report)
st.dataframe(pd.DataFrame([{"slice": s.name, "by": s.kind, "texts": s.size, "accuracy": s.accuracy,
                            "95% CI low": s.low, "95% CI high": s.high} for s in found]),
             hide_index=True, width="stretch", column_config={
                 "accuracy": st.column_config.NumberColumn(format="%.3f"),
                 "95% CI low": st.column_config.NumberColumn(format="%.3f", help="Wilson score interval"),
                 "95% CI high": st.column_config.NumberColumn(format="%.3f", help="Wilson score interval")})
st.caption("Worst first. Length: word-count terciles of this split. Negation: a text with not, no, never, n't, "
           "nothing, nobody, none, neither, nor, without or hardly. A slice whose interval overlaps the overall "
           f"accuracy ({report.accuracy:.3f}) may not really be worse.")

# --- calibration ----------------------------------------------------------------------------------------------
st.markdown(f"#### Calibration · {where}")
cal_rows: list[dict[str, Any]] = []
view: services.CalibrationView | None = None
try:
    with st.spinner(f"Fitting a temperature on {services.split_title(services.FIT_SPLIT)}…"):
        view = services.calibration_view(handle, report, split)
except LoupeError as err:
    st.error(f"Could not measure calibration. {esc_md(services.shown_error(err))}")
if view is not None:
    if view.card_temperature != 1.0:
        st.caption(f"The model already applies temperature {view.card_temperature:.3f} from its card; “before” is "
                   "its own probabilities without it.")
    if view.note:
        st.info(esc_md(view.note))
    fig_r = go.Figure()
    steps: list[tuple[str, Any]] = [("before", view.before)]
    if view.after is not None:
        steps.append((f"after (T = {view.temperature:.3f})", view.after))
    for (label, cal), colour in zip(steps, ("#b2182b", "#2166ac")):
        fig_r.add_trace(go.Bar(x=[(b.lo + b.hi) / 2 for b in cal.bins], y=[b.accuracy for b in cal.bins],
                               name=label, marker_color=colour, opacity=0.75,
                               customdata=[[b.count, b.confidence or 0] for b in cal.bins],
                               hovertemplate="accuracy %{y:.3f}<br>mean confidence %{customdata[1]:.3f}"
                                             "<br>%{customdata[0]} texts<extra></extra>"))
    fig_r.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line=dict(dash="dash", color="#777")))
    fig_r.update_layout(height=320, margin=dict(l=0, r=0, t=30, b=0), barmode="group", legend=dict(orientation="h"),
                        xaxis=dict(title="confidence (top class)", range=[0, 1]),
                        yaxis=dict(title="accuracy", range=[0, 1]),
                        title=dict(text=f"Reliability diagram · {plain(report.split)}", font=dict(size=13)))
    r1, r2 = st.columns([3, 2])
    r1.plotly_chart(fig_r, width="stretch", config={"displayModeBar": False})
    cal_rows += [{"": label, "ECE": cal.ece, "Brier": cal.brier, "NLL": cal.nll, "accuracy": cal.accuracy}
                for label, cal in steps]
    r2.dataframe(pd.DataFrame(cal_rows), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.4f") for c in ("ECE", "Brier", "NLL",
                                                                                           "accuracy")})
    if view.temperature is not None:
        r2.caption(f"Temperature fitted on {esc_md(view.fitted_on)}, measured on {where}. It changes confidence, "
                   "never the predicted class.")
    stored = services.in_store(str(model))
    save = r2.button("Save temperature to the model card", key=state.ERR_SAVE,
              disabled=view.temperature is None or not stored,
              help="Writes the temperature to the model's card in the store: from then on every page, explainer "
                   "and report uses the calibrated probabilities." if stored else
                   "Only models in the store keep a temperature on their card.")
    if save and view.temperature is not None and view.after is not None:
        try:
            services.save_temperature(str(model), view.temperature, view.fitted_on, view.before.ece,
                                      view.after.ece, view.reported_on)
            st.session_state[state.ERR_SAVED] = (str(model), view.temperature)
        except LoupeError as err:
            r2.error(esc_md(services.shown_error(err)))
    saved = st.session_state.get(state.ERR_SAVED)
    if saved and saved[0] == str(model):
        r2.success(f"Saved temperature {saved[1]:.3f} to the card of {esc_md(saved[0])}; the model is reloaded "
                   "with it.")

# --- examples -------------------------------------------------------------------------------------------------
st.markdown(f"#### Examples · {where}")
f1, f2, f3 = st.columns([2, 1, 1])
by_name = {s.name: s for s in found}
chosen = f1.selectbox("Slice", [""] + list(by_name), key=state.ERR_SLICE,
                      format_func=lambda s: s or "all texts")
true_in = f2.multiselect("True class", names, default=names, key=state.ERR_TRUE)
pred_in = f3.multiselect("Predicted class", names, default=names, key=state.ERR_PRED)
members = list(by_name[chosen].members) if chosen in by_name else None
rows = [r for r in services.error_examples(report, members) if r["true"] in true_in and r["predicted"] in pred_in]
shown = pd.DataFrame([{**r, "explain": services.explain_link(str(model), str(r["text"]))} for r in rows],
                     columns=["text", "true", "predicted", "confidence", "correct", "explain"])
st.dataframe(shown, hide_index=True, width="stretch", column_config={
    "confidence": st.column_config.NumberColumn(format="%.3f", help="Probability of the predicted class"),
    "explain": st.column_config.LinkColumn("explain", display_text="Explain ↗",
                                           help="Opens the Explain page on this sentence")})
st.caption(f"{len(rows):,} of {report.n:,} texts · misclassified first, then the least confident.")
d1, d2 = st.columns(2)
d1.download_button("Download CSV", csv_bytes(rows), file_name=f"errors-{split}.csv", mime="text/csv",
                   disabled=not rows)
overall = [{"split": report.split, "texts": report.n, "accuracy": report.accuracy, "macro F1": report.f1_macro}]
confusion = [{"true \\ predicted": n, **{p: v for p, v in zip(names, row)}} for n, row in zip(names, report.confusion)]
sections: list[tuple[str, Any]] = [("Metrics", overall), ("Per class", per_class), ("Confusion matrix", confusion)]
if cal_rows and view is not None:
    sections.append((f"Calibration (temperature fitted on {view.fitted_on})", cal_rows))
sections += [("Slices (worst first)", [{"slice": s.name, "texts": s.size, "accuracy": s.accuracy,
                                        "95% CI low": s.low, "95% CI high": s.high} for s in found]),
             ("Examples" + (f" · {chosen}" if chosen else ""), rows)]
d2.download_button("Download HTML report",
                   sections_report(f"Error analysis · {services.shown_error(model)}", sections,
                                   note=f"Every figure is measured on {report.split}."),
                   file_name=f"errors-{split}.html", mime="text/html")
