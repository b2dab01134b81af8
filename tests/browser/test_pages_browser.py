"""The browser suite (issue 7): every page, the four explainer views, permalinks, the exported report, sandboxing,
and two sessions at once — the real ``streamlit run`` app in headless Debian Chromium."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser

TIMEOUT = 180_000  # ms; a loaded 2-core machine runs the app, Chromium and the explainers at once
# url path of each page ("" is the default page, Explain); "compress" is checked when the app has it
PAGES = {"explain": "", "compare": "compare", "finetune": "finetune", "evaluate": "evaluate", "models": "models",
         "compress": "compress", "errors": "errors", "continual": "continual", "prompts": "prompts"}
OPTIONAL = {"compress"}
ALL_FOUR = "ig,shap,lime,attention"
FAST = "ig,lime,attention"
TITLES = {"ig": "Integrated Gradients", "shap": "SHAP", "lime": "LIME", "attention": "Attention",
          "saliency": "Saliency"}
XSS = '"><img src=x onerror=alert(1)><script>alert(1)</script>'
XSS_MARKER = '"><img src=x onerror="window.__x=1"><script>window.__x=1</script>'


# --- helpers ----------------------------------------------------------------------------------------------------
def wait_for_app(pg, cards: int = 0, timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    """Wait until Streamlit has run the page to its end (and drawn ``cards`` explanation cards)."""
    pg.locator("h1").first.wait_for(state="visible", timeout=timeout)
    if cards:  # or stop early at an exception box: the run ended, without the cards
        pg.wait_for_function(f"document.querySelectorAll('.loupe-text').length >= {cards}"
                             " || !!document.querySelector('[data-testid=\"stException\"]')", timeout=timeout)
    pg.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    pg.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout)


def explain_url(app_url: str, **params: str) -> str:
    return f"{app_url}/?{urllib.parse.urlencode(params)}"


def nav_paths(pg) -> set[str]:  # type: ignore[no-untyped-def]
    """The url path of every page in the sidebar navigation."""
    hrefs = pg.locator('[data-testid="stSidebarNav"] a').evaluate_all("els => els.map(e => e.href)")
    return {urllib.parse.urlparse(h).path.strip("/") for h in hrefs}


def assert_clean(pg) -> None:  # type: ignore[no-untyped-def]
    """No page error, no exception box, no traceback text, no dialog (alert) on the page."""
    assert not pg.errors, pg.errors
    assert pg.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in pg.locator("body").inner_text()
    assert not pg.dialogs, pg.dialogs


def iframe_sandboxes(pg) -> list[tuple[str | None, str | None]]:  # type: ignore[no-untyped-def]
    return pg.locator("iframe").evaluate_all("els => els.map(e => [e.title, e.getAttribute('sandbox')])")


def assert_sandboxed(pg) -> None:  # type: ignore[no-untyped-def]
    for title, sandbox in iframe_sandboxes(pg):
        assert sandbox is not None, f"iframe {title!r} has no sandbox"
        assert "allow-same-origin" not in sandbox.split(), f"iframe {title!r}: sandbox={sandbox!r}"


def card_titles(pg) -> list[str]:  # type: ignore[no-untyped-def]
    """Titles of the explanation cards (the h4 above each highlighted text), in page order."""
    return pg.locator("h4").all_inner_texts()


def highlights(pg) -> list[list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    """Per card: each highlighted unit's text and its tooltip (word and score)."""
    return pg.locator(".loupe-text").evaluate_all(
        "els => els.map(e => [...e.querySelectorAll('span.u')].map(s => [s.textContent, s.title]))")


def bertviz_tokens(frame_el) -> list[str]:  # type: ignore[no-untyped-def]
    frame = frame_el.element_handle().content_frame()
    frame.wait_for_selector("svg text", timeout=60_000)
    return frame.locator("svg text").all_text_contents()


