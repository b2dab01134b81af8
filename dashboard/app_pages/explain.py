"""Explain: type a text, see the prediction and each explainer's attributions side by side."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import report, services, state
from dashboard.components import charts, quality
from dashboard.components.highlight import CSS, esc_md, highlight_html, legend_html, visible
from dashboard.components.privacy import dependence_panel, pii_controls, pii_found, pii_view_or_none
from dashboard.components.sidebar import page_setup
from dashboard.components.waiting import say_in, wait_box
from dashboard.components.widgets import config_widgets
from dashboard.redaction import pii_share
from explainers import Attribution
from explainers.attention import bertviz_html
from explainers.base import rank_order
from explainers.metrics import Faithfulness, describe_bins
from model_zoo import LoupeError, ModelHandle

picked = page_setup("Explain a prediction")
if picked is None:
    st.info("Pick or load a model in the sidebar to start.")
    st.stop()
handle: ModelHandle = picked

choices = services.method_choices(handle)
labels = handle.label_names

# --- permalink: query params seed the widgets once per session (checked, clamped and said by read_link) ----
if not st.session_state.get(state.LINK_APPLIED):
    st.session_state[state.LINK_APPLIED] = True
    link = services.read_link(st.query_params.to_dict(), choices, handle.num_labels)
    if link.text is not None:
        st.session_state[state.TEXT] = link.text
        # A link runs on open only what the Explain button would with the defaults, on a short text.
        blocker = services.autorun_blocker(link, len(link.methods or services.default_methods(handle)))
        st.session_state[state.LINK_PENDING if blocker else state.AUTORUN] = blocker or True
    if link.methods is not None:
        st.session_state[state.METHODS] = link.methods
    if link.target is not None:
        st.session_state[state.TARGET] = link.target
    st.session_state.update(link.settings)
    if services.pii_link_mode(st.query_params.to_dict()):
        st.session_state[state.PII_MODE] = services.pii_link_mode(st.query_params.to_dict())
    st.session_state[state.LINK_NOTES] = services.link_message(link)
if st.session_state.get(state.LINK_NOTES):
    st.warning(st.session_state[state.LINK_NOTES], icon="🔗")
st.session_state.setdefault(state.TEXT, "")
st.session_state.setdefault(state.METHODS, services.default_methods(handle))
st.session_state[state.METHODS] = [m for m in st.session_state[state.METHODS] if m in choices]
if st.session_state.get(state.TARGET) not in [None, *range(handle.num_labels)]:
    st.session_state[state.TARGET] = None


def _set_text(text: str) -> None:
    st.session_state[state.TEXT] = text


# --- input ------------------------------------------------------------------------------------------
left, right = st.columns([3, 2], gap="large")
with left:
    st.text_area("Text to explain", key=state.TEXT, height=130, max_chars=services.text_limit(),
                 placeholder="Type or paste a sentence, or pick an example below.")
    examples = services.example_sentences()
    if examples:
        st.caption("Examples from the Rotten Tomatoes test split:")
        cols = st.columns(3)
        for i, example in enumerate(examples):
            cols[i % 3].button(esc_md(example[:48] + "…" if len(example) > 48 else example),
                               key=state.example_button(i), on_click=_set_text, args=(example,),
                               help=esc_md(example), width="stretch")
    pii_mode, pii_style, pii_check = pii_controls(state.PII_MODE, state.PII_STYLE, state.PII_CHECK)
    text = st.session_state[state.TEXT]
    too_long = services.check_text(text or "")
    has_text = bool(text and text.strip()) and not too_long
    # The text under the Personal data setting: what the model reads, what is shown, linked and exported.
    view = pii_view_or_none(text, pii_mode, pii_style, has_text and (pii_mode != "off" or pii_check))
    if view is not None:
        pii_found(view)
model_text = view.model_text if view is not None else text

with right:
    st.markdown("**Prediction**")
    probs = None
    if has_text:
        try:
            probs = services.predict(handle, model_text, private=view is not None and view.private)
        except LoupeError as err:
            st.error(esc_md(err))
    if too_long:
        st.error(too_long)
    elif probs is None:
        st.caption("Type some text to see the model's prediction.")
    else:
        predicted = max(range(len(probs)), key=probs.__getitem__)
        st.plotly_chart(charts.probability_chart(labels, probs, predicted), width="stretch",
                        config={"displayModeBar": False}, key="loupe_prob_chart")

# --- controls ---------------------------------------------------------------------------------------
c1, c2, c3, c4, c5 = st.columns([2.6, 1.4, 1, 1, 1.3])
methods = c1.multiselect("Explainers", list(choices), format_func=lambda m: choices[m], key=state.METHODS,
                         help="Every explainer that supports this model. IG, SHAP, LIME and Attention by default.")
predicted_name = labels[predicted] if probs is not None else "predicted"
target = c2.selectbox("Explain the class", [None, *range(handle.num_labels)], key=state.TARGET,
                      format_func=lambda t: f"predicted ({predicted_name})" if t is None else labels[t],
                      help="Attributions are computed for this class; by default the predicted one.")
layout = c3.radio("Layout", ["grid", "stacked"], horizontal=True, key=state.LAYOUT)
granularity = c4.radio("Show", ["words", "subwords"], horizontal=True, key=state.GRANULARITY,
                       help="Words sum the scores of their word-pieces; subwords show the model's tokens.")
check_sanity = c5.toggle("Sanity check", key=state.SANITY, value=True,
                         help="Model-randomisation test (Adebayo et al., 2018): explain again with every weight of "
                              "the model re-drawn at random and compare. An explanation that barely changes does "
                              "not explain the model. Costs one more explanation per explainer, run after the "
                              "results are shown.")

configs: dict[str, Any] = {}
if methods:
    with st.expander("Explainer settings"):
        tabs = st.tabs([choices[m] for m in methods])
        for tab, m in zip(tabs, methods):
            with tab:
                st.caption(services.description(m))
                configs[m] = config_widgets(services.config_class(m), state.config_prefix(m), scope=m)

clicked = st.button("Explain", type="primary", disabled=not methods)
if st.session_state.get(state.LINK_PENDING) and not clicked:
    st.info(f"Opened from a link: the text and settings are filled in, and nothing has run yet. "
            f"{st.session_state[state.LINK_PENDING]} Press **Explain** to run the {len(methods)} "
            f"explainer{'s' if len(methods) != 1 else ''}.", icon="🔗")
if clicked or st.session_state.pop(state.AUTORUN, False):
    st.session_state.pop(state.LINK_PENDING, None)
    st.session_state.pop(state.LINK_NOTES, None)
    if too_long:  # said beside the prediction
        st.session_state.pop(state.RESULTS, None)
    elif not has_text:
        st.warning("The text is empty. Type or paste some text to explain.")
        st.session_state.pop(state.RESULTS, None)
    else:
        st.session_state[state.RESULTS] = services.ExplainRequest(
            services.model_key(handle), model_text, list(methods), configs, target,
            pii=view.mode if view is not None else "off", style=pii_style, original=text if view is not None else "")
        params = {"model": str(st.session_state.get(state.MODEL, handle.id)),
                  "text": view.shown_text if view is not None else text, "methods": ",".join(methods)}
        if view is not None and view.mode != "off":
            params["pii"] = view.mode
        if target is not None:
            params["target"] = str(target)
        changed = services.changed_configs(configs)
        if changed:
            params["cfg"] = changed
        st.query_params.from_dict(params)

req: services.ExplainRequest | None = st.session_state.get(state.RESULTS)
if req is None or req.model_key != services.model_key(handle):
    st.stop()
# In the hide mode every result is shown (and exported) redacted; the originals feed only the numbers.
req_view = pii_view_or_none(req.original, req.pii, req.style, bool(req.original))
show: Callable[[Attribution], Attribution] = req_view.shown if req_view is not None else (lambda a: a)
private = req.private  # hide mode: shared caches see the text's fingerprint only


# --- results ----------------------------------------------------------------------------------------
def render_card(a: Attribution) -> None:
    shown = show(a)
    st.markdown(f"#### {esc_md(choices.get(a.method, a.method))}", help=services.description(a.method))
    facts = [f"{a.cost.passes} model passes", f"{a.cost.seconds:.2f} s"]
    if "convergence_delta" in a.extras:
        facts.append(f"convergence δ {a.extras['convergence_delta']:.2g}")
    if "r2" in a.extras:
        facts.append(f"local fit R² {a.extras['r2']:.2f}")
    st.caption(" · ".join(facts))
    st.markdown(highlight_html(shown, granularity), unsafe_allow_html=True)
    try:
        with wait_box() as on_wait:
            faith = services.faithfulness(handle, a, on_wait=on_wait, private=private)
    except LoupeError as err:
        st.caption(f"Faithfulness not available: {esc_md(err)}")
    else:
        faiths[a.method] = faith
        st.markdown(quality.faithfulness_line(faith), unsafe_allow_html=True,
                    help=f"ERASER metrics over the {describe_bins()} (these k here: "
                         f"{', '.join(map(str, faith.ks))}). Comprehensiveness: how much the target probability "
                         "drops when the top words are deleted (higher is better). Sufficiency: how much it drops "
                         "when only they are kept (lower is better). The random ranking of the same words gives "
                         "the scale.")
    if check_sanity:
        badges[a.method] = st.empty()
    if "attentions" in a.extras:  # the attention views (bertviz) of whatever explainer carries weights
        render_attention(shown)
    # Shown as the model reads them: direction-control and zero-width characters as visible markers.
    rows = [(visible(w.text), w.score) for w in shown.words] if granularity == "words" else [
        (visible(t), s) for t, s, sp in zip(shown.tokens, shown.scores, shown.special) if not sp]
    # Ranked as top_words ranks: highest score first, so a signed method lists what pushes toward the target.
    table = pd.DataFrame(rows, columns=["token", "score"])
    table = table.iloc[rank_order(table["score"].to_numpy())].head(15)
    st.dataframe(table, hide_index=True, width="stretch", height=min(36 * len(table) + 38, 300),
                 column_config={"score": st.column_config.NumberColumn(format="%+.4f")})


def _iframe(doc: str, height: int) -> None:
    # Sandboxed without allow-same-origin: bertviz's scripts run but cannot reach the app.
    # One line: a blank line inside the attribute would end markdown's HTML block.
    srcdoc = html.escape(doc, quote=True).replace("\r", "&#13;").replace("\n", "&#10;")
    st.markdown(f'<iframe sandbox="allow-scripts" srcdoc="{srcdoc}" '
                f'style="width:100%;height:{height}px;border:1px solid #eee;border-radius:6px" '
                'title="attention view"></iframe>', unsafe_allow_html=True)


def render_attention(a: Attribution) -> None:
    att = a.extras.get("attentions")
    if att is None:
        return
    heads, model_view, grid = st.tabs(["Head view", "Model view", "Layer × head"])
    shown_tokens = dataclasses.replace(a, tokens=tuple(visible(t) for t in a.tokens))
    with heads:
        _iframe(bertviz_html(shown_tokens, "head"), 520)
    with model_view:
        _iframe(bertviz_html(shown_tokens, "model"), 620)
    with grid:
        positions = [i for i, sp in enumerate(a.special) if not sp]
        default = max(positions, key=lambda i: a.scores[i]) if positions else 0
        idx = st.selectbox("Token that [CLS] attends to", positions, index=positions.index(default) if positions else 0,
                           format_func=lambda i: f"{i}: {visible(a.tokens[i])}", key=state.attention_token(a.method))
        st.plotly_chart(charts.head_heatmap(att, idx, visible(a.tokens[idx])), width="stretch",
                        key=f"loupe_heat_{a.method}")


st.divider()
st.markdown(CSS, unsafe_allow_html=True)
top = st.container()  # legend and notices, filled once the first result is in
shown = [m for m in req.methods if m in choices]
rows = [shown[i:i + 2] for i in range(0, len(shown), 2)] if layout == "grid" else [[m] for m in shown]
first: Attribution | None = None
done: list[Attribution] = []
faiths: dict[str, Faithfulness] = {}
badges: dict[str, DeltaGenerator] = {}  # method -> placeholder for its sanity badge, filled once every result is shown
for row in rows:
    for where, method in zip(st.columns(len(row)) if len(row) > 1 else [st.container()], row):
        with where:
            with st.spinner(f"Running {choices[method]}…"):
                try:
                    with wait_box() as on_wait:
                        a = services.run_one(handle, req, method, on_wait=on_wait)
                except LoupeError as err:
                    st.error(f"{esc_md(choices[method])}: {esc_md(err)}")
                    continue
            render_card(a)
            done.append(a)
        if first is None:
            first = a
            with top:
                if a.truncated:
                    st.warning(f"Truncated at {len(a.tokens)} tokens: the grey tail of the text was not "
                               "seen by the model or the explainers.")
                st.markdown(legend_html(a.target_label, True) + legend_html(a.target_label, False),
                            unsafe_allow_html=True)

for a in done:
    if a.method in badges:
        badge = badges[a.method]
        with badge, st.spinner("Sanity check: explaining a randomised model…"):
            try:
                result = services.sanity(handle, a, on_wait=say_in(badge), private=private)
                st.markdown(quality.sanity_badge(result), unsafe_allow_html=True)
            except LoupeError as err:
                st.caption(f"Sanity check not available: {esc_md(err)}")

if len(done) > 1:
    st.divider()
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("#### Agreement between explainers", help="Spearman correlation of word scores (signed "
                    "scores as they are; magnitudes when one explainer is unsigned).")
        fig, flags = quality.agreement_matrix([show(a) for a in done], choices)
        st.plotly_chart(fig, width="stretch", key="loupe_agreement", config={"displayModeBar": False})
        for flag in flags:
            st.warning(flag, icon="⚖️")
        if not flags:
            st.success("The explainers agree on at least half of the top words.", icon="✅")
    with right:
        st.markdown("#### Deletion curves", help="The target probability as each explainer's top words are "
                    "deleted, most important first. A faithful explanation falls fast; compare with random.")
        curves = [(choices[a.method], faiths[a.method]) for a in done if a.method in faiths]
        if curves:
            st.plotly_chart(quality.deletion_chart(curves), width="stretch", key="loupe_deletion",
                            config={"displayModeBar": False})

if done and req_view is not None and (req.pii == "redact" or pii_check):
    st.divider()
    dependence_panel(req_view, labels, services.predict(handle, req_view.original, private=req.pii != "off"),
                     services.predict(handle, req_view.redacted),
                     [pii_share(a, req_view.ranges()) for a in done], choices)

if done:
    st.divider()
    st.markdown("#### Share and export")
    c1, c2, c3 = st.columns([3, 1, 1])
    with c1:
        st.caption("Copy link — it reopens this explanation (model, text, explainers, target):")
        st.code(services.permalink(st.query_params.to_dict()), language=None, wrap_lines=True)
    page_html = report.explain_report(handle, req_view.shown_text if req_view is not None else req.text,
                                      [show(a) for a in done], faiths, handle.info)
    c2.download_button("HTML report", page_html.encode("utf-8"), file_name="loupe-report.html", mime="text/html",
                       help="One self-contained file: prediction, highlights, faithfulness, agreement, model card.",
                       width="stretch")
    if c3.button("PNG report", help="A screenshot of the HTML report (headless Chromium on the server)",
                 width="stretch"):
        try:
            st.session_state[state.PNG] = services.report_png(page_html)
        except (OSError, RuntimeError, ImportError) as err:
            st.session_state.pop(state.PNG, None)
            st.error(f"Could not take the screenshot: {esc_md(err)}")
    if st.session_state.get(state.PNG):
        c3.download_button("Download PNG", st.session_state[state.PNG], file_name="loupe-report.png",
                           mime="image/png", width="stretch")
