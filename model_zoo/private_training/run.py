"""Private training inside the ``finetune`` job: the job prepares the data and the model as for any run, then
hands over here (:func:`run_private`); the model is saved, scored and carded by the job's own ``_finish``.

The differentially private loop reports like the Trainer does: progress and ETA, one ``train`` record per
logging step (loss, learning rate and **ε spent so far**), ``validation`` records at the evaluation steps, and
checkpoints every ``save_steps`` (the trainable weights, the optimizer, the accountant's history and the step),
so Cancel and Resume work and a resumed run continues ε where it stopped.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from model_zoo import jobs
from model_zoo.finetune.config import FinetuneConfig
from model_zoo.finetune.job import _finish, _trim_metrics, world
from model_zoo.finetune.model import Prepared
from model_zoo.finetune.splits import Splits
from model_zoo.private_training import common
from model_zoo.private_training.config import DPConfig, PrivateTrainingError, default_delta
from model_zoo.private_training.dp import DPSGD, check_per_example_gradients
from model_zoo.training import TrainConfig, _Encoded


def run_private(ctx: jobs.JobContext, cfg: FinetuneConfig, tcfg: TrainConfig, prep: Prepared, splits: Splits,
                started: float) -> dict[str, Any]:
    """Train privately (DP-SGD, federated, or federated with DP-SGD on each client) and save like any run."""
    if world()[1] > 1:
        raise PrivateTrainingError("Private training runs in one process; start it without torchrun / accelerate.")
    if cfg.federated.enabled:
        from model_zoo.private_training.federated import run_federated

        return run_federated(ctx, cfg, tcfg, prep, splits, started)
    return run_dp(ctx, cfg, tcfg, prep, splits, started)


def privacy_entry(private: DPSGD, dp: DPConfig, steps: int, n: int) -> dict[str, Any]:
    """The card's ``privacy`` entry: the guarantee and how it was made."""
    import opacus

    return {"mechanism": "DP-SGD", "library": f"opacus {opacus.__version__}", "unit": "one training text",
            "epsilon": round(private.epsilon(), 4), "delta": private.delta, "target_epsilon": dp.target_epsilon or None,
            "accountant": dp.accountant, "noise_multiplier": round(private.noise_multiplier, 5),
            "max_grad_norm": dp.max_grad_norm, "sample_rate": private.sample_rate,
            "expected_batch_size": private.expected_batch_size, "poisson_sampling": dp.poisson_sampling,
            "steps": steps, "training_texts": n,
            "notes": ["Position and token-type embeddings are looked up per example (BERT's shared position_ids "
                      "repeated over the batch), so every trainable weight has exact per-example gradients.",
                      "Only the training split is protected; validation (watched while training) and test texts "
                      "are not, and explanations of this model are computed on whatever text they are given."]
            + ([] if dp.poisson_sampling else ["Batches were shuffled, not Poisson-sampled: ε assumes Poisson "
                                               "sampling and is an estimate here."])}


