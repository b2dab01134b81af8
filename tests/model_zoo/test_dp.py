"""Differentially private fine-tuning (DP-SGD with Opacus): each step is checked against a known answer.

With no noise and no clipping one DP-SGD step is exactly the SGD step with the batch's mean gradient (this catches
per-example gradients that are silently wrong, as reported for LoRA through peft, and BERT's position embeddings,
Opacus issue 841); with clipping it is the mean of the hand-clipped per-example gradients; the noise has the
standard deviation the accountant assumes; frozen weights never move; the accountant's ε grows with steps and
falls with noise; and a private fine-tuning job records ε live and on the model card, within its budget.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from model_zoo import jobs, load, store
from model_zoo.finetune import DataSpec, FinetuneConfig, prepare_model, run_here
from model_zoo.private_training import dp as dp_mod
from model_zoo.private_training.config import DPConfig, PrivateTrainingError, default_delta
from model_zoo.private_training.dp import DPSGD, check_per_example_gradients, epsilon_spent, noise_for_budget
from model_zoo.training import _Encoded
from tests.conftest import build_spread_bert

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ["neg", "pos"]
TEXTS = ["good great fun", "bad awful film", "love it", "the worst, dull and boring film ever", "superb", "hate"]
SETTINGS = {"lora": {"r": 4, "dropout": 0.0}}
LR = 0.5


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_spread_bert(tmp_path_factory.mktemp("dp") / "tiny-base")




def _prepared(base: Path, method: str) -> Any:
    prep = prepare_model(str(base), method, SETTINGS.get(method), LABELS, device="cpu", seed=3)
    for m in prep.model.modules():  # dropout off: the known answers are deterministic
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return prep


def _rows(tokenizer: Any) -> list[dict[str, Any]]:
    from model_zoo.data import TextDataset

    ds = TextDataset(TEXTS, [1, 0, 1, 0, 1, 0], LABELS)
    return _Encoded(ds, tokenizer, 32).rows


def _collate(tokenizer: Any) -> Any:
    from transformers import DataCollatorWithPadding

    pad = DataCollatorWithPadding(tokenizer)
    return lambda rows: dict(pad(rows))


def _batch(tokenizer: Any) -> dict[str, torch.Tensor]:
    return _collate(tokenizer)(_rows(tokenizer))


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _dp_step(base: Path, method: str, dp: DPConfig, lr: float = LR) -> tuple[dict[str, torch.Tensor],
                                                                            dict[str, torch.Tensor], Any]:
    """(weights before, weights after) one DP-SGD step over all six texts as one batch (no Poisson sampling)."""
    prep = _prepared(base, method)
    before = _params(prep.model)
    trainable = [p for p in prep.model.parameters() if p.requires_grad]
    private = DPSGD.make(prep.model, torch.optim.SGD(trainable, lr=lr), _rows(prep.tokenizer), _collate(prep.tokenizer),
                         batch_size=len(TEXTS), dp=dp, delta=1e-5)
    private.step(next(private.batches(0)), step=0)
    return before, _params(private.close()), prep


def _per_example_grads(base: Path, method: str) -> tuple[dict[str, torch.Tensor], set[str]]:
    """Autograd's gradient of each text's loss, one text at a time: {weight: [texts, *shape]}, and which train."""
    prep = _prepared(base, method)
    batch = _batch(prep.tokenizer)
    params = {n: p for n, p in prep.model.named_parameters() if p.requires_grad}
    grads: dict[str, list[torch.Tensor]] = {n: [] for n in params}
    prep.model.train()
    for i in range(len(TEXTS)):
        prep.model.zero_grad()
        dp_mod.forward_loss(prep.model, {k: v[i:i + 1] for k, v in batch.items()})[0].backward()
        for n, p in params.items():
            grads[n].append(p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
    return {n: torch.stack(g) for n, g in grads.items()}, set(params)


NO_NOISE = DPConfig(enabled=True, target_epsilon=0.0, noise_multiplier=0.0, max_grad_norm=1e6, poisson_sampling=False)


@pytest.mark.parametrize("method", ["head_only", "bitfit", "lora", "full"])
def test_a_noiseless_unclipped_step_is_the_sgd_step_with_the_mean_gradient(method: str, base: Path) -> None:
    before, after, _ = _dp_step(base, method, NO_NOISE)
    grads, trainable = _per_example_grads(base, method)
    assert trainable
    for name, w in before.items():
        if name in trainable:
            expected = w - LR * grads[name].mean(0)
            gap = (after[name] - expected).abs().max()
            assert torch.allclose(after[name], expected, atol=1e-6, rtol=0), (name, gap)
        else:
            assert torch.equal(after[name], w), f"frozen weight {name} changed"
    # every trainable weight with a gradient moved (LoRA's A matrices have none on the first step: B starts at 0)
    moved = {n for n in trainable if not torch.equal(after[n], before[n])}
    assert moved == {n for n in trainable if grads[n].abs().max() > 0}
    assert any("classifier" not in n for n in moved) or method == "head_only"


def test_full_fine_tuning_trains_the_position_embeddings_per_example(base: Path) -> None:
    """The fix for Opacus issue 841: BERT's [1, seq] position_ids are repeated over the batch, so the position
    (and token-type) embeddings get per-example gradients and move by the mean gradient (nothing is frozen)."""
    before, after, _ = _dp_step(base, "full", NO_NOISE)
    grads, _ = _per_example_grads(base, "full")
    name = "bert.embeddings.position_embeddings.weight"
    assert not torch.equal(after[name], before[name])
    assert torch.allclose(after[name], before[name] - LR * grads[name].mean(0), atol=1e-6, rtol=0)


def test_without_the_lookup_fix_full_fine_tuning_is_refused(base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is not vacuous: with the batch-1 position lookups left alone (the code before the fix), the
    per-example gradients of the position embeddings are wrong and the model is refused."""
    monkeypatch.setattr(dp_mod.BatchedLookups, "_hook", lambda self, module, args: None)
    prep = _prepared(base, "full")
    with pytest.raises(PrivateTrainingError, match="position_embeddings"):
        check_per_example_gradients(prep.model, _batch(prep.tokenizer))


