"""A global explanation on a page: per class, the words toward and away (tables and bars, possible shortcuts
flagged), each word opening its example sentences (each a link to the Explain page), and what changed between
two models. It draws the result dict of a ``global`` job (:class:`explainers.global_importance.GlobalResult`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import services, state
from dashboard.components.charts import plain
from dashboard.components.highlight import NEGATIVE, POSITIVE, esc_md

SHORTCUT_HELP = ("A word of a kind that should mean nothing for the task, yet matters to the model (a mean at "
                 "least a quarter of the largest listed for this class): a name (a common first name, or a word "
                 "written capitalised inside sentences), a number, or punctuation. Open its example sentences to "
                 "judge.")
_BARS = 10  # words per side in a class's chart


def _flag(kind: str) -> str:
    return f"⚠ {kind}" if kind else ""


def _table(words: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{"word": w["word"], "mean attribution": w["mean"], "uses": w["count"],
                          "sentences": w["sentences"],
                          "possible shortcut": _flag(w.get("kind") or "") if w.get("shortcut") else ""}
                         for w in words], columns=["word", "mean attribution", "uses", "sentences",
                                                   "possible shortcut"])


_COLUMNS = {
    "mean attribution": st.column_config.NumberColumn(format="%+.4f", help="Mean score toward the class over the "
                                                                           "word's uses"),
    "uses": st.column_config.NumberColumn(help="Times the word occurs in the explained sentences"),
    "sentences": st.column_config.NumberColumn(help="Explained sentences that hold the word"),
    "possible shortcut": st.column_config.TextColumn(help=SHORTCUT_HELP),
}


def _bars(label: str, toward: Sequence[Mapping[str, Any]], away: Sequence[Mapping[str, Any]]) -> go.Figure:
    rows = list(away[:_BARS]) + list(toward[:_BARS])[::-1]  # plotly draws the first bar lowest: strongest on top
    words = [plain(("⚠ " if w.get("shortcut") else "") + w["word"]) for w in rows]
    fig = go.Figure(go.Bar(
        x=[w["mean"] for w in rows], y=words,
        orientation="h", marker_color=[f"rgb{POSITIVE}" if w["mean"] > 0 else f"rgb{NEGATIVE}" for w in rows],
        customdata=[[w["count"], w["sentences"]] for w in rows],
        hovertemplate="%{y}: %{x:+.4f}<br>%{customdata[0]} uses in %{customdata[1]} sentences<extra></extra>"))
    fig.update_layout(height=90 + 18 * max(1, len(rows)), margin=dict(l=0, r=10, t=30, b=0),
                      xaxis_title=f"mean attribution toward {plain(label)}",
                      title=dict(text=f"Toward {plain(label)} (blue) and away from it (red)", font=dict(size=13)))
    return fig


def _examples(model: str, word: Mapping[str, Any], sentences: Mapping[str, Any], label: str) -> None:
    rows = []
    for idx, score in word.get("examples") or []:
        text, true = (sentences.get(str(idx)) or ["", ""])[:2]
        if text:
            rows.append({"sentence": text, "true class": true, f"score toward {label}": score,
                         "explain": services.explain_link(model, text)})
    if not rows:
        st.caption("No example sentences were kept for this word.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        f"score toward {label}": st.column_config.NumberColumn(format="%+.4f"),
        "explain": st.column_config.LinkColumn("explain", display_text="Explain ↗",
                                               help="Opens the Explain page on this sentence with this model")})


def _class_view(k: int, ci: int, model: str, c: Mapping[str, Any], sentences: Mapping[str, Any]) -> None:
    label = str(c["label"])
    toward, away = list(c.get("toward") or []), list(c.get("away") or [])
    if not toward and not away:
        st.caption("No word was found in enough sentences to list.")
        return
    left, right = st.columns(2)
    left.caption(f"Push **toward** {esc_md(label)}")
    left.dataframe(_table(toward), hide_index=True, width="stretch", column_config=_COLUMNS)
    right.caption(f"Push **away from** {esc_md(label)}")
    right.dataframe(_table(away), hide_index=True, width="stretch", column_config=_COLUMNS)
    st.plotly_chart(_bars(label, toward, away), width="stretch", config={"displayModeBar": False},
                    key=f"loupe_err_bars_{k}_{ci}")
    flagged = [w for w in toward + away if w.get("shortcut")]
    if flagged:
        st.warning("Possible shortcuts among these words: " + "; ".join(
            f"“{esc_md(w['word'])}” ({esc_md(w.get('why') or w['kind'])})" for w in flagged[:8]), icon="⚠️")
    words = {f"{w['word']}": w for w in toward + away}
    chosen = st.selectbox("Example sentences for the word", list(words), key=state.err_word(k, ci),
                          format_func=lambda w: f"{w}  ({words[w]['mean']:+.4f}, {words[w]['sentences']} sentences)",
                          help="The sentences where the word pushed hardest in its direction; each opens on the "
                               "Explain page.")
    if chosen in words:
        _examples(model, words[chosen], sentences, label)


def report_view(k: int, rep: Mapping[str, Any], sentences: Mapping[str, Any]) -> None:
    """One model's global explanation: a line on how it was made, then a tab per class."""
    settings = rep.get("settings") or {}
    predicted = ", ".join(f"{n} {esc_md(lab)}" for lab, n in zip(rep.get("labels") or [], rep.get("predicted") or []))
    cost = f" · {rep['cost']:.2f} s a sentence" if rep.get("cost") else ""
    cached = f" · {rep['cached']} from the cache" if rep.get("cached") else ""
    st.markdown(f"**{esc_md(services.shown_error(rep['model']))}** · {esc_md(rep['dataset'])} · "
                f"{rep['explained']:,} sentences explained ({predicted} predicted) · {esc_md(rep['title'])}"
                f"{cost}{cached}")
    st.caption(f"Words found in at least {settings.get('min_sentences', 3)} sentences; the {settings.get('top_k', 15)}"
               " with the highest and the lowest mean attribution toward each class.")
    if rep.get("failed"):
        st.warning(f"{rep['failed']} sentence(s) could not be explained: "
                   + esc_md("; ".join(rep.get("errors") or [])), icon="⚠️")
    classes = list(rep.get("classes") or [])
    for ci, (tab, c) in enumerate(zip(st.tabs([esc_md(c["label"]) for c in classes]), classes)):
        with tab:
            _class_view(k, ci, str(rep["model"]), c, sentences)


