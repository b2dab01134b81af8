"""LIME's sampling after issue 13: what ``LimeTextExplainer`` draws, cheaper, and a budget per sentence length."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils import check_random_state

from explainers import REGISTRY
from explainers.lime_text import LimeConfig, neighbourhood, sample_count


def _lime_text_explainer_rows(n_words: int, num_samples: int, seed: int) -> np.ndarray:
    """``LimeTextExplainer.__data_labels_distances``' sampling, as lime 0.2 writes it."""
    random_state = check_random_state(seed)
    sample = random_state.randint(1, n_words + 1, num_samples - 1)
    data = np.ones((num_samples, n_words))
    features_range = range(n_words)
    for i, size in enumerate(sample, start=1):
        inactive = random_state.choice(features_range, size, replace=False)
        data[i, inactive] = 0
    return data


@pytest.mark.parametrize(("n_words", "num_samples", "seed"), [(1, 20, 0), (7, 200, 3), (30, 900, 0), (64, 50, 11)])
def test_neighbourhood_is_lime_text_explainers(n_words: int, num_samples: int, seed: int) -> None:
    np.testing.assert_array_equal(neighbourhood(n_words, num_samples, seed),
                                  _lime_text_explainer_rows(n_words, num_samples, seed))


@pytest.mark.parametrize(("n_words", "expected"), [(3, 100), (10, 100), (17, 170), (30, 300), (80, 500)])
def test_default_budget_is_ten_samples_a_word_between_100_and_500(n_words: int, expected: int) -> None:
    assert sample_count(n_words, LimeConfig()) == expected
    assert sample_count(n_words, LimeConfig(samples_per_word=0)) == 500  # a fixed budget, as LimeTextExplainer's
    assert sample_count(n_words, LimeConfig(num_samples=40)) == 40  # a server's cap on num_samples still holds


def test_lime_draws_the_per_word_budget(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(["a fine film"] * 10)  # 30 words
    a = REGISTRY["lime"].explain(tiny_handle, text)
    assert a.extras["samples"] == 300 and a.extras["distinct_texts"] <= 300
    fixed = REGISTRY["lime"].explain(tiny_handle, text, config=LimeConfig(num_samples=120, samples_per_word=0))
    assert fixed.extras["samples"] == 120