@pytest.mark.parametrize("method", ["head_only", "bitfit", "lora", "full", "adapters"])
def test_opacus_per_example_gradients_match_autograd(method: str, base: Path) -> None:
    prep = _prepared(base, method)
    before = _params(prep.model)
    check_per_example_gradients(prep.model, _batch(prep.tokenizer))
    assert all(torch.equal(p, before[n]) for n, p in _params(prep.model).items())  # the check changes nothing


def test_prompt_tuning_is_refused(base: Path) -> None:
    """peft's prompt tuning looks its virtual tokens up once for the batch: Opacus' per-example gradients of them
    are wrong, so DP is refused rather than silently training on wrong updates."""
    prep = prepare_model(str(base), "prompt_tuning", {"num_virtual_tokens": 2}, LABELS, device="cpu")
    with pytest.raises(PrivateTrainingError, match="not offered"):
        check_per_example_gradients(prep.model, _batch(prep.tokenizer))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_clipping_bounds_each_examples_gradient(method: str, base: Path) -> None:
    """With a small clipping norm C, the step is the mean of each text's gradient scaled to norm at most C."""
    clip = 0.05
    before, after, _ = _dp_step(base, method, DPConfig(enabled=True, target_epsilon=0.0, noise_multiplier=0.0,
                                                      max_grad_norm=clip, poisson_sampling=False))
    grads, trainable = _per_example_grads(base, method)
    norms = torch.sqrt(sum(g.reshape(len(TEXTS), -1).pow(2).sum(1) for g in grads.values()))
    assert (norms > clip).all()  # every text is clipped here
    factor = (clip / (norms + 1e-6)).clamp(max=1.0)
    for name in trainable:
        clipped = (grads[name] * factor.view(-1, *[1] * (grads[name].dim() - 1))).mean(0)
        assert torch.allclose(after[name], before[name] - LR * clipped, atol=1e-7, rtol=0), name


