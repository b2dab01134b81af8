"""Continual fine-tuning: teach a model new tasks without forgetting, and show what it forgot and why it decides."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import services, state
from dashboard.components.charts import plain
from dashboard.components.highlight import CSS, highlight_html, legend_html, scale_of
from dashboard.components.jobs import job_from_link, job_panel
from dashboard.components.sidebar import md, page_setup
from dashboard.components.uploads import short, upload_bytes
from dashboard.components.widgets import config_values, config_widgets
from dashboard.report import csv_bytes
from dashboard.services import continual as cl
from explainers import Attribution
from model_zoo import LoupeError
from model_zoo.continual import ContinualConfig

page_setup("Continual fine-tuning")
st.caption("Update a model on new data — a new domain, a new label set — as a sequence of tasks, with naive "
           "fine-tuning, experience replay or EWC side by side, and see what each forgot: accuracy on every task "
           "after every step, and whether the model still explains the first task for the same reasons.")


def _fmt(value: Any, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


# --- charts ------------------------------------------------------------------------------------------------------
def _heatmap(rows: list[list[float] | None], names: list[str], title: str) -> go.Figure:
    """The accuracy matrix: row i = after training on task i, column j = accuracy on task j (missing rows blank)."""
    z = [row if row is not None else [None] * len(names) for row in rows]
    text = [[f"{v:.2f}" if v is not None else "" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=[f"on {plain(short(n, 24))}" for n in names],
                               y=[f"after {plain(short(n, 24))}" for n in names], zmin=0, zmax=1,
                               colorscale="Blues", text=text, texttemplate="%{text}", showscale=False,
                               hovertemplate="%{y}, %{x}: accuracy %{z:.3f}<extra></extra>"))
    fig.update_layout(height=90 + 52 * len(names), margin=dict(l=0, r=0, t=30, b=0), yaxis=dict(autorange="reversed"),
                      title=dict(text=plain(title), font=dict(size=13)))
    return fig


def _matrices(names: list[str], order: list[str], rows: dict[str, list[list[float] | None]], key: str) -> None:
    for col, name in zip(st.columns(max(1, len(order))), order):
        col.plotly_chart(_heatmap(rows[name], names, name), width="stretch", key=f"{key}_{name}",
                         config={"displayModeBar": False})


def _reasons_chart(names: list[str], order: list[str], result: dict[str, Any]) -> go.Figure:
    """First-task accuracy and explanation agreement after every step: the two can part ways."""
    fig = go.Figure()
    steps = [f"after {plain(short(n, 24))}" for n in names]
    for name in order:
        s = result["strategies"][name]
        fig.add_trace(go.Scatter(x=steps, y=[row[0] for row in s["matrix"]], mode="lines+markers",
                                 name=f"{name}: accuracy on {plain(short(names[0], 24))}"))
        rho = [1.0] + [o.get("spearman") for o in s.get("observed") or []]
        if len(rho) > 1:
            fig.add_trace(go.Scatter(x=steps[:len(rho)], y=rho, mode="lines+markers", line=dict(dash="dot"),
                                     name=f"{name}: explanations' rank corr. with after {plain(short(names[0], 24))}"))
    low = min([0.0] + [y for trace in fig.data for y in (trace.y or ()) if isinstance(y, (int, float))])
    fig.update_layout(height=340, margin=dict(l=0, r=0, t=30, b=0), yaxis=dict(range=[low - 0.05, 1.05]),
                      legend=dict(orientation="h"), title=dict(text="The first task: accuracy (solid) and reasons "
                                                                     "(dotted: 1 = the same word ranking)",
                                                                font=dict(size=13)))
    return fig


# --- a run's results ---------------------------------------------------------------------------------------------
def _partial_rows(names: list[str], first: list[float] | None, done: dict[int, list[float]]) -> list[Any]:
    return [first if i == 0 else done.get(i) for i in range(len(names))]


def _live(job_id: str, status: dict[str, Any]) -> None:
    """The matrices as far as the run has got (while it runs, and after Cancel)."""
    if status.get("state") == "done":  # the results below show the whole matrices
        return
    view = cl.progress(job_id)
    start = view["start"]
    if not start:
        return
    names = [str(n) for n in start.get("tasks", [])]
    config = services.job_config(job_id).get("config", {})
    order = list(config.get("continual", config).get("strategies", []))  # a command-line run's config is flat
    rows = {name: _partial_rows(names, start.get("row"), view["rows"].get(name, {})) for name in order}
    st.caption("Accuracy so far (row: after training on a task; column: the task scored). Finished steps are kept "
               "when the run is cancelled; Resume continues after the last of them.")
    _matrices(names, order, rows, f"loupe_cl_live_{sum(len(v) for v in view['rows'].values())}")


def _summary(names: list[str], result: dict[str, Any]) -> pd.DataFrame:
    out = []
    for name in result["order"]:
        s = result["strategies"][name]
        last = (s.get("observed") or [{}])[-1]
        out.append({"strategy": name, "average accuracy": s["average_accuracy"], "BWT (forgetting < 0)": s["bwt"],
                    "FWT": s["fwt"], f"accuracy on {short(names[0], 30)}": s["matrix"][-1][0],
                    "reasons: rank corr.": last.get("spearman"), "reasons: top-k overlap": last.get("top_k_overlap"),
                    "seconds": s["seconds"]})
    return pd.DataFrame(out)


def _head_note(result: dict[str, Any]) -> str:
    labels = result["labels"]
    per_task = "; ".join(f"{md(t['name'])}: {', '.join(md(x) for x in t['labels'])}" for t in result["tasks"])
    kept = result.get("kept_labels") or []
    head = (f"One head over {len(labels)} labels ({per_task}); tasks with the same label names share columns. "
            + (f"Rows kept from the base: {', '.join(md(k) for k in kept)}. " if kept else "Every row of the head is "
               "new. "))
    if result["scenario"] == "task":
        return head + ("**Task-incremental:** each task is scored over its own columns only (its own head); the "
                       "saved model predicts over all labels, so on other pages pick the class among one task's.")
    return head + ("**Class-incremental:** one extended head, prediction over every label (the task is not known): "
                   "exactly what the saved model does on every page.")


def _words(result: dict[str, Any], names: list[str]) -> None:
    order = [n for n in result["order"] if result["strategies"][n].get("observed")]
    if not order:
        return
    ref = result.get("reference") or {}
    st.markdown(f"#### Words whose importance changed most on {md(names[0])}")
    st.caption(f"{md(ref.get('explainer_title', ''))} on {ref.get('n', 0)} test sentences of {md(names[0])}, explained "
               f"for the same class before (after {md(names[0])}) and after each step; importance = a word's score / "
               "the largest |score| of its explanation, mean over the word's occurrences.")
    c1, c2 = st.columns(2)
    name = c1.selectbox("Strategy", order, key=state.CL_VIEW_STRATEGY)
    observed = result["strategies"][name]["observed"]
    step = c2.selectbox("After", range(len(observed)), index=len(observed) - 1, key=state.CL_VIEW_STEP,
                        format_func=lambda i: names[min(i + 1, len(names) - 1)])
    words = observed[step].get("changed_words") or []
    if words:
        st.dataframe(pd.DataFrame(words), hide_index=True, width="stretch",
                     column_config={k: st.column_config.NumberColumn(format="%+.3f" if k == "change" else "%.3f")
                                    for k in ("before", "after", "change")})
    else:
        st.caption("No word's importance changed.")
    _viewer(ref, observed[step], names)


def _viewer(ref: dict[str, Any], after: dict[str, Any], names: list[str]) -> None:
    before_list, after_list = ref.get("attributions") or [], after.get("attributions") or []
    if not before_list or not after_list:
        return
    i = st.selectbox("Sentence", range(min(len(before_list), len(after_list))), key=state.CL_VIEW_SENTENCE,
                     format_func=lambda k: short(before_list[k]["text"], 90))
    pair = [Attribution.from_dict(before_list[i]), Attribution.from_dict(after_list[i])]
    shared = max(scale_of(a) for a in pair) or None
    st.markdown(CSS + legend_html(pair[0].target_label, pair[0].signed), unsafe_allow_html=True)
    for col, title, a in zip(st.columns(2), (f"after {names[0]}", "after this step"), pair):
        col.caption(f"{md(short(title, 40))} · p({md(a.target_label)}) = {a.probs[a.target]:.3f}")
        col.markdown(highlight_html(a, "words", shared), unsafe_allow_html=True)


def _save(job_id: str, result: dict[str, Any]) -> None:
    st.markdown("#### Final models")
    st.caption("Each strategy's model after the last task, with a card recording the sequence, the strategy, the "
               "scenario and the matrix. It stays with the job, visible to no one else, until you save it.")
    for name in result["order"]:
        s = result["strategies"][name]
        saved = s.get("model_id") or st.session_state.get(state.cl_saved(job_id, name))
        c1, c2, c3 = st.columns([1, 2, 1])
        c1.markdown(f"**{md(name)}**")
        if saved:
            c2.success(f"In the store as {saved}.")
            if c3.button("Explain it", key=state.cl_explain(job_id, name), width="stretch"):
                state.use_model(saved)
                st.switch_page("app_pages/explain.py")
            continue
        new_id = c2.text_input("Name in the store", value=f"continual-{name.replace('+', '-')}-{job_id[-6:]}",
                               key=state.cl_save_name(job_id, name), label_visibility="collapsed")
        if c3.button("Save to the store", key=state.cl_save(job_id, name), width="stretch"):
            try:
                cl.save_model(job_id, name, new_id)
            except LoupeError as err:
                st.error(md(services.shown_error(err)))
            else:
                st.session_state[state.cl_saved(job_id, name)] = new_id
                st.rerun()


def _results(job_id: str) -> None:
    result = services.job_result(job_id) or {}
    if not result.get("strategies"):
        return
    names = [t["name"] for t in result["tasks"]]
    st.markdown(f"#### Results · {' → '.join(md(n) for n in names)}")
    first = "already learned by the base (scored, not trained)" if result["first_task"] == "known" else \
        "trained once; every strategy starts from that model"
    base = services.shown_error(result["base"])  # hosted: a folder's server path cut to its last part
    st.caption(f"{md(result['method_title'])} from {md(base)}; first task {first}. {_head_note(result)}")
    table = _summary(names, result)
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns
                                if c not in ("strategy", "seconds")})
    st.caption("Average accuracy: mean over the tasks after the last one. BWT (backward transfer): mean of (final "
               "accuracy − accuracy right after learning it) over the earlier tasks; negative means forgetting. FWT "
               "(forward transfer): accuracy on a task before training on it, minus the starting model's. Seconds: "
               "each strategy's own steps (the shared first task took "
               f"{result['shared']['first_task_seconds']} s). Starting model: "
               + ", ".join(f"{md(n)} {a:.3f}" for n, a in zip(names, result["starting_accuracy"])) + ".")
    _matrices(names, result["order"], {n: result["strategies"][n]["matrix"] for n in result["order"]},
              f"loupe_cl_done_{job_id}")
    if result.get("reference"):
        st.plotly_chart(_reasons_chart(names, result["order"], result), width="stretch",
                        config={"displayModeBar": False})
        st.caption("A model can keep its accuracy while changing its reasons: compare the solid and dotted lines.")
    _words(result, names)
    with st.expander("Tasks: sizes, class balance, how each was split"):
        st.dataframe(_task_table(result["tasks"]), hide_index=True, width="stretch")
    export = [{"strategy": n, "after": names[i], **{f"on {t}": v for t, v in zip(names, row)}}
              for n in result["order"] for i, row in enumerate(result["strategies"][n]["matrix"])]
    st.download_button("Accuracy matrices as CSV", csv_bytes(export), file_name=f"{job_id}-matrix.csv",
                       mime="text/csv")
    _save(job_id, result)


def _task_table(tasks: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{"task": short(t["name"], 40), "labels": ", ".join(short(x, 30) for x in t["labels"]),
                          "train": t["train"]["size"], "test": t["test"]["size"],
                          "train classes": ", ".join(f"{short(k, 30)} {v}" for k, v in t["train"]["classes"].items()),
                          "test classes": ", ".join(f"{short(k, 30)} {v}" for k, v in t["test"]["classes"].items()),
                          "split": t["split"]} for t in tasks])


def _job_from_link() -> str | None:
    """The run in ``?job=`` when this person may open it: a page run, or one started with ``python -m model_zoo
    continual`` (same results, no drift); otherwise None, and the panel says why."""
    try:
        return services.open_job(st.query_params.get("job"), cl.CLI_KIND)  # checks the owner first, then the kind
    except services.JobError:
        return job_from_link(cl.KIND)


if st.query_params.get("job"):
    job_id = _job_from_link()  # None (and why) for a job that is not this person's continual run
    if job_id:
        status = job_panel(job_id, key=state.CL_PANEL, live=_live)
        if status.get("state") == "done":
            _results(job_id)
    if st.button("New continual run"):
        del st.query_params["job"]
        st.rerun()
    st.stop()

# --- 1. model ------------------------------------------------------------------------------------------------------
st.markdown("#### 1 · Model")
c1, c2, c3 = st.columns(3)
bases = cl.bases()
base = c1.selectbox("Start from", bases, key=state.CL_BASE, format_func=lambda m: "MiniLM encoder (bundled; a new "
                    "head)" if m == services.BASE_ENCODER_ID else m) or services.BASE_ENCODER_ID
method = c2.radio("Method", ["lora", "full"], horizontal=True, key=state.CL_METHOD,
                  format_func=lambda m: services.method_titles()[m]) or "lora"
scenarios = cl.scenarios()
scenario = c3.radio("Scenario", list(scenarios), horizontal=True, key=state.CL_SCENARIO,
                    format_func=lambda s: f"{s}-incremental", help="\n\n".join(f"**{k}**: {v}"
                                                                              for k, v in scenarios.items())) or "class"
st.caption(f"{services.method_summary(method)} **Scenario:** {md(scenarios[scenario])}.")
method_cfg: Any = None
if services.has_settings(method):
    with st.expander(f"{services.method_titles()[method]} settings"):
        method_cfg = config_widgets(services.method_config_class(method), state.cl_method_prefix(method), scope=method)

# --- 2. tasks ------------------------------------------------------------------------------------------------------
st.markdown("#### 2 · Tasks, in order")
source = st.radio("Tasks", ["Bundled sequence", "Upload CSVs"], horizontal=True, key=state.CL_SOURCE)
s1, s2, _ = st.columns([1, 1, 2])
with s1:  # bounds, defaults and help from the run's spec (the limits the job itself checks)
    sizes = config_values(ContinualConfig, state.CL_SETTINGS, scope="continual", only=["limit"])
with s2:
    sizes.update(config_values(ContinualConfig, state.CL_SETTINGS, scope="continual", only=["test_limit"]))
st.caption("limit: training texts per task, test limit: test texts per task (seeded samples; 0: all).")
sequence, tasks, files = "", [], {}
if source == "Bundled sequence":
    seqs = cl.sequences()
    sequence = st.selectbox("Sequence", list(seqs), key=state.CL_SEQUENCE, format_func=lambda k: f"{k}: {seqs[k]}") \
        or next(iter(seqs))
else:
    uploads = st.file_uploader(f"CSV files, one task each, in the order they are learned (UTF-8, up to "
                               f"{services.MAX_UPLOAD_MB} MB each; a text and a label column)", type=["csv"],
                               accept_multiple_files=True, key=state.CL_UPLOADS) or []
    for i, up in enumerate(uploads):
        got = upload_bytes(up)
        if got is None:
            st.stop()
        raw = got[0]
        try:
            cols = list(services.read_csv(raw, max_bytes=services.MAX_UPLOAD_MB * 1_000_000).columns)
        except LoupeError as err:
            st.error(f"{md(short(up.name))}: {md(err)}")
            st.stop()
        a, b, c = st.columns([2, 1, 1])
        a.markdown(f"**Task {i + 1}:** {md(short(up.name))}")
        text_col = b.selectbox("Text column", cols, index=cols.index("text") if "text" in cols else 0,
                               key=state.cl_column(i, "text"), format_func=short)
        label_col = c.selectbox("Label column", cols, index=cols.index("label") if "label" in cols else
                                min(1, len(cols) - 1), key=state.cl_column(i, "label"), format_func=short)
        tasks.append({"source": up.name, "name": short(up.name.rsplit(".", 1)[0], 40), "text_column": text_col,
                      "label_column": label_col})
        files[i] = (raw, up.name)
    if len(tasks) < 2:
        st.info("Upload at least two CSV files: a sequence needs two tasks or more (the first is what the model "
                "should not forget).")
        st.stop()
try:
    rows = cl.task_rows(sequence, tasks, files, int(sizes["limit"]), int(sizes["test_limit"]))
except LoupeError as err:
    st.error(md(services.shown_error(err)))
    st.stop()
st.dataframe(_task_table(rows), hide_index=True, width="stretch")
union = list(dict.fromkeys(x for t in rows for x in t["labels"]))
known = set(cl.labels_of(base))
first_known = bool(known) and set(rows[0]["labels"]) <= known
st.caption(f"One head over {len(union)} labels: {', '.join(md(short(x, 30)) for x in union)} (tasks with the same "
           "label names share columns). "
           + (f"{md(base)} already knows {md(rows[0]['name'])}: it is scored, not trained, and the head keeps its rows."
              if first_known else f"The first task, {md(rows[0]['name'])}, is trained once; every strategy starts "
              "from that model."))

# --- 3. strategies -----------------------------------------------------------------------------------------------
st.markdown("#### 3 · Strategies, side by side")
strategies = cl.strategies()
chosen = st.multiselect("Strategies", list(strategies), default=["naive", "replay", "ewc"], key=state.CL_STRATEGIES,
                        help="\n\n".join(f"**{k}**: {v}" for k, v in strategies.items()))
settings: dict[str, Any] = {}
c1, c2 = st.columns(2)
if any("replay" in s for s in chosen):
    with c1:
        settings.update(config_values(ContinualConfig, state.CL_SETTINGS, scope="continual",
                                      only=["replay_size", "replay_sampling"]))
if any("ewc" in s for s in chosen):
    with c2:
        settings.update(config_values(ContinualConfig, state.CL_SETTINGS, scope="continual",
                                      only=["ewc_lambda", "ewc_gamma", "fisher_samples"]))
train_defaults = dataclasses.asdict(ContinualConfig(method=method).train_config())
with st.expander("Training per task (defaults: the method's recipe, one epoch per task)"):
    train = config_values(services.TrainConfig, f"{state.CL_TRAIN}.{method}", train_defaults,
                          only=["epochs", "batch_size", "learning_rate", "max_length", "seed"])

# --- 4. explanation drift ----------------------------------------------------------------------------------------
st.markdown(f"#### 4 · Reasons: explanation drift on {md(rows[0]['name'])}")
methods = services.all_methods()
d1, d2 = st.columns([1, 2])
explainer = d1.selectbox("Explainer", list(methods), index=list(methods).index("ig") if "ig" in methods else 0,
                         format_func=lambda m: methods[m], key=f"{state.CL_DRIFT}.explainer")
with d2:
    drift = config_values(cl.DriftConfig, state.CL_DRIFT, scope="continual_drift",
                          only=["n_sentences", "ig_steps", "top_words"] if explainer == "ig" else
                          ["n_sentences", "top_words"])

if not chosen:
    st.warning("Pick at least one strategy to run.")
if st.button("Start continual fine-tuning", type="primary", disabled=not chosen):
    changed = {k: v for k, v in train.items() if v != train_defaults.get(k)}
    continual = {"base": base, "method": method, "scenario": scenario, "strategies": chosen,
                 "method_config": dataclasses.asdict(method_cfg) if method_cfg is not None else {},
                 "sequence": sequence, "tasks": tasks, "train": changed, **sizes, **settings}
    try:
        new_job = cl.start(continual, {**drift, "explainer": explainer}, files)
    except (LoupeError, ValueError) as err:
        st.error(md(services.shown_error(err)))
    else:
        st.query_params["job"] = new_job
        st.rerun()
st.caption(f"Runs on **{md(services.device_name())}**, one strategy after another. On a 2-core CPU, three tasks of "
           "600 texts take a few minutes per strategy with full fine-tuning of MiniLM.")
