"""Invariants on the real default model (rt-sentiment-minilm); built on first use."""

from __future__ import annotations

import pytest
import torch

from explainers import REGISTRY
from explainers.captum_ig import baseline_ids
from model_zoo.data import rotten_tomatoes

pytestmark = pytest.mark.real_model


def test_default_model_is_accurate(real_model_dir) -> None:  # type: ignore[no-untyped-def]
    from model_zoo import store

    card = store.read_card(real_model_dir)
    assert card["metrics"]["test"]["accuracy"] >= 0.82
    assert card["data"]["sizes"]["train"] > 9000 and card["seed"] == card["hyperparameters"]["seed"]


def test_ig_completeness_on_real_model(real_handle) -> None:  # type: ignore[no-untyped-def]
    test = rotten_tomatoes("test")
    for text in test.texts[:10]:
        a = REGISTRY["ig"].explain(real_handle, text)
        enc = real_handle.encode(text)
        with torch.no_grad():
            fx = real_handle.forward_probs(enc.input_ids, enc.attention_mask)[0, a.target].item()
            fb = real_handle.forward_probs(baseline_ids(real_handle, enc), enc.attention_mask)[0, a.target].item()
        assert abs(sum(a.scores) - (fx - fb)) <= 0.05 * abs(fx - fb) + 1e-3, text


def test_sentiment_words_matter(real_handle) -> None:  # type: ignore[no-untyped-def]
    a = REGISTRY["ig"].explain(real_handle, "A dull, lifeless and boring film.")
    assert a.target_label == "negative"
    assert {w.text.strip(",.").lower() for w in a.top_words(3)} & {"dull", "lifeless", "boring"}
