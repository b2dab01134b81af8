"""Renderers for how far to trust an explanation: faithfulness, agreement, deletion curves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.components.charts import plain
from dashboard.components.highlight import esc_html, esc_md
from explainers import Attribution
from explainers.metrics import Faithfulness, agreement


def faithfulness_line(f: Faithfulness) -> str:
    """One line of HTML: comprehensiveness/sufficiency AOPC with the random baseline for scale."""
    b = f.baseline
    comp = f"{f.comp_aopc:.3f}" + (f" <span style='color:#888'>(random {b.comp_aopc:.3f})</span>" if b else "")
    suff = f"{f.suff_aopc:.3f}" + (f" <span style='color:#888'>(random {b.suff_aopc:.3f})</span>" if b else "")
    verdict = ""
    if b is not None:
        good = f.comp_aopc > b.comp_aopc and f.suff_aopc < b.suff_aopc
        bad = f.comp_aopc <= b.comp_aopc
        verdict = (" · <b style='color:#1a7f37'>better than random</b>" if good else
                   " · <b style='color:#b42318'>no better than random</b>" if bad else " · mixed")
    return (f"<div style='font-size:.85rem;margin:.1rem 0 .4rem'>Comprehensiveness AOPC ↑ {comp} · "
            f"Sufficiency AOPC ↓ {suff}{verdict}</div>")


def sanity_badge(r: Any) -> str:
    """One line of HTML: the model-randomisation figure as a badge, and its plain sentence (escaped)."""
    if r.passed is None:
        colour, label = "#888", "sanity: n/a"
    elif r.passed:
        colour, label = "#1a7f37", f"sanity ✓ ρ {r.final:.2f}"
    else:
        colour, label = "#b42318", f"sanity ✗ ρ {r.final:.2f}"
    return (f"<div style='font-size:.85rem;margin:.1rem 0 .4rem'><span style='background:{colour};color:white;"
            f"border-radius:4px;padding:1px 6px;margin-right:.4rem'>{esc_html(label)}</span>"
            f"{esc_html(r.sentence())}</div>")


def agreement_matrix(attributions: Sequence[Attribution], titles: dict[str, str]) -> tuple[go.Figure, list[str]]:
    """Spearman agreement heatmap across explainers, and plain-language flags where top words differ."""
    names = [titles.get(a.method, a.method) for a in attributions]
    n = len(attributions)
    z = np.full((n, n), np.nan)
    flags = []
    for i in range(n):
        for j in range(n):
            ag = agreement(attributions[i], attributions[j])
            z[i, j] = ag.spearman if ag.spearman is not None else np.nan
            if i < j and ag.top_k_overlap < 0.5:
                # Words and titles come from the user's text and the model: escaped, never Markdown.
                top_i = ", ".join(esc_md(w.text) for w in attributions[i].top_words(ag.k))
                top_j = ", ".join(esc_md(w.text) for w in attributions[j].top_words(ag.k))
                flags.append(f"**{esc_md(names[i])}** and **{esc_md(names[j])}** disagree on their top {ag.k} words "
                             f"(overlap {ag.top_k_overlap:.0%}): {top_i} vs {top_j}.")
    fig = go.Figure(go.Heatmap(z=z, x=[plain(x) for x in names], y=[plain(x) for x in names], zmin=-1, zmax=1,
                               colorscale="RdBu", text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.2f}")(z),
                               texttemplate="%{text}", colorbar=dict(title="Spearman")))
    fig.update_layout(height=120 + 45 * n, margin=dict(l=0, r=0, t=10, b=0), yaxis=dict(autorange="reversed"))
    return fig, flags


def deletion_chart(results: Sequence[tuple[str, Faithfulness]]) -> go.Figure:
    """p(target) as each explainer's top words are deleted; the random ranking dashed, for scale."""
    fig = go.Figure()
    for title, f in results:
        fig.add_trace(go.Scatter(x=list(f.fractions), y=list(f.deletion), mode="lines+markers", name=plain(title)))
    base = next((f.baseline for _, f in results if f.baseline is not None), None)
    if base is not None:
        fig.add_trace(go.Scatter(x=list(base.fractions), y=list(base.deletion), mode="lines", name="random",
                                 line=dict(dash="dash", color="#999")))
    fig.update_layout(height=340, margin=dict(l=0, r=0, t=10, b=0), xaxis=dict(title="fraction of words deleted",
                      tickformat=".0%"), yaxis=dict(title="p(target)", range=[0, 1]), legend=dict(orientation="h"))
    return fig
