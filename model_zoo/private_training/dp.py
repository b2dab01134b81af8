"""DP-SGD with Opacus on a prepared fine-tuning model: per-example clipping, Gaussian noise, Poisson sampling
and a privacy accountant, in a small training loop of Loupe's own (transformers' Trainer and Opacus do not mix).

Two traps, both handled here and both tested:

- **Position embeddings** (Opacus issue 841). BERT looks its position (and token-type) embeddings up with a
  buffer of shape ``[1, seq]`` shared by the whole batch, so Opacus sees one "sample" where the batch has B and
  the per-example gradients of those embeddings come out wrong (or, at the clipping step, as a shape error).
  :class:`BatchedLookups` repeats such an index tensor over the batch before a trainable embedding reads it, so
  every example gets its own per-example gradient and full fine-tuning stays complete (nothing is frozen).
- **Silently wrong per-example gradients** (e.g. LoRA through peft with some Opacus/peft versions, issue 820;
  prompt tuning here). :func:`check_per_example_gradients` compares Opacus' per-example gradients with
  autograd's, one example at a time, on a few texts before training, and refuses a model whose trainable
  weights do not match.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from model_zoo.private_training.config import DPConfig, PrivateTrainingError

# Rényi orders for the RDP accountant: Opacus' defaults (up to 63) and more, so that small noise multipliers are
# not charged more than needed (Opacus warns "Optimal order is the largest alpha" when 63 was the best).
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 256))
PER_EXAMPLE_TOLERANCE = 1e-4  # relative to the largest per-example gradient entry (float32 rounding: ~1e-7)


class BatchedLookups:
    """Forward pre-hooks on the trainable embeddings of ``model``: an index tensor with batch dimension 1 (BERT's
    ``position_ids`` / ``token_type_ids`` buffers) is repeated to the batch's size, so each example has its own
    lookup and its own per-example gradient. The batch size is read from ``input_ids`` as the model is called."""

    def __init__(self, model: nn.Module) -> None:
        self.batch_size = 1
        self._handles = [m.register_forward_pre_hook(self._hook) for m in model.modules()
                         if isinstance(m, nn.Embedding) and m.weight.requires_grad]
        if self._handles:
            self._handles.append(model.register_forward_pre_hook(self._batch, with_kwargs=True))

    def _batch(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if isinstance(ids, torch.Tensor) and ids.dim() >= 1:
            self.batch_size = int(ids.shape[0])

    def _hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        idx = args[0] if args else None
        if isinstance(idx, torch.Tensor) and idx.dim() >= 1 and idx.shape[0] == 1 and self.batch_size > 1:
            return (idx.expand(self.batch_size, *idx.shape[1:]), *args[1:])
        return None

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def forward_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, logits) of a padded batch (``input_ids``, ``attention_mask``, ``labels``)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits.float()
    return nn.functional.cross_entropy(logits, batch["labels"]), logits


def _without_dropout(model: nn.Module) -> list[tuple[nn.Dropout, float]]:
    saved = [(m, m.p) for m in model.modules() if isinstance(m, nn.Dropout)]
    for m, _ in saved:
        m.p = 0.0
    return saved


def check_per_example_gradients(model: nn.Module, batch: dict[str, torch.Tensor],
                                tolerance: float = PER_EXAMPLE_TOLERANCE) -> None:
    """Compare Opacus' per-example gradients with autograd's, one example at a time; refuse on a mismatch.

    The model's weights are not changed (gradients are cleared; dropout is off during the check).

    Raises:
        PrivateTrainingError: Opacus fails on the model, or its per-example gradient of some trainable weight
            differs from the true one (the weights are named).
    """
    from opacus import GradSampleModule

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    size = int(batch["input_ids"].shape[0])
    was_training, saved = model.training, _without_dropout(model)
    lookups = BatchedLookups(model)
    model.train()
    try:
        truth: dict[str, list[torch.Tensor]] = {n: [] for n in params}
        for i in range(size):
            model.zero_grad(set_to_none=True)
            forward_loss(model, {k: v[i:i + 1] for k, v in batch.items()})[0].backward()
            for n, p in params.items():
                truth[n].append(p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
        model.zero_grad(set_to_none=True)
        gsm = GradSampleModule(model, loss_reduction="mean")
        try:
            forward_loss(gsm, batch)[0].backward()
            wrong = []
            expected = {n: torch.stack(g) for n, g in truth.items()}
            # one scale for all weights: some true gradients are 0 up to rounding (a key bias shifts every
            # attention score equally), and a per-weight relative test would flag their rounding noise
            scale = max([float(e.abs().max()) for e in expected.values()] + [1e-6])
            for n, p in params.items():
                got = getattr(p, "grad_sample", None)
                if got is None or tuple(got.shape) != tuple(expected[n].shape) or \
                        float((got - expected[n]).abs().max()) > tolerance * scale:
                    wrong.append(n)
        finally:
            gsm._close()
    except PrivateTrainingError:
        raise
    except Exception as err:  # Opacus refuses a layer, or the shapes do not fit: either way, no DP for this model
        raise PrivateTrainingError(f"Opacus cannot compute per-example gradients for this model's trainable weights "
                                   f"({type(err).__name__}: {str(err)[:200]}); differential privacy is not offered "
                                   "with this method.") from err
    finally:
        lookups.remove()
        for dropout, rate in saved:
            dropout.p = rate
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if wrong:
        raise PrivateTrainingError(f"Opacus' per-example gradients are wrong for {len(wrong)} trainable weight(s) of "
                                   f"this model (e.g. {', '.join(wrong[:3])}): training would be silently wrong, so "
                                   "differential privacy is not offered with this method.")


def noise_for_budget(target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """The noise multiplier that spends exactly ``target_epsilon`` (to 0.01) over ``steps`` steps (Opacus' search).

    Raises:
        PrivateTrainingError: the budget is too small to reach with any noise.
    """
    from opacus.accountants.utils import get_noise_multiplier

    orders = {"alphas": RDP_ORDERS} if accountant == "rdp" else {}
    try:
        return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate,
                                          steps=steps, accountant=accountant, epsilon_tolerance=0.01, **orders))
    except ValueError as err:
        raise PrivateTrainingError(f"ε = {target_epsilon} cannot be reached in {steps} steps: {err}") from err


def epsilon_spent(history: list[tuple[float, float, int]], delta: float, accountant: str = "rdp") -> float:
    """ε spent after the steps in ``history`` (``(noise multiplier, sample rate, steps)`` entries) at ``delta``."""
    from opacus.accountants import create_accountant

    if not history:
        return 0.0
    if any(sigma <= 0 for sigma, _, _ in history):
        return math.inf
    acc = create_accountant(mechanism=accountant)
    acc.history = [tuple(h) for h in history]
    return float(acc.get_epsilon(delta=delta, **({"alphas": RDP_ORDERS} if accountant == "rdp" else {})))


@dataclass
class DPSGD:
    """A model, optimizer and data loader made private with Opacus (``PrivacyEngine.make_private``).

    Build with :meth:`make`. ``steps_per_epoch`` batches are one epoch; Poisson sampling draws each batch anew
    (each example joins with probability ``sample_rate``), so a batch may be empty and its size varies.
    """

    model: nn.Module
    optimizer: Any  # opacus.optimizers.DPOptimizer
    loader: Any  # a DataLoader (opacus DPDataLoader with Poisson sampling)
    engine: Any  # opacus.PrivacyEngine: its accountant holds the privacy spent
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    expected_batch_size: int
    delta: float
    accountant: str
    seed: int
    hooks: Any = None
    lookups: BatchedLookups | None = None
    generator: torch.Generator = field(default_factory=torch.Generator)

    @classmethod
    def make(cls, model: nn.Module, optimizer: torch.optim.Optimizer, dataset: Any, collate: Callable[..., Any],
             batch_size: int, dp: DPConfig, delta: float, total_steps: int | None = None, seed: int = 13) -> DPSGD:
        """Make ``model`` + ``optimizer`` private over ``dataset`` (batches of ``batch_size`` in expectation).

        The noise multiplier is ``dp.noise_multiplier``, or with a ``dp.target_epsilon`` the one that spends it
        over ``total_steps`` steps. ``optimizer`` must hold exactly the model's trainable parameters.
        """
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader

        generator = torch.Generator().manual_seed(seed)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=generator)
        sample_rate = 1 / len(loader)
        sigma = dp.noise_multiplier
        if dp.target_epsilon:
            sigma = noise_for_budget(dp.target_epsilon, delta, sample_rate, total_steps or len(loader),
                                     dp.accountant)
        lookups = BatchedLookups(model)
        model.train()  # Opacus refuses a model in eval mode (a loaded model is)
        engine = PrivacyEngine(accountant=dp.accountant)
        noise = torch.Generator(device=next(model.parameters()).device).manual_seed(seed + 1)
        hooks, dp_optimizer, dp_loader = engine.make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=sigma,
            max_grad_norm=dp.max_grad_norm, poisson_sampling=dp.poisson_sampling, noise_generator=noise,
            wrap_model=False, grad_sample_mode="hooks")
        if dp.poisson_sampling:
            dp_loader.batch_sampler.generator = generator  # our generator: reseeded per epoch, so runs resume
        return cls(model, dp_optimizer, dp_loader, engine, float(sigma), dp.max_grad_norm, sample_rate,
                   int(dp_optimizer.expected_batch_size), delta, dp.accountant, seed, hooks, lookups, generator)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.loader)

    def batches(self, epoch: int, skip: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """The batches of ``epoch`` (seeded by it), after the first ``skip`` (a resumed run skips what it did)."""
        self.generator.manual_seed(self.seed * 100_003 + epoch)
        for i, batch in enumerate(self.loader):
            if i >= skip:
                yield batch

    def step(self, batch: dict[str, torch.Tensor], step: int) -> tuple[float, int]:
        """One DP-SGD step on ``batch`` (clip, sum, add noise, average over the expected batch size, update).

        Returns ``(loss, examples)``; an empty Poisson batch still takes a step of pure noise, as the accountant
        assumes (its loss is NaN).
        """
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        size = int(batch["input_ids"].shape[0])
        torch.manual_seed(self.seed * 7_919 + step)  # dropout, and below the noise, of step N: the same when resumed
        if self.optimizer.generator is not None:
            self.optimizer.generator.manual_seed(self.seed * 7_919 + step)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = math.nan
        if size:
            value, _ = forward_loss(self.model, batch)
            value.backward()
            loss = float(value.detach())
        else:  # no example sampled: zero per-example gradients, so the step adds noise only
            for p in self.optimizer.params:
                p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)
        self.optimizer.step()
        return loss, size

    def epsilon(self) -> float:
        return epsilon_spent(list(self.engine.accountant.history), self.delta, self.accountant)

    def history(self) -> list[list[float]]:
        """The accountant's ``(noise multiplier, sample rate, steps)`` entries (JSON; :meth:`restore` reads them)."""
        return [list(h) for h in self.engine.accountant.history]

    def restore(self, history: list[list[float]]) -> None:
        self.engine.accountant.history = [(float(s), float(q), int(n)) for s, q, n in history]

    def close(self) -> nn.Module:
        """Remove Opacus' and the lookup hooks (and per-example gradients); the plain model, ready to save."""
        if self.hooks is not None:
            self.hooks.cleanup()
            self.hooks = None
        if self.lookups is not None:
            self.lookups.remove()
            self.lookups = None
        for p in self.model.parameters():
            for attr in ("grad_sample", "summed_grad"):
                if hasattr(p, attr):
                    delattr(p, attr)
        return self.model
