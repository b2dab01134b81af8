"""Text from users, data, tokenizers and models is shown as typed: no Markdown or HTML of its own, no fetched
image, and invisible direction-control or zero-width characters shown as markers (RLO never turns "good" into
"doog" on screen while the model reads "good")."""

from __future__ import annotations

import dataclasses

import pytest
from markdown_it import MarkdownIt

from dashboard.components.highlight import esc_md, highlight_html, visible
from dashboard.report import explain_report
from explainers import REGISTRY, Word
from tests.dashboard.test_apptest import APP

MARKDOWN = ("![beacon](http://127.0.0.1:9/b.png) **bold** _it_ [link](http://127.0.0.1:9/) <img src=x> "
            "https://127.0.0.1/x www.example.com a@b.co `code` # head\n\n- item\n> quote | pipe ~~s~~")
RLO = "\u202egood\u202c film \u200bis\u2066 \ufefffine\u200f"
INVISIBLE = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u200b\u200c\u200d\u2060\ufeff"


def _render(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)


def test_markdown_escape_renders_as_plain_text() -> None:
    out = esc_md(MARKDOWN)
    html = _render(out)
    for tag in ("<img", "<a ", "<strong", "<em", "<code", "<h1", "<li", "<blockquote"):
        assert tag not in html, (tag, html)
    assert "://" not in out and "www." not in out  # GFM's autolink literals cannot form either
    assert "\n" not in out


def test_invisible_characters_become_markers() -> None:
    shown = visible(INVISIBLE)
    assert not set(INVISIBLE) & set(shown)
    assert "⟨RLO⟩" in shown and "⟨ZWSP⟩" in shown and "⟨LRI⟩" in shown and "⟨BOM⟩" in shown
    assert not set(INVISIBLE) & set(esc_md(INVISIBLE))


def test_highlight_shows_rlo_and_keeps_markdown_out(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    a = REGISTRY["saliency"].explain(tiny_handle, RLO)
    html = highlight_html(a)
    assert not set(INVISIBLE) & set(html)
    assert "⟨RLO⟩" in html and "⟨ZWSP⟩" in html and "good" in html
    b = REGISTRY["saliency"].explain(tiny_handle, "fine\n\n![x](http://127.0.0.1:9/x.png)\n\n**bold**")
    html = highlight_html(b)
    assert "\n" not in html  # a blank line would end the HTML block and turn the rest into Markdown
    assert "&#10;&#10;" in html
    assert "<img" not in _render(html) and "<strong" not in _render(html)


def test_report_shows_rlo_as_a_marker(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    a = REGISTRY["saliency"].explain(tiny_handle, RLO)
    page = explain_report(None, RLO, [a], {}, {"id": "m\u202eodel", "labels": ["neg\u202e", "pos"]})
    assert not set(INVISIBLE) & set(page)
    assert page.count("⟨RLO⟩") >= 3  # the text card, the highlight and the top-words table


def test_disagreement_flag_renders_no_markdown(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    from dashboard.components.quality import agreement_matrix

    text = "![x](http://127.0.0.1:9/b.png) **bold** [l](http://127.0.0.1:9/) fine film plot"
    a = REGISTRY["ablation"].explain(tiny_handle, text)
    flipped = dataclasses.replace(a, method="saliency", words=tuple(
        Word(w.text, w.start, w.end, float(i), w.tokens) for i, w in enumerate(a.words)))
    reverse = dataclasses.replace(a, words=tuple(
        Word(w.text, w.start, w.end, -float(i), w.tokens) for i, w in enumerate(a.words)))
    _, flags = agreement_matrix([flipped, reverse], {"saliency": "Saliency", "ablation": "Ablation"})
    assert flags
    html = _render(flags[0])
    assert "<img" not in html and "<a " not in html and "<strong>bold" not in html


@pytest.mark.usefixtures("tiny_store")
def test_explain_page_shows_rlo_visibly() -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"text": RLO, "methods": "ablation"})
    at.run()
    assert not at.exception
    blocks = [m.value for m in at.markdown if "loupe-text" in m.value]
    assert blocks and all(not set(INVISIBLE) & set(b) for b in blocks)
    words = at.dataframe[0].value["token"].tolist()
    assert any("⟨RLO⟩" in w for w in words) and not any(set(INVISIBLE) & set(w) for w in words)
