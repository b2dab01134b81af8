"""A real `streamlit run` of Loupe (tiny model in a private store) and headless Debian Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_zoo import store
from tests.conftest import build_tiny_bert

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LOUPE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    home = tmp_path_factory.mktemp("browser_home")
    folder = build_tiny_bert(home / "models" / "tiny")
    store.write_card(folder, {"id": "tiny", "labels": ["negative", "positive"], "task": "sentiment"})
    port = _free_port()
    env = dict(os.environ, LOUPE_HOME=str(home), LOUPE_DEFAULT_MODEL="tiny", HF_HUB_OFFLINE="1")
    log = open(tmp_path_factory.mktemp("browser_log") / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                             "--server.port", str(port), "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not start")
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = _watch(context.new_page())  # pg.errors: page errors; pg.dialogs: alerts
    yield pg
    context.close()


def screenshot(pg, name: str) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


def _watch(pg):  # type: ignore[no-untyped-def]
    """Collect page errors (``pg.errors``) and JavaScript dialogs (``pg.dialogs``, each dismissed)."""
    pg.errors = []  # type: ignore[attr-defined]
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))  # type: ignore[attr-defined]

    def _dialog(d):  # type: ignore[no-untyped-def]
        pg.dialogs.append(f"{d.type}: {d.message}")  # type: ignore[attr-defined]
        d.dismiss()

    pg.on("dialog", _dialog)
    # The first page of a run waits for the model to load; on a busy 2-core machine that exceeds Playwright's 30 s.
    pg.set_default_timeout(120_000)
    return pg


@pytest.fixture
def new_page(browser):  # type: ignore[no-untyped-def]
    """A factory of pages, each in its own fresh browser context (own cookies, own Streamlit session)."""
    contexts = []

    def make(**context_args):  # type: ignore[no-untyped-def]
        context = browser.new_context(**{"viewport": {"width": 1400, "height": 1000}, **context_args})
        contexts.append(context)
        return _watch(context.new_page())

    yield make
    for context in contexts:
        context.close()
