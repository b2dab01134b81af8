"""Federated fine-tuning with Flower: a ``ServerApp`` that runs FedAvg over the trainable weights, round by round,
and a ``ClientApp`` that trains on its own shard; on one machine through Flower's simulation runtime (on Ray).

The server (this job's process) holds the model and the validation split; each round it sends the trainable
weights (LoRA matrices, the head...: never the frozen encoder) to a sample of clients with Flower's ``FedAvg``
(``configure_train``), each client trains ``local_epochs`` on its own shard (with DP-SGD when ``dp.enabled``) and
replies with its weights and the number of its examples, and ``FedAvg.aggregate_train`` averages them weighted by
those numbers. After each round the server scores the global model on validation, records every client's loss,
and checkpoints, so Cancel stops between rounds and Resume continues from the last round. The round loop is
Loupe's own (``Strategy.start`` cannot stop or resume); the sampling and averaging are Flower's.

A client never sends data: in simulation it reads its shard's positions (``clients/<i>/shard.json``, no texts)
and the job's data file; started as a real Flower client (``flower-supernode --node-config
"data-file='mine.csv'"``) it reads its own CSV instead (see the README, *Private training*).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # Flower reports usage over the network unless told not to

import numpy as np  # noqa: E402
import torch  # noqa: E402
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from model_zoo import jobs  # noqa: E402
from model_zoo.finetune.config import FinetuneConfig  # noqa: E402
from model_zoo.finetune.job import _finish, _trim_metrics  # noqa: E402
from model_zoo.finetune.model import Prepared  # noqa: E402
from model_zoo.finetune.splits import Splits  # noqa: E402
from model_zoo.private_training import common, partition  # noqa: E402
from model_zoo.private_training.config import PrivateTrainingError, default_delta  # noqa: E402
from model_zoo.training import TrainConfig  # noqa: E402

logging.getLogger("flwr").setLevel(logging.WARNING)


@dataclass
class Plan:
    """Which training examples each client holds (positions in the training split) and what to call it."""

    shards: list[list[int]]
    names: list[str]
    how: dict[str, Any]


def plan_clients(cfg: FinetuneConfig, splits: Splits, seed: int) -> Plan:
    """Split the training examples between the clients as ``cfg.federated.partition`` says."""
    fed, train = cfg.federated, splits.train
    if fed.partition == "column":
        from model_zoo.data import read_csv_frame

        values = read_csv_frame(Path(cfg.data.source).expanduser())[fed.partition_column].astype(str)
        names, shards = partition.by_value([values.iloc[r] for r in train.rows])
        return Plan(shards, names, {"kind": "column", "column": fed.partition_column})
    if fed.partition == "dirichlet":
        shards = partition.dirichlet(train.labels, fed.clients, fed.alpha, seed)
        how: dict[str, Any] = {"kind": "dirichlet", "alpha": fed.alpha, "seed": seed}
    else:
        shards = partition.iid(len(train), fed.clients, seed)
        how = {"kind": "iid", "seed": seed}
    return Plan(shards, [f"client {i}" for i in range(len(shards))], how)


# --- the client -------------------------------------------------------------------------------------------------
@dataclass
class _Local:
    """A client's model (shared by the clients one Ray worker serves: only trainable weights differ, and those
    come from the server every round) and its data."""

    prep: Prepared
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


_LOCAL: dict[str, _Local] = {}


def _local(run: dict[str, Any]) -> _Local:
    key = json.dumps({k: run[k] for k in ("base", "method", "method-config", "labels", "seed")}, sort_keys=True)
    if key not in _LOCAL:
        from model_zoo.finetune.model import prepare_model

        _LOCAL.clear()
        prep = prepare_model(run["base"], run["method"], json.loads(run["method-config"]), json.loads(run["labels"]),
                             device=run.get("device", "auto"), seed=int(run["seed"]))
        _LOCAL[key] = _Local(prep)
    return _LOCAL[key]


def _client_rows(local: _Local, run: dict[str, Any], context: Context) -> tuple[str, list[dict[str, Any]]]:
    """(client id, its encoded training rows): its own CSV (a real client) or its shard of the job's data."""
    from model_zoo.training import _Encoded

    node = context.node_config
    if "data-file" in node:  # deployment: this client's own file, read where it runs
        from model_zoo.data import load_csv

        cid = str(node.get("client-name", context.node_id))
        if cid not in local.rows:
            ds = load_csv(Path(str(node["data-file"])).expanduser(), str(node.get("text-column", "text")),
                          str(node.get("label-column", "label")), label_names=json.loads(run["labels"]))
            local.rows[cid] = _Encoded(ds, local.prep.tokenizer, int(run["max-length"])).rows
        return cid, local.rows[cid]
    cid = str(node["partition-id"])
    if cid not in local.rows:
        from model_zoo.finetune.splits import load_data

        job = Path(run["job-dir"])
        cfg = FinetuneConfig.from_dict(json.loads((job / "config.json").read_text(encoding="utf-8"))["config"])
        positions = json.loads((job / "clients" / cid / "shard.json").read_text(encoding="utf-8"))["positions"]
        ds = load_data(cfg.data, int(run["seed"])).train.subset(positions)
        local.rows[cid] = _Encoded(ds, local.prep.tokenizer, int(run["max-length"])).rows
    return cid, local.rows[cid]


