"""Elastic weight consolidation (Kirkpatrick et al., 2017), online form (Schwarz et al., 2018).

After training on a task, the diagonal of the *empirical* Fisher information of every trainable parameter is
estimated on a sample of that task's training examples: ``F_i = mean over examples of (d log p(y|x) / d theta_i)^2``
with ``y`` the example's own label, one example per backward pass, the model in eval mode (no dropout). Later
tasks train with ``loss + (lambda / 2) * sum_i F_i (theta_i - theta*_i)^2``.

Online EWC keeps one Fisher and one anchor for the whole sequence instead of one per task: after each task
``F <- gamma * F + F_task`` and ``theta* <- theta`` (the weights after that task). ``gamma = 1`` sums the
Fishers of all earlier tasks, anchored at the latest weights; ``gamma < 1`` lets old tasks fade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

LossFn = Callable[[nn.Module, Any], torch.Tensor]  # (model, one example or batch) -> scalar loss


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters that train (``requires_grad``), by name."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def fisher_diagonal(model: nn.Module, examples: Iterable[Any], loss_fn: LossFn) -> dict[str, torch.Tensor]:
    """The diagonal empirical Fisher of ``model``'s trainable parameters over ``examples``.

    Args:
        model: the model right after training on the task; it is put in eval mode and left there.
        examples: single examples (each its own backward pass, so the squares are per example, not of a mean).
        loss_fn: the negative log-likelihood of an example under ``model`` (the training loss, unreduced over
            nothing: one example).
    Returns:
        name -> tensor of ``mean(grad^2)`` (on the parameter's device); zero where the loss does not depend on a
        parameter. Raises ``ValueError`` when there is no example.
    """
    params = trainable(model)
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    model.eval()
    count = 0
    with torch.enable_grad():
        for example in examples:
            model.zero_grad(set_to_none=True)
            loss_fn(model, example).backward()
            for n, p in params.items():
                if p.grad is not None:
                    total[n] += p.grad.detach().float() ** 2
            count += 1
    model.zero_grad(set_to_none=True)
    if not count:
        raise ValueError("The Fisher information needs at least one example.")
    return {n: t / count for n, t in total.items()}


@dataclass
class EWC:
    """The penalty of online EWC: ``(lam / 2) * sum F (theta - anchor)^2`` over the named parameters.

    ``fisher`` and ``anchor`` are keyed by parameter name (as ``model.named_parameters()`` gives them).
    """

    lam: float
    fisher: dict[str, torch.Tensor]
    anchor: dict[str, torch.Tensor]
    tasks: int = 0  # how many tasks the Fisher has been accumulated over

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """The penalty for ``model``'s current weights (a scalar tensor, differentiable; 0 at the anchor)."""
        total: torch.Tensor | None = None
        for name, p in model.named_parameters():
            f = self.fisher.get(name)
            if f is None:
                continue
            anchor = self.anchor[name].to(p.device)
            term = (f.to(p.device) * (p.float() - anchor.float()) ** 2).sum()
            total = term if total is None else total + term
        if total is None:
            return torch.zeros(())
        return 0.5 * self.lam * total

    @classmethod
    def start(cls, lam: float) -> EWC:
        """An EWC with nothing consolidated yet (its penalty is 0)."""
        return cls(float(lam), {}, {})

    def consolidate(self, model: nn.Module, fisher: dict[str, torch.Tensor], gamma: float = 1.0) -> EWC:
        """After a task: ``F <- gamma * F + fisher`` and the anchor moves to ``model``'s current weights."""
        merged = {n: (gamma * self.fisher[n] + f) if n in self.fisher else f.clone() for n, f in fisher.items()}
        anchor = {n: p.detach().clone() for n, p in trainable(model).items() if n in merged}
        return EWC(self.lam, merged, anchor, self.tasks + 1)

    # --- saving with a checkpoint (safetensors: no pickle) -----------------------------------------------------
    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        tensors = {f"fisher/{n}": t.detach().cpu().contiguous() for n, t in self.fisher.items()}
        tensors.update({f"anchor/{n}": t.detach().cpu().contiguous() for n, t in self.anchor.items()})
        save_file(tensors, str(path), metadata={"lam": repr(self.lam), "tasks": str(self.tasks)})

    @classmethod
    def load(cls, path: Path) -> EWC:
        from safetensors import safe_open

        fisher: dict[str, torch.Tensor] = {}
        anchor: dict[str, torch.Tensor] = {}
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
            for key in fh.keys():
                kind, name = key.split("/", 1)
                (fisher if kind == "fisher" else anchor)[name] = fh.get_tensor(key)
        return cls(float(meta.get("lam", "0")), fisher, anchor, int(meta.get("tasks", "0")))
