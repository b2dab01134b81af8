"""Federated fine-tuning (Flower): FedAvg is the size-weighted mean, partitions are reproducible and cover every
example once, clients exchange only trainable weights and share identical frozen ones, and a run on the tiny
model finishes, cancels and resumes between rounds, and leaves a card with each client's size and label balance
(never its texts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from model_zoo import jobs, store
from model_zoo.finetune import DataSpec, FinetuneConfig, prepare_model, run_here
from model_zoo.private_training import common, partition
from model_zoo.private_training.config import PrivateTrainingError
from tests.conftest import build_spread_bert

LABELS = ["neg", "pos"]
ROWS = [("good great fun", "pos", "web"), ("bad awful dull", "neg", "web"), ("love superb best", "pos", "mail"),
        ("hate worst boring", "neg", "mail"), ("fun best great", "pos", "phone"), ("dull hate awful", "neg", "phone")]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_spread_bert(tmp_path_factory.mktemp("fed") / "tiny-base")


@pytest.fixture
def flower_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """The identity Flower's runtime gives the process it runs a task in (messages are stamped with it)."""
    from flwr.supercore.task_identity import TaskIdentity

    for key in ("_run_id", "_task_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, key, 1)


def _csv(folder: Path, copies: int = 15) -> Path:
    path = folder / "toy.csv"
    lines = [f"{t} {i},{y},{src}" for i, (t, y, src) in enumerate(ROWS * copies)]
    path.write_text("text,label,source\n" + "\n".join(lines), encoding="utf-8")
    return path


# --- FedAvg ------------------------------------------------------------------------------------------------------
def test_fedavg_is_the_size_weighted_mean_of_the_clients_weights(flower_task: None) -> None:
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.serverapp.strategy import FedAvg

    rng = np.random.default_rng(0)
    sizes = [10, 30, 60]
    weights = [{"a": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=5).astype(np.float32)}
               for _ in sizes]
    replies = []
    for node, (n, w) in enumerate(zip(sizes, weights), start=1):
        instruction = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=node, message_type="train")
        content = RecordDict({"arrays": ArrayRecord({k: torch.tensor(v) for k, v in w.items()}),
                              "metrics": MetricRecord({"num-examples": n})})
        replies.append(Message(content=content, reply_to=instruction))
    averaged, _ = FedAvg().aggregate_train(1, replies)
    assert averaged is not None
    for key in ("a", "b"):
        by_hand = (10 * weights[0][key] + 30 * weights[1][key] + 60 * weights[2][key]) / 100
        assert np.allclose(averaged[key].numpy(), by_hand, atol=1e-6)


# --- partitions --------------------------------------------------------------------------------------------------
def _covers_once(shards: list[list[int]], n: int) -> bool:
    flat = [i for s in shards for i in s]
    return sorted(flat) == list(range(n))


def test_iid_shards_are_even_random_and_reproducible() -> None:
    shards = partition.iid(103, 5, seed=1)
    assert _covers_once(shards, 103) and {len(s) for s in shards} == {20, 21}
    assert shards == partition.iid(103, 5, seed=1) and shards != partition.iid(103, 5, seed=2)
    assert shards[0] != list(range(len(shards[0])))  # shuffled, not cut in order
    with pytest.raises(PrivateTrainingError):
        partition.iid(3, 5, seed=1)


def test_dirichlet_label_skew_is_reproducible_covers_everything_and_skews_with_small_alpha() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=2000).tolist()
    skewed = partition.dirichlet(labels, 5, alpha=0.3, seed=7)
    assert skewed == partition.dirichlet(labels, 5, alpha=0.3, seed=7)
    assert skewed != partition.dirichlet(labels, 5, alpha=0.3, seed=8)
    assert _covers_once(skewed, 2000) and min(len(s) for s in skewed) >= 10
    balanced = partition.dirichlet(labels, 5, alpha=1000.0, seed=7)
    assert _covers_once(balanced, 2000)

    def majority_share(shards: list[list[int]]) -> float:  # mean share of each client's commonest label
        y = np.asarray(labels)
        return float(np.mean([np.bincount(y[s], minlength=2).max() / len(s) for s in shards]))

    overall = max(np.mean(labels), 1 - np.mean(labels))
    assert majority_share(skewed) > 0.75 > overall + 0.2  # alpha 0.3: clients see mostly one class
    assert majority_share(balanced) < overall + 0.05  # alpha 1000: about the overall balance


def test_one_client_per_column_value() -> None:
    names, shards = partition.by_value(["web", "mail", "web", "phone", "mail"])
    assert names == ["mail", "phone", "web"] and shards == [[1, 4], [3], [0, 2]]
    with pytest.raises(PrivateTrainingError):
        partition.by_value(["web", "web"])
    assert partition.label_counts([0, 1, 1, 0, 1], [1, 2, 3], ["neg", "pos"]) == {"neg": 1, "pos": 2}


