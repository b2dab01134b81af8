"""Tenancy (issue 11) through the app: jobs belong to whoever started them (a session's owner token, or the
signed-in user with st.login), another session cannot see, cancel, save or load them; uploads live only as long
as the job that reads them."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from model_zoo import jobs, store
from model_zoo.paths import jobs_dir, loupe_home, write_json_atomic
from tests.dashboard.test_apptest import APP

ALICE, BOB = "session:alice-owner-token", "session:bob-owner-token"
NO_SUCH_JOB = "No such job. The link may be wrong, or the job was deleted."
PAGES = {"explain": None, "compare": "app_pages/compare.py", "finetune": "app_pages/finetune.py",
         "compress": "app_pages/compress.py", "evaluate": "app_pages/evaluate.py", "models": "app_pages/models.py"}



def _open(page: str | None, owner: str | None = None, user: dict | None = None,  # type: ignore[type-arg]
          secrets: dict | None = None, **params: str) -> AppTest:  # type: ignore[type-arg]
    at = AppTest.from_file(APP, default_timeout=180)
    if owner:
        at.session_state["loupe_owner"] = owner
    if user is not None:
        at.user = user
    if secrets:
        at.secrets = secrets
    at.run()
    if page:
        at.switch_page(page)
    at.query_params.update(params)
    at.run()
    return at


def _buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def _make_job(kind: str, config: dict, owner: str, state: str = "queued", **status: object) -> Path:  # type: ignore[type-arg]
    """A job folder as the app writes it (by hand, so this file also runs against the code before issue 11)."""
    folder = jobs_dir() / f"{kind}-{secrets.token_urlsafe(16)}"
    folder.mkdir(parents=True)
    write_json_atomic(folder / "config.json", {"kind": kind, "config": config, "owner": owner})
    write_json_atomic(folder / "status.json", {"state": state, "kind": kind, "created": time.time(),
                                               "progress": 0.0, "message": "", **status})
    return folder


def _finished_finetune(owner: str, model_src: Path) -> tuple[str, Path]:
    """A done fine-tuning job of ``owner`` whose model stayed private in its folder (as publish=False leaves it)."""
    folder = _make_job("finetune", {"base": "tiny", "method": "head_only", "name": "alices-model",
                                    "data": {"source": "rt"}}, owner)
    model = folder / "model"
    shutil.copytree(model_src, model)
    store.write_card(model, {"id": f"job:{folder.name}", "labels": ["negative", "positive"], "method": "head_only"})
    test = {"split": "test", "role": "scored once", "size": 10, "accuracy": 0.6, "f1_macro": 0.55,
            "confusion_matrix": [[3, 2], [2, 3]]}
    write_json_atomic(folder / "result.json", {
        "model_id": None, "path": str(model), "published": False, "method": "head_only", "trainable": 66,
        "total": 1000, "train_seconds": 1.0, "seconds": 2.0, "selection": {}, "data": {"test": {"size": 10}},
        "metrics": {"validation": {**test, "split": "validation"}, "test": test}})
    jobs._update(folder, state="done", progress=1.0, message="Finished.")
    return folder.name, model


def _running(kind: str, owner: str) -> tuple[str, subprocess.Popen]:  # type: ignore[type-arg]
    """A running job of ``owner`` (its process: a sleep that Cancel must stop)."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    folder = _make_job(kind, {"model": "tiny", "split": "test", "n": 5, "methods": ["attention"]}, owner,
                       state="running", pid=proc.pid, progress=0.3, message="working")
    return folder.name, proc


