"""Scoring a prompt classifier on labelled sentences, before and after contextual calibration, in one pass."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model_zoo.handle import ModelHandle, PassShape
from model_zoo.prompting.classifier import _spec, prior, text_ids
from model_zoo.prompting.model import PromptedLM
from model_zoo.prompting.template import PromptError

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class PromptScores:
    """Accuracy and macro F1 of one prompt classifier on ``n`` sentences, uncalibrated and calibrated.

    ``probs``/``probs_calibrated`` are the label probabilities per sentence; ``prior`` is p_cf.
    """

    n: int
    accuracy: float
    f1_macro: float
    accuracy_calibrated: float
    f1_macro_calibrated: float
    prior: tuple[float, ...]
    predicted_share: tuple[float, ...]  # share of sentences predicted as each label, uncalibrated
    predicted_share_calibrated: tuple[float, ...]
    seconds: float
    probs: np.ndarray
    probs_calibrated: np.ndarray

    def metrics(self, calibrated: bool) -> dict[str, float | int]:
        """The card's metrics entry for one setting."""
        if calibrated:
            return {"accuracy": self.accuracy_calibrated, "f1_macro": self.f1_macro_calibrated, "n": self.n,
                    "accuracy_uncalibrated": self.accuracy}
        return {"accuracy": self.accuracy, "f1_macro": self.f1_macro, "n": self.n,
                "accuracy_calibrated": self.accuracy_calibrated}


def _f1_macro(y: np.ndarray, pred: np.ndarray, n_labels: int) -> float:
    scores = []
    for c in range(n_labels):
        tp = float(np.sum((pred == c) & (y == c)))
        fp = float(np.sum((pred == c) & (y != c)))
        fn = float(np.sum((pred != c) & (y == c)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def calibrate(probs: np.ndarray, p_cf: Sequence[float]) -> np.ndarray:
    """Contextual calibration: each row divided by ``p_cf``, renormalised."""
    out = np.asarray(probs, dtype=float) / np.asarray(p_cf, dtype=float)
    return out / out.sum(axis=1, keepdims=True)


def raw_proba(handle: ModelHandle, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
    """Uncalibrated label probabilities of ``texts``, whatever the handle's calibration setting (the same LM pass,
    length-sorted batches; each batch counts one pass)."""
    model = handle.model
    if not isinstance(model, PromptedLM):
        raise PromptError(f"{handle.id} is not a prompt classifier.")
    ids = text_ids(handle, texts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = np.zeros((len(ids), handle.num_labels))
    bs = batch_size or handle.batch_size
    with torch.inference_mode():
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            with handle.use():
                handle.count_pass(shape=PassShape(len(idx), max(1, max(len(ids[i]) for i in idx)), False))
                rows = [model.get_input_embeddings()(torch.tensor(ids[i], dtype=torch.long, device=model.device))
                        for i in idx]
                out[idx] = model.score_texts(rows).exp().double().cpu().numpy()
    return out


def evaluate(handle: ModelHandle, texts: Sequence[str], labels: Sequence[int], batch_size: int = 16,
             progress: Progress | None = None) -> PromptScores:
    """Score ``handle`` on labelled texts, with and without calibration (whichever its template says, both are
    reported), calling ``progress(done, total)`` after each batch.

    Raises:
        PromptError: not a prompt classifier, no texts, or labels outside the classes.
    """
    _spec(handle)
    if not texts or len(texts) != len(labels):
        raise PromptError("Give as many labels as texts, and at least one text.")
    y = np.asarray(labels, dtype=int)
    if y.min() < 0 or y.max() >= handle.num_labels:
        raise PromptError("A label is not one of this classifier's classes.")
    start = time.perf_counter()
    parts = []
    for s in range(0, len(texts), batch_size):
        parts.append(raw_proba(handle, list(texts[s:s + batch_size]), batch_size=batch_size))
        if progress is not None:
            progress(min(s + batch_size, len(texts)), len(texts))
    probs = np.concatenate(parts)
    p_cf = prior(handle)
    cal = calibrate(probs, p_cf)
    pred, pred_cal = probs.argmax(1), cal.argmax(1)
    k = handle.num_labels
    return PromptScores(
        n=len(y), accuracy=float(np.mean(pred == y)), f1_macro=_f1_macro(y, pred, k),
        accuracy_calibrated=float(np.mean(pred_cal == y)), f1_macro_calibrated=_f1_macro(y, pred_cal, k),
        prior=tuple(p_cf), predicted_share=tuple(float(np.mean(pred == c)) for c in range(k)),
        predicted_share_calibrated=tuple(float(np.mean(pred_cal == c)) for c in range(k)),
        seconds=round(time.perf_counter() - start, 3), probs=probs, probs_calibrated=cal)
