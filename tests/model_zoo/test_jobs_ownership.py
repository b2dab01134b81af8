"""Jobs belong to whoever started them (issue 11): unguessable ids, another owner's job reads exactly like a
missing one, lists show only the owner's jobs, uploads live only as long as the job that reads them."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import explainers.compression_report  # noqa: F401  (registers the compress job kind)
import explainers.evaluation  # noqa: F401  (registers the evaluate job kind)
import model_zoo.finetune  # noqa: F401  (registers the finetune job kind)
from model_zoo import jobs
from model_zoo.paths import jobs_dir, stage_upload, uploads_dir

ALICE, BOB = "session:alice-token", "session:bob-token"


def noop_job(ctx: jobs.JobContext) -> dict:  # type: ignore[type-arg]
    """A job kind for tests: reads its data file, or fails when asked to."""
    if ctx.config.get("fail"):
        raise RuntimeError("asked to fail")
    return {"size": len(Path(ctx.config["data"]).read_bytes())}


@pytest.fixture
def noop_kind() -> Iterator[str]:
    jobs.KINDS.register("noop", jobs.JobKind("noop", "a test job", noop_job))
    yield "noop"
    jobs.KINDS.unregister("noop")


def _fake(kind: str, owner: str | None) -> str:
    return jobs.create(kind, {"model": "tiny"}, owner=owner).name


def test_job_ids_carry_at_least_128_random_bits() -> None:
    ids = [jobs.new_id("finetune") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for job_id in ids[:50]:
        kind, _, token = job_id.partition("-")
        assert kind == "finetune" and jobs.valid_id(job_id)
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128
    # and every one of the 128 bits varies: set in about half of the ids (a clock or a counter would not be)
    tokens = [i.partition("-")[2] for i in ids]
    values = [int.from_bytes(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)), "big") for t in tokens]
    for bit in range(128):
        share = sum(v >> bit & 1 for v in values) / len(values)
        assert 0.4 < share < 0.6, (bit, share)


def test_another_owners_job_reads_exactly_like_a_missing_one() -> None:
    job = _fake("evaluate", ALICE)
    assert jobs.open_job(job, ALICE, "evaluate") == job
    messages = set()
    for job_id, who in ((job, BOB), ("evaluate-" + "A" * 22, BOB), ("evaluate-" + "A" * 22, ALICE),
                        ("../../etc", ALICE), ("x" * 5000, ALICE), ("a\x00b", ALICE), (None, ALICE), (12, ALICE),
                        (["evaluate"], ALICE), (job, ""), (job.upper(), ALICE)):
        with pytest.raises(jobs.JobError) as err:
            jobs.open_job(job_id, who, "evaluate")
        assert not isinstance(err.value, jobs.JobKindError)
        messages.add(str(err.value))
    assert messages == {jobs.NO_SUCH_JOB}
    # the wrong kind of job: said to its owner only
    with pytest.raises(jobs.JobKindError, match="an evaluation job, not a fine-tuning job"):
        jobs.open_job(job, ALICE, "finetune")
    with pytest.raises(jobs.JobError) as err:
        jobs.open_job(job, BOB, "finetune")
    assert str(err.value) == jobs.NO_SUCH_JOB


def test_listing_shows_only_the_owners_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    mine = {_fake("evaluate", ALICE) for _ in range(3)}
    theirs = {_fake("evaluate", BOB) for _ in range(2)}
    cli = _fake("evaluate", None)
    _fake("compress", ALICE)
    assert {j["id"] for j in jobs.list_jobs("evaluate", owner=ALICE)} == mine | {cli}  # local: CLI jobs are yours
    assert {j["id"] for j in jobs.list_jobs("evaluate", owner=BOB)} == theirs | {cli}
    assert {j["id"] for j in jobs.list_jobs("evaluate")} == mine | theirs | {cli}  # the command line sees all
    monkeypatch.setenv("LOUPE_HOSTED", "1")  # hosted: a job without an owner is nobody's
    assert {j["id"] for j in jobs.list_jobs("evaluate", owner=ALICE)} == mine
    with pytest.raises(jobs.JobError):
        jobs.open_job(cli, ALICE)


def test_uploads_are_the_jobs_and_go_when_it_ends(noop_kind: str) -> None:
    staged = stage_upload(b"text,label\na,0\n", "../../my reviews.csv")
    assert staged.parent.parent == uploads_dir() and staged.name == "my_reviews.csv"
    folder = jobs.create(noop_kind, {"data": str(staged)}, owner=ALICE)
    jobs.run_in_process(folder)
    assert jobs.status(folder.name)["state"] == "done" and jobs.result(folder.name) == {"size": 15}
    assert not staged.exists() and not staged.parent.exists()
    assert not jobs.resumable(folder.name)

    failing = stage_upload(b"x", "f.csv")
    folder = jobs.create(noop_kind, {"data": str(failing), "fail": True}, owner=ALICE)
    jobs.run_in_process(folder)
    assert jobs.status(folder.name)["state"] == "failed" and not failing.exists()
    with pytest.raises(jobs.JobError, match="removed when the job ended"):
        jobs.resume(folder.name)


def test_cancel_removes_the_upload_and_stops_the_process(noop_kind: str) -> None:
    staged = stage_upload(b"x", "f.csv")
    folder = jobs.create(noop_kind, {"data": str(staged)}, owner=ALICE)
    proc = subprocess.Popen(["sleep", "120"], start_new_session=True)
    jobs._update(folder, state="running", pid=proc.pid)
    jobs.cancel(folder.name)
    assert proc.wait(timeout=30) != 0
    assert jobs.status(folder.name)["state"] == "cancelled" and not staged.exists()


def test_an_interrupted_job_keeps_its_upload_for_resume(noop_kind: str) -> None:
    staged = stage_upload(b"x", "f.csv")
    folder = jobs.create(noop_kind, {"data": str(staged)}, owner=ALICE)
    jobs._update(folder, state="running", pid=999_999_999, created=time.time() - 60)  # its process is gone
    assert jobs.status(folder.name)["state"] == "interrupted"
    assert staged.exists() and jobs.resumable(folder.name)


def test_old_job_ids_still_open() -> None:
    folder = jobs_dir() / "finetune-20240101-120000-abc123"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"kind": "finetune", "config": {}, "owner": "cli"}')
    assert jobs.open_job(folder.name, ALICE, "finetune") == folder.name
