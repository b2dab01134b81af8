"""LIME (Ribeiro et al., 2016): a weighted linear model fit to predictions on texts with words removed.

The neighbourhood is built here, not by ``LimeTextExplainer``: its text mode (``bow=False``) puts the
literal string ``UNKWORDZ`` (four out-of-vocabulary word-pieces) where a word was removed. Loupe removes
whitespace words exactly as the faithfulness metrics do (:func:`explainers.base.compose_words`), or puts the
tokenizer's ``[MASK]`` there, so LIME is scored by the same kind of change it was fit on. Sampling, distance
and kernel follow ``LimeTextExplainer``; the fit is LIME's own ``LimeBase``. Duplicate perturbations (a
short text has few distinct ones) are sent to the model once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explainers.base import BaseExplainer, compose_words, registered, token_words, word_spans
from model_zoo.handle import Encoded, ModelHandle

MIN_SAMPLES = 100  # the fewest perturbed texts a per-word budget draws (a short text's are mostly duplicates)


@dataclass
class LimeConfig:
    num_samples: int = field(default=500, metadata={"help": "Perturbed texts to fit the local model on, at most "
                                                            "(see samples_per_word)",
                                                    "min": 20, "max": 20000, "hosted_max": 2000})
    samples_per_word: int = field(default=10, metadata={
        "help": "Perturbed texts per word of the text, at least 100 and at most num_samples (0: always "
                "num_samples)", "min": 0, "max": 1000})
    seed: int = field(default=0, metadata={"help": "Random seed of the sampling", "min": 0, "max": 2**31 - 1})
    kernel_width: float = field(default=25.0, metadata={"help": "Width of the proximity kernel",
                                                        "min": 0.1, "max": 1000.0})
    perturbation: str = field(default="delete", metadata={
        "help": "What happens to a removed word: deleted (as the faithfulness metrics do) or replaced by [MASK]",
        "choices": ["delete", "mask"]})


def neighbourhood(n_words: int, num_samples: int, seed: int) -> np.ndarray:
    """LIME's text sampling: row 0 keeps every word; each other row drops a uniform number (1..n) of them."""
    from sklearn.utils import check_random_state

    rng = check_random_state(seed)
    sizes = rng.randint(1, n_words + 1, num_samples - 1)
    data = np.ones((num_samples, n_words))
    for i, size in enumerate(sizes, start=1):
        # LimeTextExplainer's rng.choice(range(n), size, replace=False) is permutation(n)[:size] inside: the
        # same draws, without turning the range into an array each row (~30 ms of 900 rows).
        data[i, rng.permutation(n_words)[:size]] = 0
    return data


def sample_count(n_words: int, config: LimeConfig) -> int:
    """How many perturbed texts LIME draws for a text of ``n_words`` words.

    A linear model with one weight a word needs more samples the more words it has: ``samples_per_word`` a
    word, at least :data:`MIN_SAMPLES`, at most ``num_samples``. Measured on 34 Rotten Tomatoes test sentences
    with the default model (bench/budget.py): 10 a word gives a comprehensiveness AOPC 0.009 above ferret's
    budget (min(tokens^2, 5000) samples) with a quarter of its distinct texts; a fixed 150 was as good on
    sentences under 20 words and 0.017 worse on longer ones.
    """
    if config.samples_per_word <= 0:
        return int(config.num_samples)
    return int(min(config.num_samples, max(MIN_SAMPLES, config.samples_per_word * n_words)))


def cosine_distance(data: np.ndarray) -> np.ndarray:
    """LIME's distance of each binary row to the all-ones row: cosine distance times 100 (1 when empty)."""
    kept = data.sum(axis=1)
    return (1.0 - np.sqrt(kept / data.shape[1])) * 100


@registered
class Lime(BaseExplainer):
    name = "lime"
    title = "LIME"
    Config = LimeConfig
    signed = True
    description = ("Removes random subsets of words (deleted, or replaced by [MASK]) and fits a weighted "
                   "linear model to the target probability; each word's weight is its score.")

    def _attribute(self, handle: ModelHandle, enc: Encoded, text: str, target: int,
                   config: Any) -> tuple[np.ndarray, dict[str, Any]]:
        from lime.lime_base import LimeBase

        spans = word_spans(text, enc.explained_chars)
        words = [text[a:b] for a, b in spans]
        data = neighbourhood(len(words), sample_count(len(words), config), config.seed)
        fill = handle.tokenizer.mask_token if config.perturbation == "mask" else None
        texts = [compose_words(words, row.astype(bool), fill) for row in data]
        index = {t: i for i, t in enumerate(dict.fromkeys(texts))}
        labels = handle.predict_proba(list(index))[[index[t] for t in texts]]

        def kernel(d: np.ndarray) -> np.ndarray:
            return np.sqrt(np.exp(-(d**2) / config.kernel_width**2))

        intercept, weights, r2, _ = LimeBase(kernel, random_state=config.seed).explain_instance_with_data(
            data, labels, cosine_distance(data), target, num_features=len(words), feature_selection="none")
        # Spread each word's weight evenly over its word-pieces, so the word view sums back to it.
        owner = np.array(token_words(enc.offsets, enc.special, spans))
        scores = np.zeros(len(enc.tokens))
        for feature, weight in weights:
            inside = owner == feature
            scores[inside] = weight / max(1, inside.sum())
        return scores, {"r2": float(r2), "intercept": float(intercept), "samples": len(data),
                        "distinct_texts": len(index)}