def _local_training(local: _Local, rows: list[dict[str, Any]], run: dict[str, Any], steps: int,
                    seed: int) -> tuple[float, int]:
    """Plain local training: AdamW over ``steps`` shuffled batches (epochs of the shard). (mean loss, steps)"""
    from model_zoo.private_training.dp import forward_loss

    model, collate = local.prep.model, common.collator(local.prep.tokenizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=float(run["lr"]), weight_decay=float(run["weight-decay"]))
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    batch_size, losses, done = int(run["batch-size"]), [], 0
    model.train()
    while done < steps:
        order = torch.randperm(len(rows), generator=gen).tolist()
        for start in range(0, len(order), batch_size):
            if done >= steps:
                break
            batch = {k: v.to(device) for k, v in collate([rows[i] for i in order[start:start + batch_size]]).items()}
            opt.zero_grad(set_to_none=True)
            loss, _ = forward_loss(model, batch)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            done += 1
    return float(np.mean(losses)), done


def _private_training(local: _Local, rows: list[dict[str, Any]], run: dict[str, Any], steps: int,
                      seed: int, state: Path) -> tuple[float, int, float, float]:
    """DP-SGD on the client: its own accountant carries over the rounds (kept with the client, in ``state``).
    (mean loss, steps, ε spent so far, δ)"""
    from model_zoo.private_training.config import DPConfig
    from model_zoo.private_training.dp import DPSGD, check_per_example_gradients

    model, collate = local.prep.model, common.collator(local.prep.tokenizer)
    dp = DPConfig(**json.loads(run["dp"]))
    saved = json.loads(state.read_text(encoding="utf-8")) if state.exists() else {}
    delta = dp.delta or default_delta(len(rows))
    device = next(model.parameters()).device
    if not saved:
        check_per_example_gradients(model, {k: v.to(device) for k, v in collate(rows[:4]).items()})
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=float(run["lr"]), weight_decay=float(run["weight-decay"]))
    whole_run = int(run["rounds"]) * steps  # the noise spends the budget if this client trains every round
    # A round that a client finished but the server did not checkpoint (Cancel, a crash) is redone on Resume and
    # counted twice here: the accountant over-counts, which errs on the safe side.
    if "noise_multiplier" in saved:  # the noise is set once, for the whole run
        dp = DPConfig(**{**json.loads(run["dp"]), "target_epsilon": 0.0, "noise_multiplier": saved["noise_multiplier"]})
    private = DPSGD.make(model, opt, rows, collate, int(run["batch-size"]), dp, delta, whole_run, seed=seed)
    private.restore(saved.get("history", []))
    losses, done, epoch = [], 0, 0
    while done < steps:
        for batch in private.batches(epoch):
            if done >= steps:
                break
            loss, size = private.step(batch, seed + done)
            done += 1
            if size:
                losses.append(loss)
        epoch += 1
    eps = private.epsilon()
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"noise_multiplier": private.noise_multiplier, "history": private.history(),
                                 "delta": delta, "epsilon": eps}), encoding="utf-8")
    private.close()
    return float(np.mean(losses)) if losses else math.nan, done, eps, delta


