"""Plotly figures. Label and token strings go into plotly as data (drawn as SVG text, not HTML)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from dashboard.components.highlight import POSITIVE


def plain(s: str) -> str:
    """A label for plotly, shown as typed."""
    # Plotly interprets a few HTML-like tags (<b>, <br>) in labels; neutralise '<' so names show as typed.
    return str(s).replace("<", "\u2039").replace(">", "\u203a")


def probability_chart(labels: Sequence[str], probs: Sequence[float], highlight: int | None = None) -> go.Figure:
    """Horizontal bars of class probabilities, the predicted (or chosen) class in colour."""
    colours = [f"rgb{POSITIVE}" if i == highlight else "#c7c7c7" for i in range(len(labels))]
    fig = go.Figure(go.Bar(x=list(probs), y=[plain(x) for x in labels], orientation="h", marker_color=colours,
                           text=[f"{p:.1%}" for p in probs], textposition="auto", hoverinfo="skip"))
    fig.update_layout(height=60 + 32 * len(labels), margin=dict(l=0, r=10, t=10, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed"))
    return fig


def head_heatmap(attentions: np.ndarray, token_index: int, token: str) -> go.Figure:
    """Layer x head heatmap of the attention that [CLS] pays to one token."""
    z = attentions[:, :, 0, token_index]
    fig = go.Figure(go.Heatmap(z=z, x=[f"h{h}" for h in range(z.shape[1])], y=[f"L{i}" for i in range(z.shape[0])],
                               colorscale="Purples", zmin=0, colorbar=dict(title="attn")))
    fig.update_layout(height=80 + 28 * z.shape[0], margin=dict(l=0, r=0, t=30, b=0),
                      title=dict(text=f"[CLS] → {plain(token)}", font=dict(size=13)),
                      yaxis=dict(autorange="reversed"))
    return fig