# --- 1. every page loads ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_without_error(page, app_url: str, name: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{app_url}/{PAGES[name]}")
    wait_for_app(page)
    paths = nav_paths(page)
    if name in OPTIONAL and PAGES[name] not in paths:
        pytest.skip(f"the app has no /{PAGES[name]} page yet")
    assert paths <= {*PAGES.values(), ""}, f"pages the browser suite does not visit: {paths - {*PAGES.values()}}"
    assert PAGES[name] in paths
    assert urllib.parse.urlparse(page.url).path.strip("/") == PAGES[name]  # no "page not found" redirect
    assert page.locator("h1").first.inner_text().strip()
    picker = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text="Model")
    expect(picker.locator("input")).to_have_value("tiny", timeout=30_000)  # the model picker shows the model
    screenshot(page, f"page-{name}")
    assert_clean(page)
    assert_sandboxed(page)


# --- 2. the four default explainer views ------------------------------------------------------------------------------
def test_explain_renders_all_four_views(new_page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    pg = new_page()
    pg.goto(explain_url(app_url, model="tiny", text="A gripping story, badly acted.", methods=ALL_FOUR))
    wait_for_app(pg, cards=4)
    assert pg.locator(".loupe-text").count() == 4
    titles = card_titles(pg)
    for method in ALL_FOUR.split(","):
        assert any(t.startswith(TITLES[method]) for t in titles), (method, titles)
    for card in pg.locator(".loupe-text").all_inner_texts():
        assert card.strip() == "A gripping story, badly acted."
    assert all(len(units) >= 5 for units in highlights(pg))  # every word highlighted in every view
    head_view = pg.locator("iframe[title='attention view']").first
    assert "gripping" in bertviz_tokens(head_view)  # bertviz drew the head view with its local scripts
    pg.get_by_role("tab", name="Model view").click()
    model_view = pg.locator("iframe[title='attention view']").nth(1)
    model_view.wait_for(state="visible", timeout=30_000)
    assert {"Layers", "Heads"} <= set(bertviz_tokens(model_view))  # the model view's grid of thumbnails
    screenshot(pg, "explain-all-four")
    assert_clean(pg)


# --- 3. a permalink reopens the same view -----------------------------------------------------------------------------
def test_permalink_reopens_same_view(new_page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    text = "An honest, tender little film about grief."
    first = new_page()
    first.goto(explain_url(app_url, methods=FAST))  # methods from the URL, no text: nothing runs yet
    wait_for_app(first)
    box = first.get_by_label("Text to explain")
    box.fill(text)
    box.press("Control+Enter")
    wait_for_app(first)
    first.locator('[data-testid="stSelectbox"]').filter(has_text="Explain the class").click()
    first.get_by_role("option", name="positive", exact=True).click()
    wait_for_app(first)
    first.get_by_role("button", name="Explain", exact=True).click()
    wait_for_app(first, cards=3)

    link = first.locator('[data-testid="stCode"]').filter(has_text="text=").inner_text().strip()
    query = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)
    assert urllib.parse.urlparse(link)[:3] in {(*urllib.parse.urlparse(app_url)[:2], p) for p in ("", "/")}, link
    assert query == {"model": ["tiny"], "text": [text], "methods": [FAST], "target": ["1"]}, query
    assert urllib.parse.parse_qs(urllib.parse.urlparse(first.url).query) == query  # mirrored in the address bar
    before = (card_titles(first), highlights(first), first.locator(".loupe-text").all_inner_texts())

    second = new_page()  # a new browser context: no cookies, a new Streamlit session
    second.goto(link)
    wait_for_app(second, cards=3)
    expect(second.get_by_label("Text to explain")).to_have_value(text, timeout=30_000)
    chosen = second.locator('[data-testid="stMultiSelect"]').filter(has_text="Explainers")
    for method in FAST.split(","):
        expect(chosen).to_contain_text(TITLES[method], timeout=30_000)
    expect(chosen).not_to_contain_text(TITLES["shap"])
    target = second.locator('[data-testid="stSelectbox"]').filter(has_text="Explain the class")
    expect(target.locator("input")).to_have_value("positive", timeout=30_000)
    after = (card_titles(second), highlights(second), second.locator(".loupe-text").all_inner_texts())
    assert after == before
    screenshot(second, "permalink-reopened")
    assert_clean(first)
    assert_clean(second)


# --- 4. the exported HTML report: offline, payload as text -------------------------------------------------------
def test_html_report_offline_shows_payload_as_text(new_page, app_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = f"{XSS} then {XSS_MARKER}"
    app = new_page()
    app.goto(explain_url(app_url, model="tiny", text=text, methods=FAST))
    wait_for_app(app, cards=3)
    assert app.evaluate("window.__x === undefined") and not app.dialogs
    with app.expect_download(timeout=60_000) as info:
        app.get_by_role("button", name="HTML report").click()
    report = tmp_path / "report.html"
    info.value.save_as(report)
    assert report.stat().st_size > 1000

    offline = new_page()
    requested: list[str] = []
    offline.context.on("request", lambda r: requested.append(r.url))
    offline.context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                          else route.abort())
    offline.goto(report.as_uri())
    offline.wait_for_load_state("load")
    body = offline.locator("body").inner_text()
    assert XSS in body and XSS_MARKER in body  # shown as the characters typed
    assert offline.locator(".loupe-text").count() >= 4  # the text, and each explanation's highlights
    for card in offline.locator(".loupe-text").all_inner_texts():
        assert card.strip() == text
    assert offline.locator("script, img, iframe, link[rel=stylesheet]").count() == 0
    assert offline.evaluate("window.__x === undefined")
    assert not offline.dialogs and not offline.errors
    assert requested == [report.as_uri()], requested  # nothing but the file itself was fetched
    screenshot(offline, "report-offline")


# --- 5. no explanation iframe may reach the app ------------------------------------------------------------------
def test_no_iframe_allows_same_origin(new_page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    pg = new_page()
    pg.goto(explain_url(app_url, model="tiny", text="Sharp, funny and far too long.", methods=ALL_FOUR))
    wait_for_app(pg, cards=4)
    frames = iframe_sandboxes(pg)
    assert sum(title == "attention view" for title, _ in frames) >= 2  # head view and model view
    assert_sandboxed(pg)
    head_view = pg.locator("iframe[title='attention view']").first
    bertviz_tokens(head_view)
    frame = head_view.element_handle().content_frame()
    reach = "() => { try { return parent.document.title } catch (e) { return 'blocked' } }"
    assert frame.evaluate(reach) == "blocked"  # a script in the view cannot read the app page
    assert frame.evaluate("() => { try { document.cookie; return 'readable' } catch (e) { return 'blocked' } }") \
        == "blocked"  # an opaque origin: no cookies, no storage
    assert_clean(pg)


# --- 6. two sessions at once -------------------------------------------------------------------------------------
def test_two_sessions_get_separate_results(new_page, app_url: str) -> None:  # type: ignore[no-untyped-def]
    # different token counts (11 and 9 with the tiny model's tokenizer): a mix-up cannot go unnoticed
    texts = ["Alpha bravo charlie delta echo foxtrot.", "Zulu yankee whiskey victor uniform tango."]
    pages = [new_page(), new_page()]
    for pg, text in zip(pages, texts):  # start both before waiting for either
        pg.goto(explain_url(app_url, model="tiny", text=text, methods=FAST), wait_until="commit")
    for pg in pages:
        wait_for_app(pg, cards=3)
    for pg, text, other in zip(pages, texts, reversed(texts)):
        assert_clean(pg)
        cards = pg.locator(".loupe-text").all_inner_texts()
        assert len(cards) == 3
        assert all(card.strip() == text for card in cards), cards
        words = {w.lower().strip(".") for w in other.split()}
        shown = {unit.lower().strip(".") for card in highlights(pg) for unit, _ in card}
        assert not words & shown, words & shown
        expect(pg.get_by_label("Text to explain")).to_have_value(text, timeout=30_000)
        link = pg.locator('[data-testid="stCode"]').filter(has_text="text=").inner_text().strip()
        assert urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["text"] == [text]
        assert_clean(pg)
    screenshot(pages[0], "two-sessions-a")
    screenshot(pages[1], "two-sessions-b")