def test_noise_has_the_standard_deviation_the_accountant_assumes(base: Path) -> None:
    """Noise ~ N(0, (σ C)^2) on the summed clipped gradients, divided by the batch size: the update's deviation
    from the noiseless one, in units of lr σ C / B, has standard deviation 1."""
    sigma, clip = 2.0, 0.05
    noisy = DPConfig(enabled=True, target_epsilon=0.0, noise_multiplier=sigma, max_grad_norm=clip,
                     poisson_sampling=False)
    clean = DPConfig(enabled=True, target_epsilon=0.0, noise_multiplier=0.0, max_grad_norm=clip,
                     poisson_sampling=False)
    _, with_noise, prep = _dp_step(base, "lora", noisy)
    _, without, _ = _dp_step(base, "lora", clean)
    trainable = [n for n, p in prep.model.named_parameters() if p.requires_grad]
    z = torch.cat([(with_noise[n] - without[n]).flatten() for n in trainable]) / (LR * sigma * clip / len(TEXTS))
    assert z.numel() > 1000
    assert abs(float(z.std()) - 1.0) < 0.1 and abs(float(z.mean())) < 0.1


def test_an_empty_poisson_batch_is_a_step_of_noise(base: Path) -> None:
    prep = _prepared(base, "head_only")
    before = _params(prep.model)
    trainable = [p for p in prep.model.parameters() if p.requires_grad]
    private = DPSGD.make(prep.model, torch.optim.SGD(trainable, lr=LR), _rows(prep.tokenizer),
                         _collate(prep.tokenizer), batch_size=3,
                         dp=DPConfig(enabled=True, target_epsilon=0.0, noise_multiplier=1.0), delta=1e-5)
    empty = {k: v[:0] for k, v in _batch(prep.tokenizer).items()}
    loss, size = private.step(empty, step=0)
    after = _params(private.close())
    assert size == 0 and math.isnan(loss)
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])  # noise moved the head
    assert torch.equal(after["bert.pooler.dense.weight"], before["bert.pooler.dense.weight"])
    assert len(private.engine.accountant.history) == 1  # and the accountant counted the step


