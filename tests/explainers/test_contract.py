"""Every explainer in the registry obeys the same contract (on the tiny random BERT)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import explainers
from explainers import REGISTRY, Attribution, ExplainerError
from explainers.base import register
from explainers.captum_ig import baseline_ids
from model_zoo import EmptyTextError

TEXT = "The plot was thin, but the acting was wonderful and the score unforgettable."
# Cheap settings so the suite stays fast; the defaults are exercised by the bench and real-model tests.
FAST = {
    "ig": {"n_steps": 16, "internal_batch_size": 16},
    "shap": {"max_evals": 60},
    "lime": {"num_samples": 60},
}
NAMES = sorted(REGISTRY)


def _config(name: str):  # type: ignore[no-untyped-def]
    return REGISTRY[name].Config(**FAST.get(name, {}))


def _explain(handle, name: str, text: str = TEXT, target: int | None = None) -> Attribution:  # type: ignore[no-untyped-def]
    return REGISTRY[name].explain(handle, text, target, _config(name))


def test_registry_has_the_required_methods() -> None:
    assert {"ig", "saliency", "grad_x_input", "ablation", "shap", "lime", "attention"} <= set(REGISTRY)
    assert set(explainers.DEFAULT_METHODS) <= set(REGISTRY)


def test_registry_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(REGISTRY["ig"])


ONE_PASS = {"saliency", "grad_x_input", "attention"}


@pytest.mark.parametrize("name", NAMES)
def test_shapes_offsets_and_words(tiny_handle, name: str) -> None:  # type: ignore[no-untyped-def]
    a = _explain(tiny_handle, name)
    assert len(a.tokens) == len(a.scores) == len(a.offsets) == len(a.special)
    assert a.method == name and a.signed == REGISTRY[name].signed
    for (start, end), special, token in zip(a.offsets, a.special, a.tokens):
        assert 0 <= start <= end <= len(a.text)
        if not special:
            assert a.text[start:end].lower() == token.removeprefix("##")
    assert [w.text for w in a.words] == TEXT.split()
    for w in a.words:
        assert a.text[w.start:w.end] == w.text
        assert w.score == pytest.approx(sum(a.scores[i] for i in w.tokens))
        assert not any(a.special[i] for i in w.tokens)
    # the prediction and the attribution: one pass where the method's own pass predicts (issue 13)
    assert (a.cost.passes == 1 if name in ONE_PASS else a.cost.passes >= 2) and a.cost.seconds > 0
    assert np.isclose(sum(a.probs), 1.0) and not a.truncated
    if not a.signed:
        assert min(a.scores) >= 0


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_target_honoured(tiny_handle, name: str) -> None:  # type: ignore[no-untyped-def]
    first, second = _explain(tiny_handle, name), _explain(tiny_handle, name)
    assert first.scores == second.scores
    assert first.target == int(np.argmax(first.probs))
    for target in (0, 1):
        assert _explain(tiny_handle, name, target=target).target == target
    with pytest.raises(ExplainerError, match="not a class"):
        _explain(tiny_handle, name, target=5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_refused(tiny_handle, name: str, text: str) -> None:  # type: ignore[no-untyped-def]
    with tiny_handle.meter() as passes, pytest.raises(EmptyTextError):
        _explain(tiny_handle, name, text)
    assert passes[0] == 0


@pytest.mark.parametrize("name", NAMES)
def test_long_text_truncated(tiny_handle, name: str) -> None:  # type: ignore[no-untyped-def]
    text = ("An endless review that keeps going. " * 150)[:5000]
    a = _explain(tiny_handle, name, text)
    assert a.truncated and len(a.tokens) == tiny_handle.max_length
    assert a.words[-1].end < len(text)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "text",
    ["Loved it 😍🎬!!", "这部电影非常好看", "tab\there\x00nul\x07bell", "🙂",
     '"><img src=x onerror=alert(1)><script>alert(1)</script>'],
)
def test_odd_text_does_not_crash(tiny_handle, name: str, text: str) -> None:  # type: ignore[no-untyped-def]
    a = _explain(tiny_handle, name, text)
    assert len(a.scores) == len(a.tokens) and all(np.isfinite(a.scores))


def test_ig_completeness(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    sentences = ["good", "a bad film", "not great, not terrible", "I loved every minute of it",
                 "the worst thing I have seen this year", "meh", "an instant classic with a superb cast",
                 "boring and far too long", "funny, warm and clever", "why would anyone make this?"]
    ig = REGISTRY["ig"]
    for text in sentences:
        a = ig.explain(tiny_handle, text, target=1)
        enc = tiny_handle.encode(text)
        with torch.no_grad():
            fx = tiny_handle.forward_probs(enc.input_ids, enc.attention_mask)[0, 1].item()
            fb = tiny_handle.forward_probs(baseline_ids(tiny_handle, enc), enc.attention_mask)[0, 1].item()
        gap = abs(sum(a.scores) - (fx - fb))
        assert gap <= 0.05 * abs(fx - fb) + 1e-3, (text, gap, fx - fb)
        assert a.extras["convergence_delta"] == pytest.approx(gap, abs=1e-4)


def test_shap_additivity(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    for text in ["a fine and moving film", "dull, dull, dull", TEXT]:
        a = REGISTRY["shap"].explain(tiny_handle, text, config=REGISTRY["shap"].Config(max_evals=100))
        fx = tiny_handle.predict_proba([text])[0]
        values, base = a.extras["values_all_classes"], a.extras["base_values"]
        for c in range(tiny_handle.num_labels):
            assert abs(base[c] + values[:, c].sum() - fx[c]) < 1e-3
        assert np.allclose(values[:, a.target], a.scores)


def test_attention_views_are_offline_and_escaped(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    from explainers.attention import bertviz_html

    payload = '"><img src=x onerror=alert(1)><script>alert(1)</script>'
    a = REGISTRY["attention"].explain(tiny_handle, payload)
    att = a.extras["attentions"]
    assert att.shape == (2, 4, len(a.tokens), len(a.tokens))
    assert np.allclose(att.sum(-1), 1.0, atol=1e-5)
    for view in ("head", "model"):
        page = bertviz_html(a, view)
        # everything inline, nothing fetched
        assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*href=", page)
        assert "window.requirejs=" in page and "d3" in page
        assert "<img src=x" not in page and "<script>alert" not in page


@given(st.text(min_size=1, max_size=200))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_saliency_any_text(tiny_handle, text: str) -> None:  # type: ignore[no-untyped-def]
    if not text.strip():
        with pytest.raises(EmptyTextError):
            REGISTRY["saliency"].explain(tiny_handle, text)
        return
    try:
        a = REGISTRY["saliency"].explain(tiny_handle, text)
    except EmptyTextError:  # text with no readable tokens (e.g. only control characters)
        assert not tiny_handle.tokenizer(text, add_special_tokens=False)["input_ids"]
        return
    assert all(np.isfinite(a.scores)) and all(s >= 0 for s in a.scores)
    for w in a.words:
        assert text[w.start:w.end] == w.text


@pytest.mark.parametrize("name", ["ig", "attention"])
def test_round_trip_through_dict(tiny_handle, name: str) -> None:  # type: ignore[no-untyped-def]
    a = _explain(tiny_handle, name)
    b = Attribution.from_dict(a.to_dict(extras=False))
    assert (b.scores, b.words, b.offsets, b.target, b.cost) == (a.scores, a.words, a.offsets, a.target, a.cost)


def test_concurrent_explanations_do_not_mix(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """Sessions share one model; Captum's hooks on it must not leak between threads."""
    from concurrent.futures import ThreadPoolExecutor

    texts = ["alpha bravo charlie delta echo foxtrot golf", "zulu yankee", "a fine film", "dull and long"] * 2
    jobs = [("ig", t) if i % 2 == 0 else ("saliency", t) for i, t in enumerate(texts)]
    expected = [_explain(tiny_handle, m, t).scores for m, t in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda job: _explain(tiny_handle, job[0], job[1]).scores, jobs))
    for e, g in zip(expected, got):
        assert np.allclose(e, g, atol=1e-6)
