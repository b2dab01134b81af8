"""Integrated Gradients without Captum's hooks and in fewer passes (issue 13) gives Captum's answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers import REGISTRY
from explainers.captum_ig import TOKENS_PER_PASS, baseline_ids, path, steps_per_pass

TEXTS = ["good", "a bad film", "not great, not terrible", "an instant classic with a superb cast"]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("baseline", ["pad", "mask"])
def test_ig_equals_captums_layer_integrated_gradients(tiny_handle, text: str, baseline: str) -> None:  # type: ignore[no-untyped-def]
    from captum.attr import LayerIntegratedGradients

    h, ig = tiny_handle, REGISTRY["ig"]
    a = ig.explain(h, text, 1, ig.Config(n_steps=20, first_steps=0, internal_batch_size=7, baseline=baseline))
    enc = h.encode(text)
    lig = LayerIntegratedGradients(h.forward_probs, h.model.get_input_embeddings())
    with torch.enable_grad():
        attr, delta = lig.attribute(enc.input_ids, baselines=baseline_ids(h, enc, baseline), target=1,
                                    additional_forward_args=(enc.attention_mask,), n_steps=20,
                                    method="gausslegendre", return_convergence_delta=True)
    expected = attr.sum(dim=-1)[0].detach().numpy()
    np.testing.assert_allclose(a.scores, expected, rtol=1e-4, atol=1e-6)
    assert a.extras["convergence_delta"] == pytest.approx(abs(delta.item()), abs=1e-5)
    np.testing.assert_allclose(a.probs, h.predict_proba([text])[0], atol=1e-6)


def test_ig_makes_two_passes_on_a_short_text(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """The text and its baseline in one pass (prediction, both ends of the delta), the 50 path points in one
    more; Captum's way took five (a prediction, two halves of the path, each end of the delta apart)."""
    ig = REGISTRY["ig"]
    with tiny_handle.meter() as meter:
        a = ig.explain(tiny_handle, "a fine, warm film", config=ig.Config(first_steps=0))
    assert a.cost.passes == meter.total == 2 and a.extras["n_steps"] == 50
    assert [s.batch for s in meter.shapes] == [2, 50] and [s.grad for s in meter.shapes] == [False, True]


def test_ig_stops_at_first_steps_when_the_delta_is_within_tolerance(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """24 Gauss-Legendre steps first (here 16); 50 only where they leave the scores' sum further than the tolerance from
    f(x) - f(baseline). Either way the answer is exactly IG at that many steps."""
    ig, text = REGISTRY["ig"], "a fine, warm film"
    with tiny_handle.meter() as meter:
        quick = ig.explain(tiny_handle, text, 1, ig.Config(first_steps=16, tolerance=1.0))
    assert quick.extras["n_steps"] == 16 and [s.batch for s in meter.shapes] == [2, 16]
    assert quick.scores == ig.explain(tiny_handle, text, 1, ig.Config(n_steps=16, first_steps=0)).scores
    with tiny_handle.meter() as meter:
        full = ig.explain(tiny_handle, text, 1, ig.Config(first_steps=16, tolerance=0.0))
    assert full.extras["n_steps"] == 50 and [s.batch for s in meter.shapes] == [2, 16, 50]
    assert full.scores == ig.explain(tiny_handle, text, 1, ig.Config(first_steps=0)).scores
    assert full.extras["convergence_delta"] <= quick.extras["convergence_delta"]


def test_a_long_text_spreads_the_path_over_more_passes(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    text = "a fine, warm film " * 40
    seq = len(tiny_handle.encode(text).tokens)
    per_pass = steps_per_pass(50, seq)
    assert per_pass * seq <= TOKENS_PER_PASS < 50 * seq
    with tiny_handle.meter() as meter:
        REGISTRY["ig"].explain(tiny_handle, text, config=REGISTRY["ig"].Config(first_steps=0))
    assert [s.batch for s in meter.shapes[1:]] == [per_pass] * (50 // per_pass) + (
        [50 % per_pass] if 50 % per_pass else [])


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid"])
def test_integration_rules_weigh_the_whole_path(rule: str) -> None:
    alphas, weights = path(12, rule)
    assert len(alphas) == len(weights) == 12 and 0 <= alphas.min() and alphas.max() <= 1
    assert weights.sum() == pytest.approx(1.0)  # Captum's trapezoid weights sum to (n-1)/n
    assert (weights * alphas).sum() == pytest.approx(0.5)  # integrates t exactly


def test_gauss_legendre_points_are_captums() -> None:
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters("gausslegendre")
    ours = path(16, "gausslegendre")
    np.testing.assert_allclose(ours[0], alphas(16), atol=1e-12)
    np.testing.assert_allclose(ours[1], step_sizes(16), atol=1e-12)


def test_truncated_flag_only_when_tokens_were_cut(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """The encoder tokenizes a text twice only when it fills the limit; the flag must stay exact at the edge."""
    h = tiny_handle
    words = ["film"] * (h.max_length - 2)  # one token each, plus [CLS] and [SEP]: exactly the limit
    exact = h.encode(" ".join(words))
    assert len(exact.tokens) == h.max_length and not exact.truncated
    over = h.encode(" ".join([*words, "film"]))
    assert len(over.tokens) == h.max_length and over.truncated
    assert not h.encode("a fine film").truncated
