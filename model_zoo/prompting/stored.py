"""Prompt classifiers in the model store: a small card, no weights.

A store folder ``LOUPE_HOME/models/<id>/`` holds ``loupe.json`` (the card: ``labels``, ``method: prompt``,
``base_model`` and the ``prompt`` entry: base LM, instruction, pattern, separator, verbaliser, demonstrations,
chat, calibration; metrics when the playground measured some) and a ``config.json`` marking the folder as a
model (``model_type: loupe-prompt-classifier``; the store lists folders that have one). ``model_zoo.load`` sees
the card's ``prompt`` entry and hands the folder to :func:`load_stored`, which loads the base LM (shared with
every other prompt classifier over it) and builds the handle.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from model_zoo import store
from model_zoo.errors import ModelLoadError
from model_zoo.handle import ModelHandle
from model_zoo.paths import models_dir, publish_dir_atomic, staging_dir, write_json_atomic
from model_zoo.prompting.classifier import build
from model_zoo.prompting.lm import DEFAULT_LM, load_lm
from model_zoo.prompting.template import PromptError, PromptTemplate

CARD_KEY = "prompt"
MODEL_TYPE = "loupe-prompt-classifier"


def card(template: PromptTemplate, base: str = DEFAULT_LM, model_id: str = "",
         metrics: dict[str, dict[str, Any]] | None = None, notes: str = "") -> dict[str, Any]:
    """The ``loupe.json`` card of a prompt classifier."""
    template.check()
    return {
        "id": model_id,
        "labels": template.labels,
        "task": "text classification (prompted language model)",
        "method": "prompt",
        "method_title": f"Prompted language model ({template.title()})",
        "base_model": base,
        CARD_KEY: {"base": base, **template.to_dict()},
        "metrics": metrics or {},
        "notes": notes,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def template_from_card(data: dict[str, Any]) -> tuple[PromptTemplate, str]:
    """``(template, base LM)`` from a card (or its ``prompt`` entry).

    Raises:
        PromptError: the entry is not a usable template.
    """
    entry = data.get(CARD_KEY, data)
    if not isinstance(entry, dict):
        raise PromptError("The card's prompt entry is not a JSON object.")
    base = entry.get("base", DEFAULT_LM)
    if not isinstance(base, str) or not base.strip():
        raise PromptError("The card's prompt entry names no base language model.")
    return PromptTemplate.from_dict(entry), base.strip()


def save(model_id: str, template: PromptTemplate, base: str = DEFAULT_LM, *, overwrite: bool = False,
         metrics: dict[str, dict[str, Any]] | None = None, notes: str = "") -> Path:
    """Save a prompt classifier to the store as ``model_id`` (atomically); returns its folder.

    Raises:
        ModelLoadError: a bad or reserved name, or a name already taken (unless ``overwrite``).
        PromptError: the template cannot be used.
    """
    from model_zoo.loading import BASE_ENCODER_ID

    if not store.valid_id(model_id) or model_id == BASE_ENCODER_ID:
        raise ModelLoadError(f"{model_id!r} is not a usable model name (letters, digits, '.', '_', '-').")
    if store.model_path(model_id) is not None and not overwrite:
        raise ModelLoadError(f"The store already has a model called {model_id!r}; pick another name.")
    entry = card(template, base, model_id, metrics, notes)
    with staging_dir(models_dir(), model_id) as staging:
        write_json_atomic(staging / "config.json", {"model_type": MODEL_TYPE, "architectures": ["PromptedLM"],
                                                    "base_model": base, "labels": template.labels})
        store.write_card(staging, entry)
        publish_dir_atomic(staging, models_dir() / model_id)
    return models_dir() / model_id


def load_stored(folder: Path, entry: dict[str, Any], device: torch.device, options: dict[str, Any]) -> ModelHandle:
    """``model_zoo.load``'s loader for a card with a ``prompt`` entry (registered in ``loading.LOADERS``).

    Raises:
        ModelLoadError: asked for fine-tuning (untrained head, new labels) or half precision on a CPU; the LM
            cannot be loaded; or the card's template is unusable.
    """
    name = entry.get("id") or folder.name
    if options.get("allow_untrained") or options.get("labels") is not None:
        raise ModelLoadError(f"{name} is a prompt classifier (a language model read through a prompt): it has no "
                             "classifier head to fine-tune. Fine-tune a fine-tuned model, or edit the prompt on the "
                             "Prompt playground page.")
    if options.get("dtype", "auto") not in ("auto", "float32", "fp32"):
        raise ModelLoadError("Prompt classifiers run in float32.")
    try:
        template, base = template_from_card(entry)
    except PromptError as err:
        raise ModelLoadError(f"{name}: its prompt cannot be used: {err}") from err
    lm, tokenizer, source = load_lm(base, device)
    info = {k: v for k, v in entry.items() if k not in ("labels",)}
    info.update(id=name, source=options.get("source", "store"), path=str(folder), base_source=source.kind)
    try:
        return build(lm, tokenizer, template, base=base, device=device, info=info)
    except PromptError as err:
        raise ModelLoadError(f"{name}: its prompt cannot be used with {base}: {err}") from err
