"""Error analysis: where the model in use goes wrong on a labelled split (a Rotten Tomatoes split or an uploaded
CSV), how honest its confidence is, and which words drive it over the whole split (global explanations)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import services, state
from dashboard.components.charts import plain
from dashboard.components.engine import engine_picker
from dashboard.components.global_words import global_view
from dashboard.components.highlight import esc_md
from dashboard.components.jobs import job_from_link, job_panel
from dashboard.components.privacy import upload_scan
from dashboard.components.sidebar import page_setup
from dashboard.components.uploads import short, upload_bytes
from dashboard.report import csv_bytes, sections_report
from dashboard.services import errors as analysis
from model_zoo import LoupeError, ModelHandle

handle = page_setup("Error analysis")
st.caption("The model in use predicts every text of a labelled split in one batch: its accuracy, macro F1 and "
           "confusion matrix, how calibrated its confidence is, the slices of the split where it is worst, the "
           "texts it gets wrong, and which words push it toward each class over the whole split.")
if handle is None:
    st.info("Pick a model in the sidebar first.")
    st.stop()
model = str(st.session_state.get(state.MODEL_OK) or handle.id)  # the model in use, as the sidebar checked it
names = list(handle.label_names)
BUNDLED, UPLOADED = "Rotten Tomatoes (bundled)", "Upload a CSV"


# --- which texts ----------------------------------------------------------------------------------------------
rt_ok = services.rt_labels_ok(handle)
if not rt_ok:
    st.info(f"This model's classes are {esc_md(', '.join(names))}. The bundled Rotten Tomatoes splits need a model "
            "whose classes are negative, positive (in that order); upload a CSV labelled with this model's classes.")
s1, s2 = st.columns([2, 1])
source = s1.radio("Texts", [BUNDLED, UPLOADED] if rt_ok else [UPLOADED], horizontal=True, key=state.ERR_SOURCE)
upload: analysis.Upload | None = None
if source == BUNDLED:
    split = s2.selectbox("Split", services.ERROR_SPLITS, key=state.ERR_SPLIT, format_func=services.split_title,
                         help="Test is held out from training and checkpoint choice; validation chose the "
                              "checkpoint and is where the temperature is fitted.")
    try:
        with st.spinner(f"Predicting every text of {services.split_title(split)}…"):
            report = services.analyse(handle, split)
    except LoupeError as err:
        st.error(f"Could not analyse the model on this split. {esc_md(services.shown_error(err))}")
        st.stop()
else:
    split = analysis.UPLOAD
    main = upload_bytes(st.file_uploader(f"CSV file (UTF-8, up to {services.MAX_UPLOAD_MB} MB) with a text column "
                                         f"and a label column; labels are this model's classes ({', '.join(names)}) "
                                         f"or their numbers 0–{len(names) - 1}", type=["csv"], key=state.ERR_UPLOAD))
    if main is None:
        st.stop()
    try:
        frame = services.read_csv(main[0], max_bytes=services.MAX_UPLOAD_MB * 1_000_000)
    except LoupeError as err:
        st.error(f"{esc_md(short(main[1]))}: {esc_md(err)}")
        st.stop()
    with st.expander(f"Preview · {len(frame):,} rows × {len(frame.columns):,} columns"):
        st.dataframe(services.preview(frame), hide_index=True, width="stretch")
    cols = list(frame.columns)
    c1, c2 = st.columns(2)
    text_col = c1.selectbox("Text column", cols, index=cols.index("text") if "text" in cols else 0,
                            format_func=short, key=state.ERR_TEXT_COLUMN)
    label_col = c2.selectbox("Label column", cols, index=cols.index("label") if "label" in cols
                             else min(1, len(cols) - 1), format_func=short, key=state.ERR_LABEL_COLUMN)
    try:
        dataset = analysis.upload_dataset(main[0], main[1], str(text_col), str(label_col), names)
        with st.spinner(f"Predicting every text of {short(main[1])}…"):
            report = analysis.analyse_dataset(handle, dataset)
    except LoupeError as err:
        st.error(f"{esc_md(short(main[1]))}: {esc_md(services.shown_error(err))}")
        st.stop()
    for note in dataset.notes:
        st.caption(f"ℹ️ {esc_md(note)}")
    with st.expander("Personal data in this file"):
        st.caption("The texts stay in this session; a global-explanation job keeps the sentences it shows as "
                   "examples with the job. Scan before sharing the page or its job link.")
        upload_scan(main[0], str(text_col), key="err_pii_scan")
    upload = (main[0], main[1], str(text_col), str(label_col))
where = esc_md(report.split)
labels = list(report.label_names)

# --- metrics --------------------------------------------------------------------------------------------------
st.markdown(f"#### Metrics · {where}")
m1, m2, m3 = st.columns(3)
m1.metric("Accuracy", f"{report.accuracy:.3f}")
m2.metric("Macro F1", f"{report.f1_macro:.3f}")
m3.metric("Texts", f"{report.n:,}")
per_class = [{"class": n, "precision": p, "recall": r, "texts": s}
             for n, p, r, s in zip(labels, report.precision, report.recall, report.support)]
left, right = st.columns(2)
with left:
    st.caption(f"Per class · {where}")
    st.dataframe(pd.DataFrame(per_class), hide_index=True, width="stretch", column_config={
        "precision": st.column_config.NumberColumn(format="%.3f", help="Of the texts predicted as this class, "
                                                                       "the share that are"),
        "recall": st.column_config.NumberColumn(format="%.3f", help="Of the texts of this class, the share found")})
with right:
    cm = [list(row) for row in report.confusion]
    fig = go.Figure(go.Heatmap(z=cm, x=[plain(n) for n in labels], y=[plain(n) for n in labels], text=cm,
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

# --- calibration: drawn here, computed last (it may need a second split's predictions) --------------------------
st.markdown(f"#### Calibration · {where}")
calibration_box = st.container()

# --- examples -------------------------------------------------------------------------------------------------
st.markdown(f"#### Examples · {where}")
f1, f2, f3 = st.columns([2, 1, 1])
by_name = {s.name: s for s in found}
chosen = f1.selectbox("Slice", [""] + list(by_name), key=state.ERR_SLICE,
                      format_func=lambda s: s or "all texts")
true_in = f2.multiselect("True class", labels, default=labels, key=state.ERR_TRUE)
pred_in = f3.multiselect("Predicted class", labels, default=labels, key=state.ERR_PRED)
members = list(by_name[chosen].members) if chosen in by_name else None
rows = [r for r in services.error_examples(report, members) if r["true"] in true_in and r["predicted"] in pred_in]
shown = pd.DataFrame([{**r, "explain": services.explain_link(model, str(r["text"]))} for r in rows],
                     columns=["text", "true", "predicted", "confidence", "correct", "explain"])
st.dataframe(shown, hide_index=True, width="stretch", column_config={
    "confidence": st.column_config.NumberColumn(format="%.3f", help="Probability of the predicted class"),
    "explain": st.column_config.LinkColumn("explain", display_text="Explain ↗",
                                           help="Opens the Explain page on this sentence")})
st.caption(f"{len(rows):,} of {report.n:,} texts · misclassified first, then the least confident.")


# --- global explanations --------------------------------------------------------------------------------------
def global_section(handle: ModelHandle) -> dict[str, Any] | None:
    """The controls, the job (or what the cache already holds) and the result; the result shown, if any."""
    st.markdown(f"#### Global explanations · {where}")
    st.caption("Which words push the model toward and away from each class over the split: each of N sentences (a "
               "seeded sample, the Evaluate page's) is explained for the class the model predicts, and each word's "
               "scores are averaged per class (for two classes a push toward one is a push away from the other). "
               "Names, numbers and punctuation among the top words are flagged as possible shortcuts.")
    methods = analysis.global_methods(handle)
    if not methods:
        st.info("No explainer that gives words a sign (toward or away) supports this model.")
        return None
    default_n, max_n = analysis.global_n_limits()
    if int(st.session_state.get(state.ERR_GLOBAL_N, default_n)) > max_n:
        st.session_state[state.ERR_GLOBAL_N] = max_n
    g1, g2, g3 = st.columns([2, 1, 2])
    n = int(g2.number_input("Sentences", min_value=1, max_value=max_n, value=min(default_n, max_n), step=50,
                            key=state.ERR_GLOBAL_N,
                            help=f"A seeded sample of the split (all {report.n:,} when more are asked for); at most "
                                 f"{max_n:,} on this server."))
    others = analysis.compare_choices(model, handle)
    compare = g3.selectbox("Compare with", [""] + others, key=state.ERR_GLOBAL_COMPARE,
                           format_func=lambda m: m or "no second model",
                           help="Another store model with the same classes (e.g. the base model, or a compressed "
                                "variant), explained on the same sentences: which words gained or lost importance.")
    run_on = engine_picker(state.ERR_ENGINE)
    workers = int(run_on.get("workers", 1)) if run_on.get("engine") == "ray" else 1
    default = analysis.global_default(model, handle, min(n, report.n), workers)
    method = g1.selectbox("Explainer", [""] + list(methods), key=state.ERR_GLOBAL_METHOD,
                          format_func=lambda m: methods.get(m, m) if m else f"Default: {methods.get(default.method)}",
                          help="Only explainers that give a sign (toward or away). The default is the most "
                               "faithful one this model can afford at this size.") or default.method
    if not st.session_state.get(state.ERR_GLOBAL_METHOD):
        st.caption(f"Default explainer: {esc_md(default.reason)}")
    if st.button(f"Explain {min(n, report.n):,} sentences", type="primary", key=state.ERR_GLOBAL_START):
        try:
            st.query_params["job"] = analysis.start_global(model, handle, split, upload, method, n, compare or None,
                                                           run_on)
            st.rerun()
        except LoupeError as err:
            st.error(esc_md(services.shown_error(err)), icon="⚠️")
    if st.query_params.get("job"):
        job_id = job_from_link("global")  # None (and why) for a job that is not this person's global job
        result = None
        if job_id:
            status = job_panel(job_id, key=state.ERR_PANEL)
            result = services.job_result(job_id) if status.get("state") == "done" else None
            if status.get("state") in ("cancelled", "interrupted", "failed"):
                st.caption("The sentences it finished are cached: start it again and it continues from there.")
        if st.button("Close this job", key=state.ERR_GLOBAL_CLOSE):
            del st.query_params["job"]
            st.rerun()
        if result:
            global_view(result)
        return result
    try:
        cached = analysis.cached_global(model, handle, split, upload, method, n, compare or None)
    except LoupeError as err:
        st.error(esc_md(services.shown_error(err)), icon="⚠️")
        return None
    if cached is None:
        st.caption("Runs in the background (Cancel keeps the finished sentences); once done, the same choices show "
                   "at once from the cache.")
        return None
    st.caption("Every sentence of these choices is cached: shown without a job.")
    global_view(cached)
    return cached


global_result = global_section(handle)

# --- calibration (computed last: drawn in its place above) ------------------------------------------------------
cal_rows: list[dict[str, Any]] = []
view: services.CalibrationView | None = None
with calibration_box:
    try:
        with st.spinner(f"Fitting a temperature on {services.split_title(services.FIT_SPLIT)}…"):
            view = services.calibration_view(handle, report, split)
    except LoupeError as err:
        st.error(f"Could not measure calibration. {esc_md(services.shown_error(err))}")
    if view is not None:
        if view.card_temperature != 1.0:
            st.caption(f"The model already applies temperature {view.card_temperature:.3f} from its card; “before” "
                       "is its own probabilities without it.")
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
        fig_r.update_layout(height=320, margin=dict(l=0, r=0, t=30, b=0), barmode="group",
                            legend=dict(orientation="h"), xaxis=dict(title="confidence (top class)", range=[0, 1]),
                            yaxis=dict(title="accuracy", range=[0, 1]),
                            title=dict(text=f"Reliability diagram · {plain(report.split)}", font=dict(size=13)))
        r1, r2 = st.columns([3, 2])
        r1.plotly_chart(fig_r, width="stretch", config={"displayModeBar": False})
        cal_rows += [{"": label, "ECE": cal.ece, "Brier": cal.brier, "NLL": cal.nll, "accuracy": cal.accuracy}
                     for label, cal in steps]
        r2.dataframe(pd.DataFrame(cal_rows), hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.4f")
                                    for c in ("ECE", "Brier", "NLL", "accuracy")})
        if view.temperature is not None:
            r2.caption(f"Temperature fitted on {esc_md(view.fitted_on)}, measured on {where}. It changes "
                       "confidence, never the predicted class.")
        stored = services.in_store(model)
        save = r2.button("Save temperature to the model card", key=state.ERR_SAVE,
                         disabled=view.temperature is None or not stored,
                         help="Writes the temperature to the model's card in the store: from then on every page, "
                              "explainer and report uses the calibrated probabilities." if stored else
                              "Only models in the store keep a temperature on their card.")
        if save and view.temperature is not None and view.after is not None:
            try:
                services.save_temperature(model, view.temperature, view.fitted_on, view.before.ece,
                                          view.after.ece, view.reported_on)
                st.session_state[state.ERR_SAVED] = (model, view.temperature)
            except LoupeError as err:
                r2.error(esc_md(services.shown_error(err)))
        saved = st.session_state.get(state.ERR_SAVED)
        if saved and saved[0] == model:
            r2.success(f"Saved temperature {saved[1]:.3f} to the card of {esc_md(saved[0])}; the model is reloaded "
                       "with it.")

# --- export ---------------------------------------------------------------------------------------------------
st.markdown("#### Export")
stem = f"errors-{split}"
overall = [{"split": report.split, "texts": report.n, "accuracy": report.accuracy, "macro F1": report.f1_macro}]
confusion = [{"true \\ predicted": n, **{p: v for p, v in zip(labels, row)}}
             for n, row in zip(labels, report.confusion)]
sections: list[tuple[str, Any]] = [("Metrics", overall), ("Per class", per_class), ("Confusion matrix", confusion)]
if cal_rows and view is not None:
    sections.append((f"Calibration (temperature fitted on {view.fitted_on})", cal_rows))
sections += [("Slices (worst first)", [{"slice": s.name, "texts": s.size, "accuracy": s.accuracy,
                                        "95% CI low": s.low, "95% CI high": s.high} for s in found]),
             ("Examples" + (f" · {chosen}" if chosen else ""), rows)]
words = analysis.global_rows(global_result) if global_result else []
shifts = analysis.comparison_rows(global_result) if global_result else []
if words:
    sections.append(("Global explanations: words toward and away from each class", words))
if shifts:
    sections.append(("Global explanations: what changed between the two models", shifts))
d1, d2, d3, d4 = st.columns(4)
d1.download_button("Download CSV", csv_bytes(rows), file_name=f"{stem}.csv", mime="text/csv", disabled=not rows,
                   help="The examples table as shown (slice and class filters applied)")
d2.download_button("Download words CSV", csv_bytes(words), file_name=f"{stem}-words.csv", mime="text/csv",
                   disabled=not words, help="The global explanation's tables: per class, the words toward and away")
d3.download_button("Download changes CSV", csv_bytes(shifts), file_name=f"{stem}-changes.csv", mime="text/csv",
                   disabled=not shifts, help="Which words gained or lost importance between the two models")
d4.download_button("Download HTML report",
                   sections_report(f"Error analysis · {services.shown_error(model)}", sections,
                                   note=f"Every figure is measured on {report.split}."),
                   file_name=f"{stem}.html", mime="text/html")