def run_dp(ctx: jobs.JobContext, cfg: FinetuneConfig, tcfg: TrainConfig, prep: Prepared, splits: Splits,
           started: float) -> dict[str, Any]:
    """DP-SGD over the training split (see the module docstring); returns ``_finish``'s result."""
    dp, model = cfg.dp, prep.model
    collate = common.collator(prep.tokenizer)
    rows = _Encoded(splits.train, prep.tokenizer, tcfg.max_length).rows
    val_rows = _Encoded(splits.validation, prep.tokenizer, tcfg.max_length).rows
    n, labels = len(rows), len(splits.labels)
    delta = dp.delta or default_delta(n)
    probe = {k: v.to(prep.device) for k, v in collate(rows[:4]).items()}
    check_per_example_gradients(model, probe)  # refuses a model whose per-example gradients would be wrong
    per_epoch = math.ceil(n / tcfg.batch_size)
    total = max(1, math.ceil(tcfg.epochs * per_epoch))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=tcfg.learning_rate, weight_decay=tcfg.weight_decay)
    private = DPSGD.make(model, optimizer, rows, collate, tcfg.batch_size, dp, delta, total, seed=tcfg.seed)
    per_epoch = private.steps_per_epoch  # Opacus' Poisson loader: int(1 / sample rate) batches an epoch
    ctx.log(f"DP-SGD: noise multiplier {private.noise_multiplier:.4f}, clipping norm {dp.max_grad_norm}, "
            f"sample rate {private.sample_rate:.5f} (expected batch {private.expected_batch_size}), {total} steps, "
            f"δ = {delta:g}, accountant {dp.accountant}"
            + (f"; noise set to spend ε = {dp.target_epsilon}" if dp.target_epsilon else ""))
    step, loss_sum, loss_n = 0, 0.0, 0
    checkpoint = common.last_checkpoint(ctx.checkpoints) if ctx.resuming else None
    if checkpoint is not None:
        tensors, state = common.read_checkpoint(checkpoint, private.optimizer.original_optimizer)
        common.load_trainable(model, tensors)
        private.restore(state["accountant"])
        step, loss_sum, loss_n = int(state["step"]), float(state["loss_sum"]), int(state["loss_n"])
    if ctx.resuming:
        _trim_metrics(ctx.dir, step)
        ctx.metric({"event": "resumed", "step": step})
        ctx.log(f"resuming from step {step} (ε spent so far {private.epsilon():.3f})" if checkpoint
                else "no complete checkpoint: starting over")
    resumed_from, log_every = step, max(1, min(10, total // 20))
    window: list[float] = []
    t0 = time.time()
    ctx.progress(step, total, "training (differentially private)")
    while step < total:
        for batch in private.batches(step // per_epoch, skip=step % per_epoch):
            lr = common.learning_rate(step, total, tcfg.learning_rate, tcfg.warmup_ratio)
            for group in private.optimizer.param_groups:
                group["lr"] = lr
            loss, size = private.step(batch, step)
            step += 1
            if size:
                window.append(loss)
                loss_sum, loss_n = loss_sum + loss * size, loss_n + size
            ctx._started = time.time() - (time.time() - t0) / max(1, step - resumed_from) * step
            if step % log_every == 0 or step == total:
                eps = private.epsilon()
                ctx.metric({"split": "train", "step": step, "epoch": step / per_epoch,
                            "loss": sum(window) / len(window) if window else None, "learning_rate": lr,
                            "epsilon": eps, "delta": delta})
                ctx.progress(step, total, f"training: step {step} of {total}, ε spent {eps:.2f}")
                window = []
            if tcfg.eval_steps and (step % tcfg.eval_steps == 0 or step == total):
                m = common.evaluate(model, val_rows, collate, labels)
                ctx.metric({"split": "validation", "step": step, "epoch": step / per_epoch, **m})
                ctx.log(f"step {step}: validation loss {m['loss']:.4f}, accuracy {m['accuracy']:.4f}, "
                        f"ε spent {private.epsilon():.3f}")
            if tcfg.save_steps and step % tcfg.save_steps == 0 and step < total:
                common.save_checkpoint(ctx.checkpoints, step, common.trainable_state(model),
                                       {"step": step, "accountant": private.history(), "loss_sum": loss_sum,
                                        "loss_n": loss_n}, private.optimizer.original_optimizer)
                ctx.log(f"checkpoint saved at step {step}")
            if ctx.cancelled():
                return {"cancelled": True}
            if step >= total:
                break
    train_seconds = time.time() - t0
    entry = privacy_entry(private, dp, step, n)
    ctx.log(f"privacy spent: ε = {entry['epsilon']:.3f} at δ = {delta:g} ({dp.accountant} accountant)")
    trained = common.TrainedBy(private.close(), step, loss_sum / max(1, loss_n))
    ctx.progress(step, step, "saving and evaluating the model")
    return _finish(ctx, cfg, tcfg, prep, splits, trained, trained, resumed_from, train_seconds, started,
                   {"privacy": entry})