# --- the client, called as Flower calls it ----------------------------------------------------------------------
def _message(prep: Any, job: Path, **extra: Any) -> Any:
    from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

    from model_zoo import spec

    config = {"base": prep.base, "method": prep.method.name, "seed": 13, "rounds": 2, "server-round": 1,
              "method-config": json.dumps(spec.to_dict(prep.method_config)), "labels": json.dumps(LABELS),
              "max-length": 32, "lr": 0.02, "weight-decay": 0.0, "batch-size": 8, "local-epochs": 1.0,
              "dp": json.dumps({"enabled": False}), "job-dir": str(job), "threads": 1, **extra}
    return Message(RecordDict({"arrays": ArrayRecord(common.trainable_state(prep.model)),
                               "config": ConfigRecord(config)}), dst_node_id=1, message_type="train")


def _context(**node: Any) -> Any:
    from flwr.app import Context, RecordDict

    return Context(run_id=1, node_id=1, node_config=node, state=RecordDict(), run_config={})


def test_a_client_trains_only_the_trainable_weights_on_its_own_file(base: Path, tmp_path: Path,
                                                                   flower_task: None) -> None:
    """A client as a real Flower node (its own CSV, ``data-file`` in its node config): it sends back exactly the
    trainable weights, changed, with the number of its examples; its frozen weights are the server's."""
    from model_zoo.private_training import federated

    server = prepare_model(str(base), "lora", {"r": 4}, LABELS, device="cpu")
    own = _csv(tmp_path, copies=4)
    reply = federated.client_train(_message(server, tmp_path), _context(**{"data-file": str(own)}))
    assert not reply.has_error()
    sent = reply.content["arrays"].to_torch_state_dict()
    trainable = common.trainable_state(server.model)
    assert set(sent) == set(trainable) and all("lora_" in k or "classifier" in k for k in sent)
    assert any(not torch.equal(sent[k], trainable[k]) for k in sent)
    assert reply.content["metrics"]["num-examples"] == len(ROWS) * 4
    assert reply.content["client"]["frozen-sha256"] == common.frozen_fingerprint(server.model)


def test_a_private_client_keeps_its_own_accountant_across_rounds(base: Path, tmp_path: Path,
                                                                  flower_task: None) -> None:
    from model_zoo.private_training import federated

    server = prepare_model(str(base), "head_only", None, LABELS, device="cpu")
    own = _csv(tmp_path, copies=4)
    dp = json.dumps({"enabled": True, "target_epsilon": 2.0, "max_grad_norm": 1.0})
    eps = []
    for rnd in (1, 2):
        reply = federated.client_train(_message(server, tmp_path, dp=dp, **{"server-round": rnd}),
                                       _context(**{"data-file": str(own), "client-name": "7",
                                                   "state-dir": str(tmp_path / "mine")}))
        assert not reply.has_error()
        eps.append(reply.content["metrics"]["epsilon"])
    state = json.loads((tmp_path / "mine" / "loupe-client" / "7" / "privacy.json").read_text())
    assert 0 < eps[0] < eps[1] <= 2.0 + 1e-6  # round 2 adds to round 1; 2 rounds spend the whole budget
    assert eps[1] == pytest.approx(2.0, abs=0.02) and len(state["history"]) >= 1
    assert state["delta"] == 0.01  # 24 texts: 1/24 rounded down to a power of ten


# --- the job -------------------------------------------------------------------------------------------------------
def _fed_run(base: Path, tmp: Path, name: str, **federated: Any) -> FinetuneConfig:
    return FinetuneConfig(base=str(base), method="lora", name=name, method_config={"r": 4},
                          data=DataSpec(source=str(_csv(tmp))),
                          train={"batch_size": 8, "learning_rate": 2e-2, "warmup_ratio": 0.0},
                          federated={"enabled": True, "clients": 2, "rounds": 2, **federated})