client_app = ClientApp()


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    """One round on one client: take the global trainable weights, train locally, send them back."""
    run: dict[str, Any] = dict(msg.content["config"])
    torch.set_num_threads(max(1, int(run.get("threads", 1))))
    local = _local(run)
    cid, rows = _client_rows(local, run, context)
    model = local.prep.model
    common.load_trainable(model, msg.content.array_records["arrays"].to_torch_state_dict())
    rnd = int(run["server-round"])
    steps = max(1, math.ceil(float(run["local-epochs"]) * math.ceil(len(rows) / int(run["batch-size"]))))
    seed = int(run["seed"]) * 1_000 + rnd * 100 + int(cid) if cid.isdigit() else int(run["seed"]) + rnd
    t0 = time.time()
    eps = delta = -1.0
    if json.loads(run["dp"]).get("enabled"):
        node = context.node_config  # a real client keeps its accountant where it runs (state-dir), never on the server
        folder = (Path(str(node.get("state-dir", "."))) / "loupe-client" if "data-file" in node
                  else Path(run["job-dir"]) / "clients") / cid
        loss, done, eps, delta = _private_training(local, rows, run, steps, seed, folder / "privacy.json")
    else:
        loss, done = _local_training(local, rows, run, steps, seed)
    reply = RecordDict({"arrays": ArrayRecord(common.trainable_state(model)),
                        "metrics": MetricRecord({"num-examples": len(rows), "train-loss": loss, "steps": done,
                                                 "epsilon": eps, "delta": delta, "seconds": time.time() - t0}),
                        "client": ConfigRecord({"client": cid, "frozen-sha256": common.frozen_fingerprint(model)})})
    return Message(content=reply, reply_to=msg)


