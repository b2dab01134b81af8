"""Fine-tune: full fine-tuning and PEFT (LoRA, BitFit, adapters, prompt tuning) as background jobs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import services, state
from dashboard.components.jobs import job_from_link, job_panel
from dashboard.components.privacy import dataset_pii, progress_to
from dashboard.components.private_training import privacy_curves, privacy_results, privacy_settings
from dashboard.components.sidebar import md, page_setup
from dashboard.components.uploads import short, upload_bytes
from dashboard.components.widgets import config_widgets
from dashboard.report import csv_bytes, finetune_report, finetune_rows
from model_zoo import LoupeError
from model_zoo.finetune import DataSpec, FinetuneConfig
from model_zoo.finetune.redaction import redaction_note

page_setup("Fine-tune a model")
st.caption("Train a classifier on the bundled Rotten Tomatoes reviews or your own CSV, fully or with a "
           "parameter-efficient method. Training runs in the background: reload the page or open the job "
           "link in another tab and it is still there.")
st.page_link("app_pages/continual.py", icon=":material/timeline:",
             label="Continue training a store model on new data, and see what it forgot (continual fine-tuning)")


def _curves(job_id: str, status: dict[str, Any]) -> None:
    records = services.job_metrics(job_id)
    train = [r for r in records if r.get("split") == "train" and r.get("loss") is not None]
    val = [r for r in records if r.get("split") == "validation"]
    if not train and not val:
        return
    left, right = st.columns(2)
    fig = go.Figure()
    if train:
        fig.add_trace(go.Scatter(x=[r["step"] for r in train], y=[r["loss"] for r in train], name="training loss"))
    if val:
        fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[r.get("loss") for r in val], name="validation loss",
                                 mode="lines+markers"))
    fig.update_layout(height=280, margin=dict(l=0, r=0, t=30, b=0), xaxis_title="step",
                      title=dict(text="Loss", font=dict(size=13)), legend=dict(orientation="h"))
    left.plotly_chart(fig, width="stretch", key=f"loupe_ft_loss_{len(records)}", config={"displayModeBar": False})
    if val:
        fig = go.Figure()
        for key in ("accuracy", "f1"):
            fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[r.get(key) for r in val], name=key,
                                     mode="lines+markers"))
        fig.update_layout(height=280, margin=dict(l=0, r=0, t=30, b=0), xaxis_title="step", yaxis=dict(range=[0, 1]),
                          title=dict(text="Validation split: accuracy and macro F1", font=dict(size=13)),
                          legend=dict(orientation="h"))
        right.plotly_chart(fig, width="stretch", key=f"loupe_ft_val_{len(records)}", config={"displayModeBar": False})
    privacy_curves(job_id, records)  # ε spent (DP); each client's loss per round (federated)


def _start(cfg: FinetuneConfig, files: services.Files, redact: str | None) -> str | None:
    """Start the run (its uploads saved for it, redacted first when asked); None (and why) if it fails."""
    bar = st.progress(0.0, text="Redacting personal data…") if redact and files else None
    try:
        return services.start_finetune(cfg, files, redact, None if bar is None else progress_to(bar, "Redacting"))
    except (LoupeError, ValueError) as err:
        st.error(md(services.shown_error(err)))
        return None
    finally:
        if bar is not None:
            bar.empty()


def _results(job_id: str) -> None:
    result = services.job_result(job_id) or {}
    metrics = result.get("metrics") or {}
    test = metrics.get("test") or {}
    card = services.read_card(result.get("path"))
    held_out = "test" in (result.get("data") or card.get("data") or {})
    st.markdown("#### Results")
    c = st.columns(4)
    held = f"{test['size']:,} held-out texts, never trained on or used to pick the checkpoint" if "size" in test \
        else "the test split"
    c[0].metric("Test accuracy", f"{test.get('accuracy', 0):.3f}", help=f"Measured once on {held}.")
    c[1].metric("Test macro F1", f"{test.get('f1_macro', 0):.3f}", help=f"Measured once on {held}.")
    c[2].metric("Trainable parameters", f"{result.get('trainable', 0):,}")
    c[3].metric("Training time", f"{result.get('train_seconds', result.get('seconds', 0)):.0f} s")
    if not held_out:
        st.warning("This run had no separate test split: its test figures were measured on the validation "
                   "split that also chose the checkpoint.")
    if result.get("note"):
        st.info(result["note"])
    redaction = ((result.get("data") or {}).get("spec") or {}).get("redaction")
    if redaction:
        st.caption(f"🔒 {md(redaction_note(redaction))}")
    rows = finetune_rows(metrics)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    privacy_results(result)
    selection = result.get("selection") or {}
    if selection.get("rule"):
        st.caption(f"Saved weights: {selection['rule']} (step {selection.get('step')}).")
    cm = test.get("confusion_matrix")
    labels = card.get("labels")
    if cm:
        st.caption(f"Confusion matrix · test split ({test.get('size', sum(map(sum, cm)))} texts)")
        names = labels or [str(i) for i in range(len(cm))]
        fig = go.Figure(go.Heatmap(z=cm, x=[f"pred {n}" for n in names], y=[f"true {n}" for n in names],
                                   colorscale="Blues", text=cm, texttemplate="%{text}", showscale=False))
        fig.update_layout(height=120 + 40 * len(cm), margin=dict(l=0, r=0, t=10, b=0),
                          yaxis=dict(autorange="reversed"))
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
    d1, d2, _ = st.columns([1, 1, 3])
    d1.download_button("Metrics as CSV", csv_bytes(rows), file_name=f"{job_id}-metrics.csv", mime="text/csv",
                       width="stretch")
    d2.download_button("HTML report", finetune_report(f"Fine-tuning {job_id}", result, card).encode(),
                       file_name=f"{job_id}.html", mime="text/html", width="stretch")
    model_id = result.get("model_id")
    if not result.get("published"):
        st.markdown("The model is kept with the job and is visible to no one else until you save it to the store.")
        cfg = services.job_config(job_id).get("config", {})
        name = st.text_input("Model name", value=cfg.get("name") or f"{cfg.get('method', 'model')}-{job_id[-6:]}",
                             key=state.ft_name(job_id))
        if st.button("Save to the store", type="primary", key=state.ft_save(job_id)):
            try:
                services.save_model(job_id, name)
            except LoupeError as err:
                st.error(md(services.shown_error(err)))
            else:
                st.session_state[state.ft_saved(job_id)] = name
                st.rerun()
        model_id = st.session_state.get(state.ft_saved(job_id))
    if model_id:
        base = services.job_config(job_id).get("config", {}).get("base")
        st.success(f"Saved to the store as {model_id}.")
        a, b = st.columns(2)
        if a.button("Explain it", key=state.ft_explain(job_id), width="stretch"):
            state.use_model(model_id)
            st.switch_page("app_pages/explain.py")
        if base and base != services.BASE_ENCODER_ID and b.button("Compare with its base", width="stretch",
                                                                   key=state.ft_compare(job_id)):
            state.ask_compare([base, model_id])
            st.switch_page("app_pages/compare.py")


if st.query_params.get("job"):
    job_id = job_from_link("finetune")  # None (and why) for a job that is not this person's fine-tuning job
    if job_id:
        status = job_panel(job_id, key=state.FT_PANEL, live=_curves)
        if status.get("state") == "done":
            _results(job_id)
    if st.button("New fine-tuning run"):
        del st.query_params["job"]
        st.rerun()
    st.stop()

# --- 1. data -----------------------------------------------------------------------------------------
st.markdown("#### 1 · Data")
source = st.radio("Examples", ["Rotten Tomatoes (bundled)", "Upload a CSV"], horizontal=True, key=state.FT_SOURCE)
spec: DataSpec | None = None
files: services.Files = {}  # the uploads, kept in memory until a job starts
redact: str | None = None  # a redaction style: the job trains on copies with the personal data replaced
if source.startswith("Rotten"):
    limit = int(st.number_input("Training texts (0 = all 10,222)", min_value=0, max_value=20000, value=2000,
                                step=500, help="A seeded random sample; fewer is faster."))
    spec = DataSpec(source="rt", limit=limit)
else:
    main = upload_bytes(st.file_uploader(f"CSV file (UTF-8, up to {services.MAX_UPLOAD_MB} MB) with a text column "
                                         "and a label column", type=["csv"]))
    if main is not None:
        try:
            frame = services.read_csv(main[0], max_bytes=services.MAX_UPLOAD_MB * 1_000_000)
        except LoupeError as err:
            st.error(f"{md(short(main[1]))}: {md(err)}")
        else:
            st.dataframe(services.preview(frame), hide_index=True, width="stretch")
            st.caption(f"{len(frame):,} rows × {len(frame.columns):,} columns; the preview shows the first rows, "
                       "long cells cut short.")
            cols = list(frame.columns)
            c1, c2 = st.columns(2)
            text_col = c1.selectbox("Text column", cols, index=cols.index("text") if "text" in cols else 0,
                                    format_func=short)
            label_col = c2.selectbox("Label column", cols, index=cols.index("label") if "label" in cols
                                     else min(1, len(cols) - 1), format_func=short)
            with st.expander("Validation and test splits"):
                st.caption("Validation only picks the checkpoint; the test split is scored once, at the end, on "
                           "rows never trained on or used to choose. Both are carved from your file (stratified "
                           "by label, fixed seed) unless you bring a file of your own with the same columns.")
                v1, v2 = st.columns(2)
                val_pct = v1.number_input("Validation %", min_value=5, max_value=40, value=10, step=5)
                test_pct = v2.number_input("Test %", min_value=5, max_value=40, value=10, step=5)
                own = {"validation_source": upload_bytes(v1.file_uploader("Own validation CSV (optional)",
                                                                          type=["csv"])),
                       "test_source": upload_bytes(v2.file_uploader("Own test CSV (optional)", type=["csv"]))}
            with st.expander("Personal data", expanded=bool(st.session_state.get(state.FT_PII_REDACT))):
                redact = dataset_pii(main[0], cols, text_col)
            files = {"source": main, **{k: v for k, v in own.items() if v is not None}}
            spec = DataSpec(source=main[1], text_column=text_col, label_column=label_col,
                            validation_fraction=val_pct / 100, test_fraction=test_pct / 100)

splits = None
if spec is not None:
    try:
        splits = services.load_splits(spec, files)
    except LoupeError as err:
        st.error(md(services.shown_error(err)))
if splits is None or spec is None:
    st.stop()
summary = splits.summary()
parts = {name: part for name, part in summary.items() if isinstance(part, dict) and "size" in part}
balance = pd.DataFrame([{"split": name, "used for": part["role"], "size": part["size"],
                         **{short(k, 40): v for k, v in part["classes"].items()}} for name, part in parts.items()])
st.dataframe(balance, hide_index=True, width="stretch")
st.caption(f"Split: {md(summary['split'])}.")
for note in summary.get("notes", []):
    st.caption(f"ℹ️ {md(note)}")
totals = {k: sum(p["classes"].get(k, 0) for p in parts.values()) for k in splits.labels}
thin = services.thin_classes(totals)
if thin:
    st.warning(md(thin), icon="⚠️")

# --- 2. base model and method -----------------------------------------------------------------------
st.markdown("#### 2 · Base model and method")
bases = [services.BASE_ENCODER_ID] + [c["id"] for c in services.store_models() if not c.get("peft")]
c1, c2 = st.columns(2)
base = c1.selectbox("Base model", bases, format_func=lambda m: "MiniLM encoder (bundled; a new head)"
                    if m == services.BASE_ENCODER_ID else m, key=state.FT_BASE) or services.BASE_ENCODER_ID
titles = services.method_titles()
method = c2.selectbox("Method", list(titles), format_func=lambda m: titles[m], key=state.FT_METHOD) or \
    next(iter(titles))
st.caption(services.method_summary(method))
with st.expander(f"{titles[method]} settings", expanded=services.has_settings(method)):
    method_cfg = config_widgets(services.method_config_class(method), state.ft_method_prefix(method), scope=method)
try:
    trainable, total = services.trainable_parameters(base, method, method_cfg, splits.labels)
    st.markdown(f"**Trainable parameters:** {trainable:,} of {total:,} ({trainable / total:.3%})")
except LoupeError as err:
    st.error(str(err))
    st.stop()

# --- 3. hyper-parameters ------------------------------------------------------------------------------
st.markdown("#### 3 · Training")
defaults = services.train_defaults(method)
with st.expander("Hyper-parameters (defaults for this method)"):
    train_cfg = config_widgets(services.TrainConfig, state.ft_train_prefix(method), defaults)
privacy = privacy_settings(base, method, method_cfg, splits.labels, parts["train"]["size"], train_cfg,
                           [c for c in cols if c not in (spec.text_column, spec.label_column)]
                           if spec.source != "rt" else [], csv=spec.source != "rt")
name = st.text_input("Name for the new model", value=f"{method.replace('_', '-')}-rt" if spec.source == "rt"
                     else f"{method.replace('_', '-')}-custom", help="Letters, digits, '.', '_' and '-'.")
if st.button("Start fine-tuning", type="primary", disabled=privacy.blocked is not None,
             help=privacy.blocked and f"Cannot start: {privacy.blocked}"):
    changed = {k: v for k, v in dataclasses.asdict(train_cfg).items() if v != defaults.get(k)}
    cfg = FinetuneConfig(base=base, method=method, name=name, data=spec, method_config=dataclasses.asdict(method_cfg),
                         train=changed, publish=False, dp=privacy.dp, federated=privacy.federated)
    new_job = _start(cfg, files, redact)
    if new_job:
        st.query_params["job"] = new_job
        st.rerun()
st.caption(f"Trains on **{md(services.device_name())}**. On a 2-core CPU a PEFT run on 2,000 texts takes a few "
           "minutes; full fine-tuning takes longer. On a GPU it uses mixed precision.")