def test_a_two_client_run_cancels_resumes_and_cards_its_clients(base: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as mp:  # Cancel once round 1 is checkpointed
        mp.setattr(jobs.JobContext, "cancelled",
                   lambda self: (self.dir / "checkpoints" / "checkpoint-1" / ".complete").exists())
        job_id, status = run_here(_fed_run(base, tmp_path, "fed-toy", partition="dirichlet", alpha=0.5))
    assert status["state"] == "cancelled", jobs.log_tail(job_id)
    assert [r["step"] for r in jobs.metrics(job_id) if r.get("split") == "validation"] == [0, 1]
    _, status = run_here(FinetuneConfig(), resume_job=job_id)
    assert status["state"] == "done", jobs.log_tail(job_id, 60)
    result = jobs.result(job_id)
    assert result["resumed_from_step"] == 1 and result["steps"] == 2
    records = jobs.metrics(job_id)
    assert [r["step"] for r in records if r.get("split") == "validation"] == [0, 1, 2]
    clients = [r for r in records if r.get("split") == "client"]
    assert sorted((r["round"], r["client"]) for r in clients) == [(1, "0"), (1, "1"), (2, "0"), (2, "1")]

    card = store.read_card(store.model_path("fed-toy"))
    fed = card["federated"]
    assert fed["clients"] == 2 and fed["rounds"] == 2 and fed["partition"]["kind"] == "dirichlet"
    assert fed["exchanged_parameters"] == card["trainable_parameters"] == result["trainable"]
    assert sum(c["size"] for c in fed["per_client"]) == card["data"]["train"]["size"]
    for c in fed["per_client"]:
        assert sum(c["labels"].values()) == c["size"] and c["rounds_trained"] == 2
    assert len(fed["round_seconds"]) == 2 and fed["seconds_per_round"] > 0
    # nothing the job stored holds a text: the card, the metrics, the client folders (positions only)
    texts = [t for t, _, _ in ROWS]
    stored = [(store.model_path("fed-toy") / "loupe.json").read_text(), json.dumps(records)] + \
        [p.read_text() for p in (jobs.job_dir(job_id) / "clients").rglob("*.json")]
    assert not any(t in blob for t in texts for blob in stored)
    # the frozen weights are the base's: only trainable weights were exchanged and averaged
    from safetensors.torch import load_file

    saved = load_file(str(store.model_path("fed-toy") / "model.safetensors"))
    plain = load_file(str(base / "model.safetensors"))
    assert torch.equal(saved["bert.encoder.layer.0.intermediate.dense.weight"],
                       plain["bert.encoder.layer.0.intermediate.dense.weight"])
    assert not torch.equal(saved["bert.encoder.layer.0.attention.self.query.weight"],
                           plain["bert.encoder.layer.0.attention.self.query.weight"])  # LoRA merged in


def test_federated_settings_are_checked(base: Path, tmp_path: Path) -> None:
    from model_zoo.errors import DatasetError
    from model_zoo.finetune import validate_config

    with pytest.raises(DatasetError, match="Rotten Tomatoes"):
        validate_config(FinetuneConfig(name="x", federated={"enabled": True, "partition": "column",
                                                            "partition_column": "source"}))
    with pytest.raises(DatasetError, match="no column"):
        validate_config(_fed_run(base, tmp_path, "x", partition="column", partition_column="origin"))
    validate_config(_fed_run(base, tmp_path, "x", partition="column", partition_column="source"))
    with pytest.raises(PrivateTrainingError, match="clients per round"):
        validate_config(_fed_run(base, tmp_path, "x", clients_per_round=3))


def test_a_column_partition_gives_each_source_its_own_client(base: Path, tmp_path: Path) -> None:
    from model_zoo.data import read_csv_frame
    from model_zoo.finetune import load_data
    from model_zoo.private_training.federated import plan_clients

    cfg = FinetuneConfig.from_dict(_fed_run(base, tmp_path, "x", partition="column",
                                            partition_column="source").to_dict())
    splits = load_data(cfg.data, 13)
    plan = plan_clients(cfg, splits, 13)
    assert plan.names == ["mail", "phone", "web"] and plan.how == {"kind": "column", "column": "source"}
    assert _covers_once(plan.shards, len(splits.train))
    frame = read_csv_frame(Path(cfg.data.source))
    for name, shard in zip(plan.names, plan.shards):
        rows = [splits.train.rows[i] for i in shard]
        assert {frame["source"].iloc[r] for r in rows} == {name}  # every text of the client came from its source
        assert all(splits.train.texts[i] == frame["text"].iloc[r] for i, r in zip(shard, rows))


def test_the_command_line_flags() -> None:
    import argparse

    from model_zoo.finetune import command

    parser = argparse.ArgumentParser()
    command.add_cli(parser.add_subparsers())
    args = parser.parse_args(["finetune", "--dp", "--target-epsilon", "3", "--max-grad-norm", "0.5", "--accountant",
                              "prv", "--federated", "--clients", "4", "--rounds", "6", "--partition", "dirichlet",
                              "--alpha", "0.3", "--clients-per-round", "2", "--local-epochs", "2"])
    cfg = command.config_from_args(args)
    assert (cfg.dp.enabled, cfg.dp.target_epsilon, cfg.dp.max_grad_norm, cfg.dp.accountant) == (True, 3.0, 0.5, "prv")
    fed = cfg.federated
    assert (fed.enabled, fed.clients, fed.rounds, fed.partition, fed.alpha, fed.clients_per_round,
            fed.local_epochs) == (True, 4, 6, "dirichlet", 0.3, 2, 2.0)
    plain = command.config_from_args(parser.parse_args(["finetune"]))
    assert not plain.dp.enabled and not plain.federated.enabled