def _shift_table(shifts: Sequence[Mapping[str, Any]], a: str, b: str) -> pd.DataFrame:
    return pd.DataFrame([{"word": s["word"], "change": s["change"], f"mean · {a}": s["mean_a"],
                          f"mean · {b}": s["mean_b"], "sentences": s["sentences"],
                          "kind": s.get("kind") or ""} for s in shifts])


def comparison_view(cmp: Mapping[str, Any]) -> None:
    """Which words gained or lost mean attribution toward each class from model A to model B."""
    a, b = services.shown_error(cmp["model_a"]), services.shown_error(cmp["model_b"])
    st.markdown(f"**What changed from {esc_md(a)} to {esc_md(b)}** (the same sentences, "
                f"{cmp.get('common', 0):,} words frequent enough under both)")
    classes = list(cmp.get("classes") or [])
    for ci, (tab, c) in enumerate(zip(st.tabs([esc_md(c["label"]) for c in classes]), classes)):
        with tab:
            label = str(c["label"])
            gained, lost = list(c.get("gained") or []), list(c.get("lost") or [])
            left, right = st.columns(2)
            fmt = {"change": st.column_config.NumberColumn(format="%+.4f"),
                   f"mean · {a}": st.column_config.NumberColumn(format="%+.4f"),
                   f"mean · {b}": st.column_config.NumberColumn(format="%+.4f"),
                   "kind": st.column_config.TextColumn(help="A name, a number or punctuation: a kind of word that "
                                                            "should mean nothing for the task")}
            left.caption(f"Gained: push more toward {esc_md(label)} under {esc_md(b)}")
            left.dataframe(_shift_table(gained, a, b), hide_index=True, width="stretch", column_config=fmt)
            right.caption(f"Lost: push less toward {esc_md(label)} (or further away) under {esc_md(b)}")
            right.dataframe(_shift_table(lost, a, b), hide_index=True, width="stretch", column_config=fmt)
            rows = lost[:_BARS] + gained[:_BARS][::-1]  # the largest gain on top, the largest loss at the bottom
            if rows:
                fig = go.Figure(go.Bar(x=[s["change"] for s in rows], y=[plain(s["word"]) for s in rows],
                                       orientation="h", customdata=[[s["mean_a"], s["mean_b"]] for s in rows],
                                       marker_color=[f"rgb{POSITIVE}" if s["change"] > 0 else f"rgb{NEGATIVE}"
                                                     for s in rows],
                                       hovertemplate="%{y}: %{customdata[0]:+.4f} → %{customdata[1]:+.4f}"
                                                     "<extra></extra>"))
                fig.update_layout(height=90 + 18 * len(rows), margin=dict(l=0, r=10, t=30, b=0),
                                  xaxis_title=f"change in mean attribution toward {plain(label)}",
                                  title=dict(text=f"{plain(a)} → {plain(b)}", font=dict(size=13)))
                st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key=f"loupe_err_shift_{ci}")


def global_view(result: Mapping[str, Any]) -> None:
    """Draw a global explanation (one or two models, and their comparison)."""
    if result.get("why"):
        st.caption(f"Explainer: {esc_md(result['why'])}")
    sentences = result.get("sentences") or {}
    reports = list(result.get("reports") or [])
    for k, rep in enumerate(reports):
        if len(reports) > 1:
            st.markdown(f"##### {'First' if k == 0 else 'Second'} model")
        report_view(k, rep, sentences)
    if result.get("comparison"):
        st.markdown("##### Side by side")
        comparison_view(result["comparison"])
