"""Hosted mode (issue 11): models only from the store and the operator's roots, one generic refusal that says
nothing about the path, no server path in messages or cards; local use keeps its freedom."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from model_zoo import hosting, load, store
from model_zoo.errors import ModelLoadError
from model_zoo.hosting import NOT_AVAILABLE, ModelNotAvailableError, check_request
from model_zoo.loading import locate
from model_zoo.paths import jobs_dir, models_dir


@pytest.fixture
def root(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """An operator root holding one model folder, ``team/tiny``."""
    folder = tmp_path / "root"
    shutil.copytree(tiny_model_dir, folder / "team" / "tiny")
    return folder


@pytest.fixture
def hosted(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    monkeypatch.setenv("LOUPE_HOSTED", "1")
    monkeypatch.setenv("LOUPE_MODEL_ROOTS", os.pathsep.join([str(root / "missing-root"), str(root)]))
    monkeypatch.delenv("LOUPE_ALLOW_HUB", raising=False)
    return root


def _refusal(name: str) -> str:
    with pytest.raises(ModelLoadError) as err:
        check_request(name)
    return str(err.value)


def test_hosted_refuses_everything_outside_the_roots_with_one_message(hosted: Path, tmp_path: Path,
                                                                     tiny_model_dir: Path) -> None:
    outside_model = tiny_model_dir  # a real model folder, outside every root
    a_file = tmp_path / "secret.txt"
    a_file.write_text("x")
    (tmp_path / "empty-dir").mkdir()
    link = hosted / "team" / "escape"
    link.symlink_to(tiny_model_dir)  # a symlink inside a root pointing out of it
    names = [str(outside_model), str(a_file), str(tmp_path / "empty-dir"), str(tmp_path / "does-not-exist"),
             "/etc/shadow", "/root/.ssh", "/etc", "../../../../etc", f"{hosted}/team/../../{tiny_model_dir.name}",
             "team/escape", "team/../../x", "x" * 5000, "a\x00b", "org/name", "bert-base-uncased",
             str(hosted / "team"), "team/missing", "\u202eevil", "~/.ssh", "~root"]
    messages = {_refusal(n) for n in names}
    assert messages == {NOT_AVAILABLE}
    assert "/" not in NOT_AVAILABLE


def test_hosted_loads_store_bundled_and_root_models_by_relative_name(hosted: Path, tiny_model_dir: Path) -> None:
    shutil.copytree(tiny_model_dir, models_dir() / "tiny")
    store.write_card(models_dir() / "tiny", {"id": "tiny", "labels": ["negative", "positive"]})
    assert check_request("tiny") == "tiny"
    assert check_request("minilm-base") == "minilm-base"
    # by full path or relative to the root, it comes back by its root-relative name: links carry no server path
    assert check_request(str(hosted / "team" / "tiny")) == "team/tiny"
    assert check_request("team/tiny") == "team/tiny"
    assert check_request(f"{hosted}/team/x/../tiny") == "team/tiny"
    handle = load("team/tiny", device="cpu")
    assert handle.id == "team/tiny" and str(hosted) not in str(handle.id)


def test_hosted_job_models_are_reached_only_through_their_job(hosted: Path, monkeypatch: pytest.MonkeyPatch,
                                                              tiny_model_dir: Path) -> None:
    job_model = jobs_dir() / "finetune-AAAAAAAAAAAAAAAAAAAAAA" / "model"
    shutil.copytree(tiny_model_dir, job_model)
    assert _refusal(str(job_model)) == NOT_AVAILABLE
    # even when the operator's root holds LOUPE_HOME (a mistake), a job's folder stays out of reach
    monkeypatch.setenv("LOUPE_MODEL_ROOTS", str(jobs_dir().parent))
    assert _refusal(str(job_model)) == NOT_AVAILABLE
    assert _refusal("jobs/finetune-AAAAAAAAAAAAAAAAAAAAAA/model") == NOT_AVAILABLE
    # the job itself (its own process) still reloads what it saved
    assert load(str(job_model), device="cpu").info["source"] == "local"


def test_local_use_refuses_job_folders_but_keeps_its_freedom(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert check_request(str(tiny_model_dir)) == str(tiny_model_dir)  # any folder on the machine
    job_model = jobs_dir() / "finetune-BBBBBBBBBBBBBBBBBBBBBB" / "model"
    shutil.copytree(tiny_model_dir, job_model)
    assert "job" in _refusal(str(job_model))
    assert "is a file" in _refusal(str(tiny_model_dir / "config.json"))  # local messages stay specific


def test_very_long_and_nul_names_are_messages_not_os_errors(tmp_path: Path) -> None:
    for name in ("x" * 5000, "/tmp/" + "y" * 300, "a\x00b", "/tmp/a\x00b"):
        with pytest.raises(ModelLoadError):
            locate(name)
    with pytest.raises(ModelLoadError):  # a 300-character component: the file system refuses the name
        locate(str(tmp_path / ("z" * 300)))


def test_hub_only_when_allowed(monkeypatch: pytest.MonkeyPatch, hosted: Path) -> None:
    with pytest.raises(ModelNotAvailableError):
        locate("org/name")
    monkeypatch.setenv("LOUPE_ALLOW_HUB", "1")
    assert locate("org/name") == (None, "hub")
    with pytest.raises(ModelNotAvailableError):  # a traversal is never a hub id
        locate("../name")
    monkeypatch.delenv("LOUPE_HOSTED")
    monkeypatch.setenv("LOUPE_ALLOW_HUB", "0")
    with pytest.raises(ModelLoadError, match="switched off"):
        locate("org/name")


def test_hosted_messages_and_cards_carry_no_server_path(hosted: Path, tiny_model_dir: Path) -> None:
    broken = hosted / "team" / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError) as err:
        load("team/broken", device="cpu")
    assert str(hosted) not in str(err.value) and "team/broken" in str(err.value)
    folder = hosted / "team" / "carded"
    shutil.copytree(tiny_model_dir, folder)
    store.write_card(folder, {"labels": ["negative", "positive"],
                              "data": {"spec": {"source": "/srv/loupe/uploads/abc/reviews.csv"}}})
    handle = load("team/carded", device="cpu")
    assert handle.info["data"]["spec"]["source"] == "…/reviews.csv"
    assert handle.info["path"] == str(folder.resolve())  # kept for the code that needs it; never shown


def test_redact_cuts_paths_but_not_words_urls_or_fractions(monkeypatch: pytest.MonkeyPatch) -> None:
    text = ('File "/work/main/model_zoo/jobs.py", line 3: /etc/shadow is a file; see https://hf.co/org/x, '
            "and/or 1/2 of ~/secret/key.txt")
    assert hosting.redact(text) == text  # local use: as it is
    monkeypatch.setenv("LOUPE_HOSTED", "1")
    out = hosting.redact(text)
    assert "/work" not in out and "/etc" not in out and "~/secret" not in out
    assert '"…/jobs.py"' in out and "…/shadow" in out and "…/key.txt" in out
    assert "https://hf.co/org/x" in out and "and/or 1/2" in out
