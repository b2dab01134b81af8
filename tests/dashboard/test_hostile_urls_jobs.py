"""A hostile-URL walk (issue 11) over the Fine-tune, Compress, Evaluate and Models pages and the sidebar's
``model``: very long, nested, wrong type, wrong kind of job, traversal, NUL, unicode. Every value gives one clear
message and no exception; hosted, a path outside the roots gets the same message whether it exists or not."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from model_zoo import store
from model_zoo.paths import jobs_dir, loupe_home, write_json_atomic
from tests.dashboard.test_apptest import APP

ME, SOMEONE = "session:walker", "session:someone-else"
NO_SUCH_JOB = "No such job"
NOT_AVAILABLE = "not available on this server"
TITLES = {"finetune": "a fine-tuning job", "compress": "a compression job", "evaluate": "an evaluation job"}
PAGES = {"finetune": "app_pages/finetune.py", "compress": "app_pages/compress.py",
         "evaluate": "app_pages/evaluate.py", "models": "app_pages/models.py"}
JOB_PAGES = ("finetune", "compress", "evaluate")
NESTED = '{"a":' * 300 + "1" + "}" * 300
HOSTILE = {  # what a careless or hostile link can carry, for any parameter
    "very long": "finetune-" + "A" * 5000,
    "very long digits": "9" * 5000,
    "nested JSON": NESTED,
    "JSON list": "[1, [2, [3]]]",
    "number": "12345",
    "negative": "-1",
    "traversal": "../../../../etc/passwd",
    "encoded traversal": "..%2F..%2F..%2Fetc%2Fpasswd",
    "absolute path": "/etc/shadow",
    "NUL": "finetune-abc\x00def",
    "unicode": "finetune-ジョブ🙂",
    "direction override": "finetune-\u202eabcdefgh",
    "markdown": "[click](http://evil.example/x)",
    "html": '"><img src=x onerror=alert(1)>',
    "whitespace": "   ",
}



def _open(page: str, owner: str = ME, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state["loupe_owner"] = owner
    at.run()
    at.switch_page(PAGES[page])
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    return at


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _texts(at: AppTest) -> str:
    """Everything the page shows as text (for "no server path anywhere")."""
    parts = [str(getattr(e, "value", "")) for kind in ("markdown", "caption", "error", "warning", "info", "success",
                                                       "code", "title", "json")
             for e in getattr(at, kind)]
    parts += [str(getattr(e, "label", "")) for e in at.button] + [str(getattr(e, "options", "")) for e in at.selectbox]
    parts += [e.value.to_string() for e in at.dataframe]
    return "\n".join(parts)


def _job_id(kind: str) -> str:
    return f"{kind}-{secrets.token_urlsafe(16)}"


def _make_job(kind: str, owner: str, state: str = "failed", **status: object) -> Path:
    """A job folder as the app writes it (by hand, so this file also runs against the code before issue 11)."""
    folder = jobs_dir() / _job_id(kind)
    folder.mkdir(parents=True)
    write_json_atomic(folder / "config.json", {"kind": kind, "config": {"model": "tiny"}, "owner": owner})
    write_json_atomic(folder / "status.json", {"state": state, "kind": kind, "created": time.time(),
                                               "progress": 0.0, "message": "stopped for the test", **status})
    return folder


def _fake_job(kind: str, owner: str) -> str:
    return _make_job(kind, owner).name


def test_hostile_job_ids_give_one_message_and_no_exception(tiny_store: str) -> None:
    for page in JOB_PAGES:
        at = _open(page)
        others = {k: _fake_job(k, ME) for k in JOB_PAGES if k != page}  # mine, but of another kind
        not_mine = _fake_job(page, SOMEONE)
        for name, value in {**HOSTILE, "someone else's job": not_mine,
                            "well-formed, no such job": f"{page}-" + "B" * 22}.items():
            at.query_params["job"] = value
            at.run()
            assert not at.exception, (page, name, at.exception)
            assert sum(NO_SUCH_JOB in e for e in _errors(at)) == 1, (page, name, _errors(at))
            assert not [b for b in at.button if b.label in ("Cancel", "Resume", "Save to the store", "Save")]
        for kind, job_id in others.items():  # the wrong kind of job: said to its owner, with where it lives
            at.query_params["job"] = job_id
            at.run()
            assert not at.exception, (page, kind, at.exception)
            said = [e for e in _errors(at) if f"{TITLES[kind]}, not {TITLES[page]}" in e]
            assert said and "page" in said[0], (page, kind, _errors(at))
            someone = _open(page, owner=SOMEONE, job=job_id)  # to anyone else it does not exist
            assert not someone.exception and NO_SUCH_JOB in "".join(_errors(someone))
            assert "not" not in "".join(_errors(someone)).replace(NO_SUCH_JOB, "")


def test_hostile_model_links_keep_the_previous_model_on_every_page(tiny_store: str, tiny_model_dir: Path) -> None:
    job_model = jobs_dir() / _job_id("finetune") / "model"
    shutil.copytree(tiny_model_dir, job_model)
    values = {**HOSTILE, "a job's private model": str(job_model), "file": str(tiny_model_dir / "config.json"),
              "root's ssh": "/root/.ssh", "hub id (offline)": "org/name"}
    for page in PAGES:
        at = _open(page)
        for name, value in values.items():
            at.query_params["model"] = value
            at.run()
            assert not at.exception, (page, name, at.exception)
            errors = [e for e in _errors(at) if "Could not load the model" in e]
            assert len(errors) == 1 and "Still using: tiny" in errors[0], (page, name, _errors(at))
            assert len(errors[0]) < 1000  # a 5,000-character link is not repeated back
            if name == "a job's private model":
                assert "job" in errors[0]
        at.query_params["model"] = "tiny"  # and a good link still works afterwards
        at.run()
        assert not at.exception and not [e for e in _errors(at) if "Could not load" in e]


@pytest.fixture
def hosted(tiny_store: str, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "shared"
    shutil.copytree(tiny_model_dir, root / "team" / "tiny-shared")
    monkeypatch.setenv("LOUPE_HOSTED", "1")
    monkeypatch.setenv("LOUPE_MODEL_ROOTS", str(root))
    return root


def test_hosted_paths_outside_the_roots_all_read_the_same(hosted: Path, tiny_model_dir: Path,
                                                          tmp_path: Path) -> None:
    job_model = jobs_dir() / _job_id("finetune") / "model"
    shutil.copytree(tiny_model_dir, job_model)
    (tmp_path / "a-file").write_text("x")
    outside = {"a model folder outside the roots": str(tiny_model_dir), "missing": str(tmp_path / "nothing-here"),
               "a file": str(tmp_path / "a-file"), "/etc/shadow": "/etc/shadow", "/root/.ssh": "/root/.ssh",
               "job model": str(job_model), "job model, relative": os.path.relpath(job_model, loupe_home()),
               "traversal": "team/../../../etc", "symlink out": "team/out", "hub id": "org/name",
               **{k: v for k, v in HOSTILE.items() if k != "whitespace"}}
    (hosted / "team" / "out").symlink_to(tiny_model_dir)
    secrets_ = [str(tmp_path), str(loupe_home()), str(tiny_model_dir), "/etc", "/root"]
    for page in PAGES:
        at = _open(page)
        said = set()
        for name, value in outside.items():
            at.query_params["model"] = value
            at.run()
            assert not at.exception, (page, name, at.exception)
            errors = [e for e in _errors(at) if "Could not load the model" in e]
            assert len(errors) == 1, (page, name, _errors(at))
            said.add(errors[0])
            shown = _texts(at)
            assert not [s for s in secrets_ if s in shown], (page, name)
        assert len(said) == 1 and NOT_AVAILABLE in said.pop(), page
        at.query_params["model"] = "team/tiny-shared"  # a model under the operator's root loads by its name
        at.run()
        assert not at.exception and not [e for e in _errors(at) if "Could not load" in e]
        assert at.sidebar.selectbox[0].value == "team/tiny-shared"
        assert str(hosted) not in _texts(at)


def test_hosted_models_page_and_job_panels_show_no_server_path(hosted: Path, tmp_path: Path) -> None:
    store.write_card(store.model_path("tiny"), {  # type: ignore[arg-type]
        "id": "tiny", "labels": ["negative", "positive"],
        "data": {"spec": {"source": str(loupe_home() / "uploads" / "x" / "reviews.csv")}}})
    at = _open("models")
    assert not at.exception
    shown = _texts(at)
    assert str(loupe_home()) not in shown and "reviews.csv" in shown
    folder = _make_job("evaluate", ME, message=f"could not read {tmp_path}/secret.csv")
    (folder / "log.txt").write_text(f'Traceback:\n  File "{folder}/x.py", line 1\nOSError: {tmp_path}/secret\n')
    at = _open("evaluate", job=folder.name)
    assert not at.exception
    shown = _texts(at)
    assert str(tmp_path) not in shown and str(loupe_home()) not in shown
    assert 'File "…/x.py"' in shown and "OSError: …/secret" in shown  # the log, with each path cut to its name
    progress = [p.proto.text for p in at.get("progress")]
    assert progress and "…/secret" in progress[0] and str(tmp_path) not in progress[0]


def test_a_failing_job_panel_says_so_once_and_stops_polling(tiny_store: str) -> None:
    folder = _make_job("finetune", ME, state="running", pid=os.getpid())  # "alive": the panel would poll
    at = _open("finetune", job=folder.name)
    assert not at.exception
    (folder / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "progress": "lots",
                                                     "eta_seconds": {"x": 1}, "message": ["?"]}))
    (folder / "metrics.jsonl").write_text('{"split": "train", "step": "x"}\n{"split": "validation"}\n')
    at.run()
    assert not at.exception, at.exception
    for _ in range(3):  # the next runs show the same message once more, no traceback, no panel
        at.run()
        assert not at.exception
        shown = _errors(at)
        assert len(shown) == 1 and "could not be read" in shown[0] and "Traceback" not in shown[0], shown
        assert not [b for b in at.button if b.label == "Cancel"]  # the panel (and its 2 s refresh) is gone
