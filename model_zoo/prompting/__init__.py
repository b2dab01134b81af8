"""Prompt classifiers: a causal language model that classifies zero- or few-shot through a prompt template.

A prompt classifier is a :class:`~model_zoo.ModelHandle` like any other (``predict_proba``, ``forward_probs``,
``encode``), so every explainer, metric and page works on it: :mod:`.template` (instruction, pattern,
demonstrations, verbaliser, calibration), :mod:`.lm` (the base LM: the bundled SmolLM2 GGUF, a GGUF file, a folder
or a hub id), :mod:`.model` (the LM as a classifier), :mod:`.classifier` (building handles),
:mod:`.demonstrations` (leave-one-out effects, attribution mass per prompt part), :mod:`.evaluation` (accuracy with
and without calibration) and :mod:`.stored` (store cards; registered with ``model_zoo.load`` here).
"""

from model_zoo import loading
from model_zoo.handle import ModelHandle
from model_zoo.prompting.classifier import (
    PromptSpec,
    WordTokens,
    build,
    is_prompt_classifier,
    prior,
    prompt_text,
    rebuild,
    spec_of,
    verbaliser_report,
    whole_prompt,
)
from model_zoo.prompting.demonstrations import DemonstrationEffects, demonstration_effects, segment_mass
from model_zoo.prompting.evaluation import PromptScores, calibrate, evaluate, raw_proba
from model_zoo.prompting.lm import BUNDLED, DEFAULT_LM, bundled_lms, load_lm, locate_lm
from model_zoo.prompting.model import PromptedLM
from model_zoo.prompting.stored import CARD_KEY, card, load_stored, save, template_from_card
from model_zoo.prompting.template import (
    Demonstration,
    DemonstrationError,
    PromptError,
    PromptTemplate,
    Segment,
    TemplateError,
    VerbaliserError,
    parse_verbaliser,
)


def load_prompt_classifier(base: str, template: PromptTemplate, device: str = "auto",
                           model_id: str = "prompt-classifier") -> ModelHandle:
    """A prompt classifier straight from a base LM name and a template (not stored).

    Raises:
        PromptError: the template cannot be used. ModelLoadError: the LM cannot be loaded.
    """
    dev = loading.resolve_device(device)
    lm, tokenizer, source = load_lm(base, dev)
    return build(lm, tokenizer, template, base=base, device=dev,
                 info={"id": model_id, "source": "prompt", "base_source": source.kind})


loading.LOADERS.register(CARD_KEY, load_stored)

__all__ = [
    "BUNDLED", "CARD_KEY", "DEFAULT_LM", "Demonstration", "DemonstrationEffects", "DemonstrationError",
    "PromptError", "PromptScores", "PromptSpec", "PromptTemplate", "PromptedLM", "Segment", "TemplateError",
    "VerbaliserError", "WordTokens", "build", "bundled_lms", "calibrate", "card", "demonstration_effects",
    "evaluate", "is_prompt_classifier", "load_lm", "load_prompt_classifier", "load_stored", "locate_lm",
    "parse_verbaliser", "prior", "prompt_text", "raw_proba", "rebuild", "save", "segment_mass", "spec_of",
    "template_from_card", "verbaliser_report", "whole_prompt",
]
