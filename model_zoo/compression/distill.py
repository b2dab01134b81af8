"""``distill-<n>l``: a student with ``n`` of the teacher's layers (evenly spread), trained on the teacher's
soft labels and the hard labels (:class:`~model_zoo.compression.distill_trainer.DistillationTrainer`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from model_zoo.compression.base import Made, Progress, VariantKind, VariantSpec, numbered, register
from model_zoo.compression.fit import fit
from model_zoo.compression.layers import keep_layers
from model_zoo.handle import ModelHandle


class Distillation(VariantKind):
    name = "distill"
    title = "Distillation into fewer layers"
    changes = "A student with fewer encoder layers, initialised from the teacher's and trained to match its outputs."
    fields = ("layers", "train_examples", "epochs", "temperature", "alpha")
    naming = "distill-<n>l"

    def parse_name(self, name: str) -> dict[str, Any] | None:
        n = numbered("distill", name, "l?")
        return None if n is None else {"layers": n}

    def name_of(self, spec: VariantSpec) -> str:
        return f"distill-{spec.layers}l"

    def transform(self, model: nn.Module, source: ModelHandle, spec: VariantSpec, progress: Progress) -> Made:
        from model_zoo.compression.distill_trainer import DistillationTrainer

        kept = keep_layers(model, spec.layers)
        trained = fit(model, source, spec, spec.train_examples, 1e-4, progress,
                      trainer_cls=DistillationTrainer, teacher=source.model, temperature=spec.temperature,
                      alpha=spec.alpha)
        return Made(model, {
            "method": f"knowledge distillation into a {len(kept)}-layer student initialised from teacher layers {kept}",
            "kept_layers": kept, "backend": "transformers Trainer, KD loss",
            "distillation": {"temperature": spec.temperature, "alpha": spec.alpha, **trained}})


register(Distillation())
