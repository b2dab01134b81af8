"""The engines: local and Ray give the same results, in the same order; failures are typed errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_zoo import LoupeError, engine
from model_zoo.spec import ConfigError

ray = pytest.importorskip("ray")

TEXTS = ["a fine film", "dull and long", "", "the plot, the cast!", "ok", "why", "brilliant work by all"]


def probs_task(handle: Any, batch: list[Any], params: dict[str, Any]) -> list[Any]:
    """Module-level so Ray workers can import it: the probabilities of each text, and who computed them."""
    import os

    out = handle.predict_proba([t or "." for t in batch])
    return [{"probs": [round(float(p), 7) for p in row], "pid": os.getpid(), "scale": params["scale"]}
            for row in out]


def failing_task(handle: Any, batch: list[Any], params: dict[str, Any]) -> list[Any]:
    raise LoupeError("this sentence broke the worker")


def test_local_engine_yields_every_item_in_order(tiny_handle: Any) -> None:
    out = list(engine.run(probs_task, TEXTS, {"scale": 1}, handle=tiny_handle))
    assert [i for i, _ in out] == list(range(len(TEXTS)))
    want = tiny_handle.predict_proba([t or "." for t in TEXTS])
    assert np.allclose([r["probs"] for _, r in out], want, atol=1e-6)


def test_ray_engine_gives_the_local_results_from_two_workers(tiny_handle: Any, local_ray: None) -> None:
    cfg = engine.config({"engine": "ray", "workers": 2, "batch_size": 2})
    local = list(engine.run(probs_task, TEXTS, {"scale": 3}, handle=tiny_handle))
    remote = list(engine.run(probs_task, TEXTS, {"scale": 3}, handle=tiny_handle, engine=cfg))
    assert [i for i, _ in remote] == [i for i, _ in local]
    assert np.allclose([r["probs"] for _, r in remote], [r["probs"] for _, r in local], atol=1e-5)
    assert {r["scale"] for _, r in remote} == {3}
    assert len({r["pid"] for _, r in remote}) == 2  # the work was shared by two worker processes


def test_a_failing_task_is_an_engine_error_with_the_workers_message(tiny_handle: Any, local_ray: None) -> None:
    cfg = engine.config({"engine": "ray", "workers": 1})
    with pytest.raises(engine.EngineError, match="this sentence broke the worker"):
        list(engine.run(failing_task, TEXTS, {}, handle=tiny_handle, engine=cfg))


def test_a_worker_that_sees_another_model_version_says_so(tiny_model_dir: Path, tmp_path: Path,
                                                           local_ray: None) -> None:
    ref = engine.ModelRef(str(tiny_model_dir), "not-this-revision", None, "cpu")
    worker = ray.remote(engine._Worker).remote(engine.task_name(probs_task), ref, {"scale": 1}, None)
    with pytest.raises(Exception, match="another version"):
        ray.get(worker.run.remote(["x"]))


def test_bad_engine_settings_are_refused() -> None:
    for bad in ({"engine": "spark"}, {"workers": 0}, {"gpus_per_worker": -1}, {"batch_size": 10**6}):
        with pytest.raises(ConfigError):
            engine.config(bad)


def test_hosted_servers_use_the_operators_cluster_or_no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOUPE_HOSTED", "1")
    monkeypatch.delenv(engine.ADDRESS_ENV, raising=False)
    with pytest.raises(engine.EngineError, match="no Ray cluster"):
        engine.config({"engine": "ray"})
    with pytest.raises(ConfigError):
        engine.config({"engine": "ray", "workers": 5})  # over the hosted cap of 4
    monkeypatch.setenv(engine.ADDRESS_ENV, "ray://head:10001")
    assert engine.config({"engine": "ray", "workers": 4}).workers == 4