# --- the server -------------------------------------------------------------------------------------------------
class _Server:
    """The server's side of one federated run: its model, the validation split, the round loop, checkpoints."""

    def __init__(self, ctx: jobs.JobContext, cfg: FinetuneConfig, tcfg: TrainConfig, prep: Prepared, splits: Splits,
                 plan: Plan, threads: int) -> None:
        self.ctx, self.cfg, self.tcfg, self.prep, self.plan, self.threads = ctx, cfg, tcfg, prep, plan, threads
        self.labels = splits.labels
        self.collate = common.collator(prep.tokenizer)
        from model_zoo.training import _Encoded

        self.val_rows = _Encoded(splits.validation, prep.tokenizer, tcfg.max_length).rows
        self.fingerprint = common.frozen_fingerprint(prep.model)
        self.done_rounds = 0
        self.cancelled = False
        self.history: dict[str, Any] = {"round_seconds": [], "rounds_trained": {}, "epsilon": {}, "loss": None}

    def run_config(self, rnd: int) -> ConfigRecord:
        from model_zoo import spec

        fed, tcfg = self.cfg.federated, self.tcfg
        return ConfigRecord({
            "base": self.cfg.base, "method": self.cfg.method, "seed": tcfg.seed, "rounds": fed.rounds,
            "method-config": json.dumps(spec.to_dict(self.prep.method_config)), "labels": json.dumps(self.labels),
            "max-length": tcfg.max_length, "lr": tcfg.learning_rate, "weight-decay": tcfg.weight_decay,
            "batch-size": tcfg.batch_size, "local-epochs": fed.local_epochs,
            "dp": json.dumps(spec.to_dict(self.cfg.dp)),
            "job-dir": str(self.ctx.dir), "threads": self.threads, "round": rnd})

    def resume(self) -> None:
        checkpoint = common.last_checkpoint(self.ctx.checkpoints) if self.ctx.resuming else None
        if checkpoint is not None:
            tensors, state = common.read_checkpoint(checkpoint)
            common.load_trainable(self.prep.model, tensors)
            self.done_rounds, self.history = int(state["round"]), state["history"]
        if self.ctx.resuming:
            _trim_metrics(self.ctx.dir, self.done_rounds)
            self.ctx.metric({"event": "resumed", "step": self.done_rounds})
            self.ctx.log(f"resuming after round {self.done_rounds}" if checkpoint
                         else "no complete round: starting over")

    def validate(self, rnd: int) -> dict[str, float]:
        m = common.evaluate(self.prep.model, self.val_rows, self.collate, len(self.labels))
        self.ctx.metric({"split": "validation", "step": rnd, "round": rnd, **m})
        return m

    def serve(self, grid: Grid) -> None:
        """The round loop (the ``ServerApp``'s main): sample, send, average, validate, checkpoint; Cancel between
        rounds."""
        import random

        fed, n = self.cfg.federated, len(self.plan.shards)
        per_round = min(fed.clients_per_round or n, n)
        strategy = FedAvg(fraction_train=per_round / n, min_train_nodes=per_round, min_available_nodes=n,
                          fraction_evaluate=0.0)
        arrays = ArrayRecord(common.trainable_state(self.prep.model))
        if self.done_rounds == 0:
            m = self.validate(0)
            self.ctx.log(f"round 0 (before training): validation accuracy {m['accuracy']:.4f}")
        for rnd in range(self.done_rounds + 1, fed.rounds + 1):
            if self.ctx.cancelled():
                self.cancelled = True
                return
            t0 = time.time()
            random.seed(self.tcfg.seed * 1_000 + rnd)  # FedAvg samples the round's clients with random.sample
            replies = list(grid.send_and_receive(strategy.configure_train(rnd, arrays, self.run_config(rnd), grid)))
            failed = [r for r in replies if r.has_error()]
            if failed or not replies:
                reason = failed[0].error.reason if failed else "no client replied"
                raise PrivateTrainingError(f"Round {rnd}: a client failed: {reason}")
            aggregated, _ = strategy.aggregate_train(rnd, replies)
            if aggregated is None:
                raise PrivateTrainingError(f"Round {rnd}: nothing to average.")
            arrays = aggregated
            common.load_trainable(self.prep.model, arrays.to_torch_state_dict())
            self._record(rnd, replies, time.time() - t0)
            m = self.validate(rnd)
            self.done_rounds = rnd
            common.save_checkpoint(self.ctx.checkpoints, rnd, common.trainable_state(self.prep.model),
                                   {"round": rnd, "history": self.history})
            self.ctx.log(f"round {rnd}/{fed.rounds}: {len(replies)} clients, "
                         f"{self.history['round_seconds'][-1]:.1f} s; "
                         f"validation accuracy {m['accuracy']:.4f}")
            self.ctx.progress(rnd, fed.rounds, f"round {rnd} of {fed.rounds}")

    def _record(self, rnd: int, replies: list[Message], seconds: float) -> None:
        total, weighted = 0, 0.0
        for reply in replies:
            who: dict[str, Any] = dict(reply.content["client"])
            m: dict[str, Any] = dict(reply.content["metrics"])
            cid = str(who["client"])
            if who["frozen-sha256"] != self.fingerprint:
                raise PrivateTrainingError(f"Client {cid}'s frozen weights differ from the server's; its update "
                                           "cannot be averaged.")
            record: dict[str, Any] = {"split": "client", "step": rnd, "round": rnd, "client": cid,
                                      "loss": float(m["train-loss"]), "examples": int(m["num-examples"]),
                                      "local_steps": int(m["steps"]), "seconds": float(m["seconds"])}
            if float(m["epsilon"]) >= 0:
                record["epsilon"], record["delta"] = float(m["epsilon"]), float(m["delta"])
                self.history["epsilon"][cid] = [float(m["epsilon"]), float(m["delta"])]
            self.ctx.metric(record)
            self.history["rounds_trained"][cid] = self.history["rounds_trained"].get(cid, 0) + 1
            if math.isfinite(record["loss"]):
                total, weighted = total + record["examples"], weighted + record["loss"] * record["examples"]
        self.history["round_seconds"].append(round(seconds, 2))
        self.history["loss"] = weighted / total if total else None
        self.ctx.metric({"split": "train", "step": rnd, "round": rnd, "loss": self.history["loss"],
                         "clients": len(replies), "seconds": seconds})

    def card_entry(self, splits: Splits) -> dict[str, Any]:
        """The card's ``federated`` entry: clients (size and label balance), rounds, partition, time per round."""
        import flwr
        import ray

        fed, train = self.cfg.federated, splits.train
        clients = [{"client": str(i), "name": self.plan.names[i], "size": len(shard),
                    "labels": partition.label_counts(train.labels, shard, train.label_names),
                    "rounds_trained": self.history["rounds_trained"].get(str(i), 0),
                    **({"epsilon": round(self.history["epsilon"][str(i)][0], 4),
                        "delta": self.history["epsilon"][str(i)][1]} if str(i) in self.history["epsilon"] else {})}
                   for i, shard in enumerate(self.plan.shards)]
        seconds = self.history["round_seconds"]
        return {"framework": f"flwr {flwr.__version__} simulation (Ray {ray.__version__})",
                "strategy": "FedAvg over the trainable weights only, weighted by each client's examples",
                "clients": len(clients), "rounds": fed.rounds,
                "clients_per_round": fed.clients_per_round or len(clients),
                "local_epochs": fed.local_epochs, "partition": self.plan.how,
                "exchanged_parameters": self.prep.trainable, "per_client": clients,
                "seconds_per_round": round(float(np.mean(seconds)), 2) if seconds else None, "round_seconds": seconds,
                "differential_privacy": bool(self.cfg.dp.enabled)}


