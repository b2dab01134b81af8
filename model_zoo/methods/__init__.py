"""Fine-tuning methods, one module each, registered in :data:`METHODS` when imported here.

Each entry is a :class:`~model_zoo.methods.base.FinetuneMethod`: its settings, recipe, which weights train,
how it saves and (for adapters) how it reloads. Adding a method is one module with a ``@register`` class
(imported here, or by whoever needs it).
"""

from model_zoo.methods.base import METHODS, FinetuneMethod, PeftLibraryMethod, head_names, pooler_names, register

from model_zoo.methods import full, lora, bitfit, adapters, prompt_tuning, head_only  # noqa: E402,F401  isort: skip

__all__ = ["METHODS", "FinetuneMethod", "PeftLibraryMethod", "head_names", "pooler_names", "register"]