def test_epsilon_grows_with_steps_and_falls_with_noise() -> None:
    q, delta = 0.01, 1e-5
    eps = [epsilon_spent([(1.0, q, steps)], delta) for steps in (10, 100, 1000)]
    assert 0 < eps[0] < eps[1] < eps[2]
    noisier = [epsilon_spent([(sigma, q, 1000)], delta) for sigma in (0.8, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(noisier, noisier[1:]))
    assert epsilon_spent([(0.0, q, 10)], delta) == math.inf
    prv = epsilon_spent([(1.0, q, 1000)], delta, "prv")
    assert 0 < prv <= eps[2] * 1.05  # PRV is at least about as tight as RDP


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_the_noise_for_a_target_epsilon_spends_it(accountant: str) -> None:
    q, steps, delta = 16 / 2000, 125, 1e-4
    sigma = noise_for_budget(3.0, delta, q, steps, accountant)
    spent = epsilon_spent([(sigma, q, steps)], delta, accountant)
    assert 2.98 <= spent <= 3.0 + 1e-9
    assert noise_for_budget(1.0, delta, q, steps, accountant) > sigma > noise_for_budget(8.0, delta, q, steps,
                                                                                           accountant)


@pytest.mark.parametrize(("n", "delta"), [(2, 0.1), (10, 0.1), (11, 0.01), (999, 1e-3), (1000, 1e-3), (1001, 1e-4),
                                          (2000, 1e-4), (10_222, 1e-5), (100_000, 1e-5)])
def test_default_delta_is_one_over_n_rounded_down_to_a_power_of_ten(n: int, delta: float) -> None:
    assert default_delta(n) == pytest.approx(delta, rel=1e-12)
    assert default_delta(n) <= 1 / n


# --- the job -------------------------------------------------------------------------------------------------
def _dp_run(base: Path, tmp: Path, name: str, **dp: Any) -> FinetuneConfig:
    rows = [("good great fun", "pos"), ("bad awful dull", "neg"), ("love superb best", "pos"),
            ("hate worst boring", "neg")] * 20
    path = tmp / "toy.csv"
    path.write_text("text,label\n" + "\n".join(f"{t} {i},{y}" for i, (t, y) in enumerate(rows)), encoding="utf-8")
    return FinetuneConfig(base=str(base), method="lora", name=name, method_config={"r": 4},
                          data=DataSpec(source=str(path)),
                          train={"epochs": 2.0, "batch_size": 8, "learning_rate": 2e-2, "eval_steps": 5,
                                 "save_steps": 5, "warmup_ratio": 0.0},
                          dp={"enabled": True, "target_epsilon": 4.0, **dp})


def _weights(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(store.model_path(name) / "model.safetensors"))


def test_a_private_job_reports_epsilon_live_and_on_the_card(base: Path, tmp_path: Path) -> None:
    job_id, status = run_here(_dp_run(base, tmp_path, "dp-toy"))
    assert status["state"] == "done", (status, jobs.log_tail(job_id))
    records = jobs.metrics(job_id)
    eps = [r["epsilon"] for r in records if r.get("split") == "train"]
    assert len(eps) >= 5 and all(0 < a <= b for a, b in zip(eps, eps[1:]))  # ε spent grows, step by step
    assert any(r.get("split") == "validation" and r.get("accuracy") is not None for r in records)
    card = store.read_card(store.model_path("dp-toy"))
    privacy = card["privacy"]
    assert privacy["mechanism"] == "DP-SGD" and privacy["accountant"] == "rdp" and privacy["target_epsilon"] == 4.0
    assert 3.98 <= privacy["epsilon"] <= 4.0 + 1e-9 and privacy["epsilon"] == pytest.approx(eps[-1], abs=1e-4)
    assert privacy["delta"] == 0.01  # 64 training texts: 1/64 rounded down to a power of ten
    assert privacy["steps"] == card["steps"] == 16 and privacy["noise_multiplier"] > 0  # 2 epochs of 8 batches
    assert jobs.result(job_id)["privacy"]["epsilon"] == privacy["epsilon"]
    assert load("dp-toy").predict_proba(["good fun"]).shape == (1, 2)  # saved like any model


def test_a_cancelled_private_job_resumes_with_its_privacy_spent(base: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelled after its step-5 checkpoint and resumed, a run ends with the same weights and the same ε as one
    that never stopped (the accountant's history, optimizer and sampling are restored, the noise is per step)."""
    job_id, _ = run_here(_dp_run(base, tmp_path, "dp-straight"))
    calls = {"n": 0}

    def cancel_after_step_6(self: jobs.JobContext) -> bool:
        calls["n"] += 1
        return calls["n"] >= 7

    with monkeypatch.context() as mp:
        mp.setattr(jobs.JobContext, "cancelled", cancel_after_step_6)
        stopped, status = run_here(_dp_run(base, tmp_path, "dp-resumed"))
    assert status["state"] == "cancelled"
    assert (jobs.job_dir(stopped) / "checkpoints" / "checkpoint-5" / ".complete").exists()
    _, status = run_here(FinetuneConfig(), resume_job=stopped)
    assert status["state"] == "done", jobs.log_tail(stopped)
    assert jobs.result(stopped)["resumed_from_step"] == 5
    assert jobs.result(stopped)["privacy"]["epsilon"] == jobs.result(job_id)["privacy"]["epsilon"]
    steps = [r["step"] for r in jobs.metrics(stopped) if r.get("split") == "train"]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # records after the checkpoint were redone once
    straight, resumed = _weights("dp-straight"), _weights("dp-resumed")
    assert all(torch.allclose(straight[k], resumed[k], atol=1e-6) for k in straight)


def test_private_settings_are_checked(base: Path, tmp_path: Path) -> None:
    from model_zoo.finetune import validate_config
    from model_zoo.spec import ConfigError

    with pytest.raises(PrivateTrainingError, match="no privacy"):
        validate_config(_dp_run(base, tmp_path, "x", target_epsilon=0.0, noise_multiplier=0.0))
    with pytest.raises(ConfigError, match="accountant"):
        FinetuneConfig.from_dict({"dp": {"enabled": True, "accountant": "gdp"}})
    with pytest.raises(ConfigError, match="max_grad_norm"):
        FinetuneConfig.from_dict({"dp": {"max_grad_norm": 0.0}})
    early = _dp_run(base, tmp_path, "x")
    early.train["early_stopping_patience"] = 2
    with pytest.raises(PrivateTrainingError, match="Early stopping"):
        validate_config(early)