def _backend(per_round: int) -> tuple[dict[str, Any], int]:
    """Flower's Ray backend settings (a local Ray sized to this machine, or ``LOUPE_RAY_ADDRESS``), and the threads
    each client uses."""
    from model_zoo.engine import ADDRESS_ENV, ray_unavailable

    if why := ray_unavailable():
        raise PrivateTrainingError(f"Federated training runs its clients on Ray: {why}")
    cpus = os.cpu_count() or 1
    parallel = max(1, min(per_round, cpus))
    threads = max(1, cpus // parallel)
    gpus = torch.cuda.device_count()
    address = os.environ.get(ADDRESS_ENV, "").strip()
    init: dict[str, Any] = {"address": address} if address else {
        "num_cpus": cpus, "num_gpus": gpus, "include_dashboard": False, "object_store_memory": 256 * 2**20}
    return {"client_resources": {"num_cpus": threads, "num_gpus": gpus / parallel if gpus else 0.0},
            "init_args": init}, threads


def run_federated(ctx: jobs.JobContext, cfg: FinetuneConfig, tcfg: TrainConfig, prep: Prepared, splits: Splits,
                  started: float) -> dict[str, Any]:
    """A federated run inside the ``finetune`` job (Flower's simulation runtime); ``_finish`` saves the model."""
    from flwr.simulation import run_simulation

    plan = plan_clients(cfg, splits, tcfg.seed)
    if len(plan.shards) > 100:
        raise PrivateTrainingError(f"The partition makes {len(plan.shards)} clients; at most 100 are simulated.")
    for i, shard in enumerate(plan.shards):
        folder = ctx.dir / "clients" / str(i)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "shard.json").write_text(json.dumps({"positions": shard}), encoding="utf-8")
    sizes = ", ".join(f"{len(s)}" for s in plan.shards)
    ctx.log(f"federated: {len(plan.shards)} clients ({plan.how['kind']}; sizes {sizes}), {cfg.federated.rounds} "
            f"rounds, FedAvg over {prep.trainable:,} trainable weights" + (", DP-SGD on each client"
                                                                           if cfg.dp.enabled else ""))
    backend, threads = _backend(min(cfg.federated.clients_per_round or len(plan.shards), len(plan.shards)))
    server = _Server(ctx, cfg, tcfg, prep, splits, plan, threads)
    if cfg.dp.enabled:  # fail here, before any client starts, if DP-SGD cannot train this model correctly
        from model_zoo.private_training.dp import check_per_example_gradients

        rows = server.val_rows[:4]
        check_per_example_gradients(prep.model, {k: v.to(prep.device) for k, v in server.collate(rows).items()})
    server.resume()
    resumed_from = server.done_rounds
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        server.serve(grid)

    ctx.progress(server.done_rounds, cfg.federated.rounds, "starting the clients (Ray)")
    t0 = time.time()
    if server.done_rounds < cfg.federated.rounds:
        run_simulation(server_app=app, client_app=client_app, num_supernodes=len(plan.shards), backend_config=backend)
    if server.cancelled or ctx.cancelled():
        return {"cancelled": True}
    entry = server.card_entry(splits)
    extra: dict[str, Any] = {"federated": entry}
    if cfg.dp.enabled:
        each = [c for c in entry["per_client"] if "epsilon" in c]
        extra["privacy"] = {"mechanism": "DP-SGD on each client", "unit": "one training text of one client",
                            "epsilon": max(c["epsilon"] for c in each) if each else None,
                            "delta": max(c["delta"] for c in each) if each else None,
                            "accountant": cfg.dp.accountant, "target_epsilon": cfg.dp.target_epsilon or None,
                            "max_grad_norm": cfg.dp.max_grad_norm,
                            "notes": ["Each client's guarantee covers its own texts, from its own accountant; ε and δ "
                                      "here are the largest over the clients (per client: the federated entry)."]}
    trained = common.TrainedBy(prep.model, cfg.federated.rounds, float(server.history["loss"] or math.nan))
    ctx.progress(cfg.federated.rounds, cfg.federated.rounds, "saving and evaluating the model")
    return _finish(ctx, cfg, tcfg, prep, splits, trained, trained, resumed_from, time.time() - t0, started, extra)