def test_session_b_cannot_see_cancel_save_or_load_as_jobs(tiny_store: str, tiny_model_dir: Path) -> None:
    ft, model = _finished_finetune(ALICE, tiny_model_dir)
    ev, proc = _running("evaluate", ALICE)
    try:
        # B, with A's links: the jobs do not exist for B
        for page, job_id in (("finetune", ft), ("evaluate", ev), ("compress", ft), ("compress", ev)):
            at = _open(PAGES[page], owner=BOB, job=job_id)
            assert not at.exception
            assert [e.value for e in at.error] == [NO_SUCH_JOB], (page, [e.value for e in at.error])
            assert not {"Cancel", "Resume", "Save to the store", "Save"} & set(_buttons(at))
            assert not at.metric and job_id not in "".join(m.value for m in at.markdown)
        assert jobs.status(ev)["state"] == "running" and proc.poll() is None  # still running
        at = _open(PAGES["evaluate"], owner=BOB)  # B's list of evaluations: none of A's
        assert not at.exception and not [b for b in _buttons(at) if ev in b]
        # B cannot load A's private model: not by link, not by Load folder
        at = _open(PAGES["models"], owner=BOB, model=str(model))
        errors = [e.value for e in at.error if "Could not load the model" in e.value]
        assert errors and "Still using: tiny" in errors[0]
        at.text_input(key="loupe_model_path").set_value(str(model))
        next(b for b in at.button if b.label == "Load folder").click()
        at.run()
        assert not at.exception and any("Could not load the model" in e.value for e in at.error)
        assert at.sidebar.selectbox[0].value == "tiny"

        # A, the owner, sees both, lists the evaluation, and can save and cancel
        at = _open(PAGES["evaluate"], owner=ALICE)
        assert [b for b in _buttons(at) if ev in b]
        at = _open(PAGES["finetune"], owner=ALICE, job=ft)
        assert not at.exception and not at.error
        assert [m.label for m in at.metric][:2] == ["Test accuracy", "Test macro F1"]
        next(b for b in at.button if b.label == "Save to the store").click()
        at.run()
        assert store.model_path("alices-model") is not None
        at = _open(PAGES["evaluate"], owner=ALICE, job=ev)
        next(b for b in at.button if b.label == "Cancel").click()
        at.run()
        assert jobs.status(ev)["state"] == "cancelled" and proc.wait(timeout=30) != 0
    finally:
        proc.kill()


AUTH = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s" * 40,
                 "client_id": "loupe", "client_secret": "not-a-secret",
                 "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}}
SIGNED_OUT = {"is_logged_in": False}
ALICE_USER = {"is_logged_in": True, "iss": "https://idp.example", "sub": "alice-123", "email": "alice@example.com"}
BOB_USER = {"is_logged_in": True, "iss": "https://idp.example", "sub": "bob-456", "email": "bob@example.com"}


def test_without_login_configured_there_is_no_gate(tiny_store: str) -> None:
    at = _open(None, user=SIGNED_OUT)  # st.user says "signed out", but no [auth]: no login screen
    assert not at.exception and at.sidebar.selectbox and not [b for b in _buttons(at) if "Sign in" in b]


