"""Tenancy in a real hosted app (issue 11): two browser contexts; B cannot see, cancel, save or load A's jobs or
A's private model, and no page shows B a server path."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from model_zoo import store
from tests.browser.conftest import CHROMIUM, ROOT, _free_port, screenshot
from tests.browser.test_pages_browser import assert_clean, wait_for_app
from tests.conftest import build_tiny_bert

pytestmark = pytest.mark.browser

TIMEOUT = 180_000  # ms; a loaded 2-core machine runs the app, Chromium and the jobs at once
JOB_TIMEOUT = 600_000  # a tiny fine-tuning job: its own process, torch imports and all
NO_SUCH_JOB = "No such job"
NOT_AVAILABLE = "not available on this server"


@pytest.fixture(scope="module")
def hosted_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``streamlit run`` with LOUPE_HOSTED=1: the tiny model in the store, one operator root."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    home = tmp_path_factory.mktemp("hosted_home")
    folder = build_tiny_bert(home / "models" / "tiny")
    store.write_card(folder, {"id": "tiny", "labels": ["negative", "positive"], "task": "sentiment"})
    root = tmp_path_factory.mktemp("hosted_root")
    build_tiny_bert(root / "team" / "shared-tiny")
    port = _free_port()
    env = dict(os.environ, LOUPE_HOME=str(home), LOUPE_DEFAULT_MODEL="tiny", HF_HUB_OFFLINE="1",
               LOUPE_HOSTED="1", LOUPE_MODEL_ROOTS=str(root))
    env.pop("LOUPE_ALLOW_HUB", None)
    log_path = tmp_path_factory.mktemp("hosted_log") / "streamlit.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                             "--server.port", str(port), "--server.address", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError(f"streamlit did not start: {log_path.read_text()[-2000:]}")
    yield url, home
    proc.terminate()
    proc.wait(30)
    log.close()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-4000:]  # nothing blew up server-side


def _pick(pg, label: str, option: str) -> None:  # type: ignore[no-untyped-def]
    """Choose ``option`` in the select box labelled ``label`` (typed: below a data grid a click may not open it)."""
    wait_for_app(pg)
    box = pg.locator('[data-testid="stSelectbox"]').filter(has_text=label)
    box.locator("input").click()
    pg.keyboard.type(option)
    pg.get_by_role("option", name=option, exact=True).click()
    wait_for_app(pg)
    expect(box.locator("input")).to_have_value(option, timeout=30_000)


def _job_of(pg) -> str:  # type: ignore[no-untyped-def]
    pg.wait_for_url("**job=*", timeout=TIMEOUT)
    return urllib.parse.parse_qs(urllib.parse.urlparse(pg.url).query)["job"][0]


def _shows_no_server_path(pg, home: Path) -> None:  # type: ignore[no-untyped-def]
    body = pg.locator("body").inner_text()
    assert str(home) not in body and "/tmp/" not in body, body[:2000]


def test_b_cannot_see_cancel_save_or_load_as_jobs(new_page, hosted_app: tuple[str, Path],  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    url, home = hosted_app
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\n" + "".join(f"a {'good' if i % 2 else 'bad'} film take {i},"
                                              f"{'pos' if i % 2 else 'neg'}\n" for i in range(60)))
    a, b = new_page(), new_page()  # two browser contexts: own cookies, own sessions

    # A fine-tunes on an uploaded CSV; the model stays private to the job
    a.goto(f"{url}/finetune")
    wait_for_app(a)
    a.get_by_text("Upload a CSV").click()
    wait_for_app(a)
    a.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(csv))
    wait_for_app(a)
    expect(a.get_by_text("Trainable parameters")).to_be_visible(timeout=TIMEOUT)
    _pick(a, "Base model", "tiny")
    _pick(a, "Method", "Frozen encoder (head only)")
    a.get_by_role("button", name="Start fine-tuning").click()
    finetune_job = _job_of(a)
    expect(a.get_by_role("button", name="Save to the store")).to_be_visible(timeout=JOB_TIMEOUT)
    uploads = home / "uploads"
    assert not [p for p in uploads.rglob("*") if p.is_file()]  # the job ended: its upload is gone
    _shows_no_server_path(a, home)

    # B, with A's link: no such job; nothing to save or cancel
    b.goto(f"{url}/finetune?job={finetune_job}")
    wait_for_app(b)
    expect(b.get_by_text(NO_SUCH_JOB).first).to_be_visible(timeout=TIMEOUT)
    assert b.get_by_role("button", name="Save to the store").count() == 0
    assert b.get_by_text("Test accuracy").count() == 0
    # ... nor A's model, by link or by Load folder, and B learns nothing about the path
    job_model = home / "jobs" / finetune_job / "model"
    for link in (str(job_model), f"../{job_model.relative_to(home)}", "/etc/shadow", str(home / "nothing")):
        b.goto(f"{url}/models?{urllib.parse.urlencode({'model': link})}")
        wait_for_app(b)
        expect(b.get_by_text(NOT_AVAILABLE).first).to_be_visible(timeout=TIMEOUT)
        _shows_no_server_path(b, home)
    b.get_by_text("Load a shared model folder").click()
    b.get_by_placeholder("team/model").fill(str(job_model))
    b.get_by_placeholder("team/model").press("Enter")
    wait_for_app(b)
    b.get_by_role("button", name="Load folder").click()
    wait_for_app(b)
    expect(b.get_by_text(NOT_AVAILABLE).first).to_be_visible(timeout=TIMEOUT)
    picker = b.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text="Model")
    expect(picker.locator("input")).to_have_value("tiny", timeout=30_000)
    screenshot(b, "tenancy-b-refused")

    # A saves; only now is the model anyone's
    a.get_by_role("button", name="Save to the store").click()
    wait_for_app(a)
    expect(a.get_by_text("Saved to the store").first).to_be_visible(timeout=TIMEOUT)

    # A starts a long evaluation; B can neither see it in a list nor cancel it by link
    a.goto(f"{url}/evaluate")
    wait_for_app(a)
    a.get_by_role("button", name="Run evaluation").click()
    evaluate_job = _job_of(a)
    expect(a.get_by_role("button", name="Cancel")).to_be_visible(timeout=TIMEOUT)
    b.goto(f"{url}/evaluate")
    wait_for_app(b)
    assert evaluate_job not in b.locator("body").inner_text() and finetune_job not in b.locator("body").inner_text()
    b.goto(f"{url}/evaluate?job={evaluate_job}")
    wait_for_app(b)
    expect(b.get_by_text(NO_SUCH_JOB).first).to_be_visible(timeout=TIMEOUT)
    assert b.get_by_role("button", name="Cancel").count() == 0
    a.reload()
    wait_for_app(a)
    expect(a.get_by_role("button", name="Cancel")).to_be_visible(timeout=TIMEOUT)  # A's browser: still A's job
    a.get_by_role("button", name="Cancel").click()
    expect(a.get_by_text("cancelled").first).to_be_visible(timeout=TIMEOUT)
    for pg in (a, b):
        assert_clean(pg)
