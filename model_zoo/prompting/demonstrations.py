"""Which demonstration mattered: leave-one-out effects, and the attribution mass on each part of the prompt.

Leave-one-out: the prompt with every demonstration, and the prompt without demonstration *i* for each *i*, score
the same text in one batched call (with calibration on, each variant's content-free prior is scored in the same
call, since removing a demonstration changes the prior too). The effect of demonstration *i* is

    effect_i = p(target | all demonstrations) - p(target | all but demonstration i)

positive when the demonstration pushed the prediction toward the target class, negative when it pulled away.

Attribution mass: given word scores over the whole prompt body (an explanation made on
:func:`model_zoo.prompting.whole_prompt`), the share of the total absolute score that falls on the instruction,
on each demonstration and on the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model_zoo.handle import ModelHandle, PassShape
from model_zoo.prompting.classifier import _ids, _leading_specials, _spec, chat_frame, text_ids
from model_zoo.prompting.model import PromptedLM
from model_zoo.prompting.template import PromptError, Segment


@dataclass(frozen=True)
class DemonstrationEffects:
    """Leave-one-out effects of the demonstrations on one text's prediction.

    ``full`` are the label probabilities with every demonstration; ``without[i]`` those without demonstration
    ``i``; ``effects[i] = full[target] - without[i][target]``.
    """

    text: str
    target: int
    labels: tuple[str, ...]
    full: tuple[float, ...]
    without: tuple[tuple[float, ...], ...]
    effects: tuple[float, ...]
    demonstrations: tuple[tuple[str, str], ...]  # (text, label) of each
    calibrated: bool
    passes: int

    def flipped(self, i: int) -> bool:
        """Whether leaving demonstration ``i`` out changes the predicted class."""
        return int(np.argmax(self.without[i])) != int(np.argmax(self.full))


def _prompt_ids(model: PromptedLM, handle: ModelHandle, demos_left_out: int | None) -> tuple[list[int], list[int]]:
    """Prefix and suffix ids of the handle's prompt, optionally without one demonstration."""
    spec = _spec(handle)
    template = spec.template if demos_left_out is None else spec.template.without(demos_left_out)
    before, after = chat_frame(spec.lm_tokenizer) if template.chat else ("", "")
    lead = [] if template.chat else _leading_specials(spec.lm_tokenizer)
    r = template.render()
    return lead + _ids(spec.lm_tokenizer, before + r.prefix), _ids(spec.lm_tokenizer, r.suffix + after)


def demonstration_effects(handle: ModelHandle, text: str, target: int | None = None) -> DemonstrationEffects:
    """Leave-one-out effect of each demonstration on ``handle``'s prediction for ``text`` (see the module docstring).

    Raises:
        PromptError: ``handle`` is not a prompt classifier, has no demonstrations, or is a whole-prompt view.
    """
    spec = _spec(handle)
    model = handle.model
    assert isinstance(model, PromptedLM)
    if spec.whole_prompt:
        raise PromptError("Leave-one-out needs the prompt classifier itself, not its whole-prompt view.")
    demos = spec.template.demonstrations
    if not demos:
        raise PromptError("This prompt has no demonstrations (it is zero-shot).")
    ids = text_ids(handle, [text])[0]
    cf_ids = model.content_free_ids
    variants = [_prompt_ids(model, handle, None), *(_prompt_ids(model, handle, i) for i in range(len(demos)))]
    rows = []
    for prefix, suffix in variants:
        rows.append(prefix + ids + suffix)
        if model.calibrate:
            rows.extend(prefix + cf + suffix for cf in cf_ids)
    per = 1 + (len(cf_ids) if model.calibrate else 0)
    out, passes = [], 0
    with handle.use(), torch.inference_mode():
        for start in range(0, len(rows), handle.batch_size):
            chunk = rows[start:start + handle.batch_size]
            handle.count_pass(shape=PassShape(len(chunk), max(len(r) for r in chunk), False))
            passes += 1
            out.append(model.score_prompts(chunk).exp().double().cpu().numpy())
    probs = np.concatenate(out)
    scored = []
    for v in range(len(variants)):
        block = probs[v * per:(v + 1) * per]
        p = block[0]
        if model.calibrate:
            p = p / block[1:].mean(axis=0)
            p = p / p.sum()
        scored.append(p)
    full = scored[0]
    target = int(np.argmax(full)) if target is None else int(target)
    if not 0 <= target < len(full):
        raise PromptError(f"Target {target} is not a class of this model.")
    without = scored[1:]
    return DemonstrationEffects(
        text=text, target=target, labels=tuple(handle.label_names), full=tuple(float(x) for x in full),
        without=tuple(tuple(float(x) for x in w) for w in without),
        effects=tuple(float(full[target] - w[target]) for w in without),
        demonstrations=tuple((d.text, d.label) for d in demos), calibrated=model.calibrate, passes=passes)


def segment_mass(segments: Sequence[Segment], words: Sequence[tuple[int, int, float]]) -> list[float]:
    """The share of the total absolute word score on each segment (a word belongs where it starts).

    Args:
        segments: the prompt body's parts (:meth:`PromptTemplate.segments_for`).
        words: ``(start, end, score)`` of each word of the body.
    Returns:
        One share per segment (0..1; they add up to 1 unless every score is 0 or a word lies in a separator).
    """
    total = sum(abs(s) for _, _, s in words)
    out = []
    for seg in segments:
        mass = sum(abs(s) for a, _, s in words if seg.start <= a < seg.end)
        out.append(float(mass / total) if total > 0 else 0.0)
    return out
