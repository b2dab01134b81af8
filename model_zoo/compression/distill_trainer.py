"""The ``Trainer`` that distills: knowledge-distillation loss in ``compute_loss`` (imported when training, as
``transformers.Trainer`` takes seconds to import)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Trainer


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
                      temperature: float, alpha: float) -> torch.Tensor:
    """``alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, labels)``.

    The KL term is scaled by T^2 so its gradients keep their size as T changes (Hinton et al., 2015); without
    labels the loss is the soft term alone.
    """
    soft = nn.functional.kl_div(nn.functional.log_softmax(logits.float() / temperature, dim=-1),
                                nn.functional.softmax(teacher_logits.float() / temperature, dim=-1),
                                reduction="batchmean") * temperature * temperature
    loss = alpha * soft
    if labels is not None:
        loss = loss + (1 - alpha) * nn.functional.cross_entropy(logits.float(), labels)
    return loss


class DistillationTrainer(Trainer):
    """A ``Trainer`` whose loss is :func:`distillation_loss` against a frozen teacher.

    The teacher is not part of the trained model: it is neither trained nor moved nor saved. It runs on its
    own device (inputs go to it, its logits come back), so distilling never moves the source model.
    """

    def __init__(self, *args: Any, teacher: nn.Module, temperature: float, alpha: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher
        self.temperature = temperature
        self.alpha = alpha

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        outputs = model(**inputs)
        device = next(self.teacher.parameters()).device
        with torch.no_grad():
            teacher_logits = self.teacher(**{k: v.to(device) for k, v in inputs.items()}).logits
        loss = distillation_loss(outputs.logits, teacher_logits.to(outputs.logits.device), labels, self.temperature,
                                 self.alpha)
        return (loss, outputs) if return_outputs else loss
