"""The real app in headless Chromium: explain a sentence, see highlights and attention, stay safe."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser
PAYLOAD = '"><img src=x onerror="window.__x=1"><script>window.__x=1</script>'
FAST = "ig,lime,attention,saliency"


def _wait_done(pg, cards: int, timeout: float = 120_000) -> None:  # type: ignore[no-untyped-def]
    pg.wait_for_function(f"document.querySelectorAll('.loupe-text').length >= {cards}", timeout=timeout)
    pg.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout)


def test_explain_sentence_renders_highlights_and_attention(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(app_url)
    box = page.get_by_label("Text to explain")
    box.fill("A wonderful, moving film with a terrible ending.")
    box.press("Control+Enter")
    page.get_by_role("button", name="Explain", exact=True).click()
    _wait_done(page, 4)
    assert page.locator(".loupe-text span.u").count() >= 8  # each word highlighted, in each explainer
    frame_el = page.locator("iframe[title='attention view']").first
    assert frame_el.get_attribute("sandbox") == "allow-scripts"
    frame = frame_el.element_handle().content_frame()
    frame.wait_for_selector("svg text", timeout=30_000)  # bertviz drew the tokens with its local d3
    assert "wonderful" in frame.locator("svg text").all_text_contents()
    screenshot(page, "explain")
    assert not page.errors


def test_script_payload_stays_text(page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    query = urllib.parse.urlencode({"text": PAYLOAD, "methods": FAST})
    page.goto(f"{app_url}/?{query}")
    _wait_done(page, 4)
    assert page.evaluate("window.__x === undefined ? null : window.__x") is None
    for frame in page.frames:  # the sandboxed attention views too
        assert frame.evaluate("window.__x === undefined ? null : window.__x") is None
    highlighted = page.locator(".loupe-text").first.inner_text()
    assert "<script>" in highlighted and "<img" in highlighted  # shown as the text it is
    for sandbox in page.locator("iframe").evaluate_all("els => els.map(e => e.getAttribute('sandbox'))"):
        assert sandbox is not None and "allow-same-origin" not in sandbox
    screenshot(page, "explain_payload")