def test_with_login_every_page_shows_only_the_sign_in_screen(tiny_store: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    at = _open(None, user=SIGNED_OUT, secrets=AUTH)  # this test environment has no Authlib: the operator is told
    assert not at.exception and any("Authlib" in e.value for e in at.error)
    monkeypatch.setattr("streamlit.auth_util.is_authlib_installed", lambda: True)
    for name, page in PAGES.items():
        at = _open(page, user=ALICE_USER, secrets=AUTH)  # signed in: the page works
        assert not at.exception and at.sidebar.selectbox, name
        at.user = SIGNED_OUT  # signed out: the same page shows only the sign-in screen
        at.run()
        assert not at.exception, name
        assert [t.value for t in at.title] == ["🔎 Loupe"] and _buttons(at) == ["Sign in"], (name, _buttons(at))
        assert not at.sidebar.selectbox and not at.dataframe and not at.text_area and not at.metric


def test_with_login_jobs_follow_the_user_across_sessions(tiny_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("streamlit.auth_util.is_authlib_installed", lambda: True)
    first = _open(PAGES["evaluate"], owner=ALICE, user=ALICE_USER, secrets=AUTH)
    first.number_input[0].set_value(5)
    first.multiselect[0].set_value(["attention"])
    first.run()
    next(b for b in first.button if b.label == "Run evaluation").click()
    first.run()
    job_id = first.query_params["job"]
    job_id = job_id[0] if isinstance(job_id, list) else job_id
    try:
        assert jobs.config(job_id)["owner"].startswith("user:")
        again = _open(PAGES["evaluate"], owner=BOB, user=ALICE_USER, secrets=AUTH, job=job_id)  # another session
        assert not again.exception and not [e for e in again.error if NO_SUCH_JOB in e.value]
        assert any(job_id in m.value for m in again.markdown)
        other = _open(PAGES["evaluate"], owner=ALICE, user=BOB_USER, secrets=AUTH, job=job_id)  # another user
        assert [e.value for e in other.error] == [NO_SUCH_JOB]
        listed = _open(PAGES["evaluate"], user=ALICE_USER, secrets=AUTH)
        assert [b for b in _buttons(listed) if job_id in b]
    finally:
        jobs.cancel(job_id)


def _csv(rows: int, per_class_note: str = "") -> bytes:
    return ("text,label\n" + "".join(f"a {'good' if i % 2 else 'bad'} film number {i},"
                                     f"{'pos' if i % 2 else 'neg'}\n" for i in range(rows))).encode()


def _uploads() -> list[Path]:
    folder = loupe_home() / "uploads"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_uploads_are_kept_only_while_their_job_runs(tiny_store: str) -> None:
    at = _open(PAGES["finetune"], owner=ALICE)
    at.selectbox(key="loupe_ft_base").set_value("tiny")
    at.selectbox(key="loupe_ft_method").set_value("head_only")
    at.radio(key="loupe_ft_source").set_value("Upload a CSV")
    at.run()
    huge = b"text,label\n" + b'"' + b"w" * 15_000_000 + b'",pos\n' + _csv(60).split(b"\n", 1)[1]
    at.file_uploader[0].upload("reviews.csv", huge, "text/csv")
    at.run()
    assert not at.exception
    preview = at.dataframe[0].value
    assert len(preview) <= 8 and max(len(str(v)) for v in preview.to_numpy().ravel()) <= 200
    assert _uploads() == []  # previewing and splitting keep nothing on the server

    label = next(s for s in at.selectbox if s.label == "Label column")
    label.set_value("text")  # text and label: the same column
    at.run()
    assert any("same" in e.value for e in at.error)
    next(s for s in at.selectbox if s.label == "Label column").set_value("label")
    at.file_uploader[0].upload("utf16.csv", _csv(60).decode().encode("utf-16-le"), "text/csv")
    at.run()
    assert any("looks like UTF" in e.value and "16" in e.value for e in at.error)
    at.file_uploader[0].upload("few.csv", _csv(12), "text/csv")  # 6 per class: enough to split, too few to learn
    at.run()
    assert not at.exception and any("Fewer than 10 examples" in w.value for w in at.warning)

    at.file_uploader[0].upload("reviews.csv", _csv(60), "text/csv")
    at.run()
    assert _uploads() == []
    next(b for b in at.button if b.label == "Start fine-tuning").click()
    at.run()
    assert not at.exception, at.exception
    job_id = at.query_params["job"]
    job_id = job_id[0] if isinstance(job_id, list) else job_id
    staged = [Path(p) for p in jobs.config(job_id)["uploads"]]
    assert len(staged) == 1 and staged[0].parent.parent == loupe_home() / "uploads"
    assert staged[0].name == "reviews.csv" and staged[0].exists()
    assert jobs.config(job_id)["config"]["data"]["source"] == str(staged[0])
    jobs.cancel(job_id)  # the job ends (here: cancelled; done and failed alike): its upload goes with it
    deadline = time.time() + 10
    while staged[0].exists() and time.time() < deadline:
        time.sleep(0.2)
    assert _uploads() == []
