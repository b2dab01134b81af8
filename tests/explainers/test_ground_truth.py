"""Explanations checked against known answers: a model whose decision is a planted word, hand-computed
values, and the model-parameter randomisation sanity check (Adebayo et al., 2018)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers import REGISTRY, Attribution
from explainers.base import Cost, compose_words, word_view
from explainers.captum_gradients import embedding_layer
from explainers.metrics import agreement
from explainers.sanity import randomisation_check, randomised, stages, step_names
from tests.conftest import GT_TRIGGERS, ground_truth_sentences

# Cheap settings; the trigger must still come out on top with them.
FAST = {"ig": {"n_steps": 16, "internal_batch_size": 16}, "shap": {"max_evals": 120}, "lime": {"num_samples": 200}}
FAITHFUL = sorted(name for name, e in REGISTRY.items() if e.claims_faithfulness)
SENTENCES, LABELS = ground_truth_sentences(6, seed=7)


def _explain(handle, name: str, text: str, target: int | None = None) -> Attribution:  # type: ignore[no-untyped-def]
    return REGISTRY[name].explain(handle, text, target, REGISTRY[name].Config(**FAST.get(name, {})))


def test_ground_truth_model_decides_by_the_trigger(ground_truth_handle) -> None:  # type: ignore[no-untyped-def]
    probs = ground_truth_handle.predict_proba(SENTENCES)
    assert list(probs.argmax(axis=1)) == LABELS
    removed = [" ".join(w for w in t.split() if w not in GT_TRIGGERS) for t in SENTENCES]
    # Without its trigger a sentence carries no evidence: the prediction falls back toward 50/50.
    drop = probs.max(axis=1) - ground_truth_handle.predict_proba(removed)[np.arange(len(LABELS)), LABELS]
    assert (drop > 0.1).all()


def test_faithful_explainers_are_declared() -> None:
    assert {"ig", "shap", "lime", "ablation"} <= set(FAITHFUL)
    assert "attention" not in FAITHFUL and "grad_x_input" not in FAITHFUL


@pytest.mark.parametrize("name", FAITHFUL)
def test_faithful_explainer_ranks_the_trigger_first(ground_truth_handle, name: str) -> None:  # type: ignore[no-untyped-def]
    for text, label in zip(SENTENCES, LABELS):
        a = _explain(ground_truth_handle, name, text)
        assert a.target == label
        trigger = next(w for w in text.split() if w in GT_TRIGGERS)
        assert a.top_words(1)[0].text == trigger, (name, text, [(w.text, round(w.score, 4)) for w in a.words])


@pytest.mark.parametrize("name", FAITHFUL)
def test_faithful_explainer_at_its_defaults_ranks_the_trigger_first(ground_truth_handle, name: str) -> None:  # type: ignore[no-untyped-def]
    """What a user gets without touching a setting (budgets that stop early included) finds the planted word."""
    for text, label in zip(SENTENCES[:3], LABELS[:3]):
        a = REGISTRY[name].explain(ground_truth_handle, text)
        trigger = next(w for w in text.split() if w in GT_TRIGGERS)
        assert a.target == label and a.top_words(1)[0].text == trigger, (name, text)


def test_gradient_x_input_multiplies_the_embedding_layer_output(ground_truth_handle) -> None:  # type: ignore[no-untyped-def]
    """By hand: d p(target) / d e . e with e the embedding module's output (word + position + type, LayerNorm)."""
    h = ground_truth_handle
    text = SENTENCES[0]
    a = REGISTRY["grad_x_input"].explain(h, text)
    enc = h.encode(text)
    layer = embedding_layer(h.model)
    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output):  # type: ignore[no-untyped-def]
        captured.append(output.detach().requires_grad_())
        return captured[-1]  # the rest of the model runs on this leaf, so its gradient is d p / d e

    hook = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            h.forward_probs(enc.input_ids, enc.attention_mask)[0, a.target].backward()
    finally:
        hook.remove()
    e = captured[0]
    expected = (e.grad * e).sum(dim=-1)[0].detach().numpy()
    np.testing.assert_allclose(a.scores, expected, rtol=1e-4, atol=1e-7)
    # The old computation (gradient x raw word embedding) is a different number: it sums to
    # -grad . (position + type embedding) because LayerNorm ignores shifts of its input.
    assert not np.allclose(a.scores, 0.0)


def test_lime_removes_words_exactly_as_the_metrics_do(tiny_handle, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    text = "The plot was thin, but the acting was wonderful."
    words = text.split()
    seen: list[str] = []
    original = type(tiny_handle).predict_proba

    def record(self, texts, batch_size=None):  # type: ignore[no-untyped-def]
        seen.extend(texts)
        return original(self, texts, batch_size)

    monkeypatch.setattr(type(tiny_handle), "predict_proba", record)
    a = REGISTRY["lime"].explain(tiny_handle, text, config=REGISTRY["lime"].Config(num_samples=100))
    perturbed = seen[1:]  # the first call is the prediction itself
    assert perturbed and not any("UNKWORDZ" in t for t in perturbed)
    for t in perturbed:  # each is the text with some words deleted, in order, single-spaced
        kept = t.split()
        it = iter(words)
        assert all(w in it for w in kept), t
    assert len(perturbed) == len(set(perturbed)) == a.extras["distinct_texts"]
    seen.clear()
    REGISTRY["lime"].explain(tiny_handle, text, config=REGISTRY["lime"].Config(num_samples=100, perturbation="mask"))
    assert all(len(t.split()) == len(words) for t in seen[1:]) and any("[MASK]" in t for t in seen[1:])


def test_ablation_removes_a_word_whole(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """A word's score is the drop when all its word-pieces are masked at once (not a sum of single pieces)."""
    text = "The plot was thin, but the acting was wonderful and the score unforgettable."
    a = REGISTRY["ablation"].explain(tiny_handle, text)
    for word in ("unforgettable.", "thin,"):
        pieces = len(tiny_handle.tokenizer.tokenize(word))
        assert pieces > 1
        masked = text.replace(word, " ".join(["[MASK]"] * pieces))
        p = tiny_handle.predict_proba([text, masked])[:, a.target]
        score = next(w.score for w in a.words if w.text == word)
        assert score == pytest.approx(p[0] - p[1], rel=1e-4, abs=1e-9), word


def _attribution(scores: list[float], signed: bool, method: str = "m") -> Attribution:
    text = "alpha beta gamma delta"
    offsets = [(0, 0), (0, 5), (6, 10), (11, 16), (17, 22), (0, 0)]
    special = [True, False, False, False, False, True]
    full = np.array([0.0, *scores, 0.0])
    return Attribution(text, ("[CLS]", "alpha", "beta", "gamma", "delta", "[SEP]"), tuple(offsets), tuple(special),
                       tuple(full), word_view(text, offsets, special, full, len(text)), 0, ("a", "b"), (0.6, 0.4),
                       signed, method, {}, Cost(1, 0.1))


def test_top_words_rank_toward_the_target() -> None:
    a = _attribution([0.2, -0.9, 0.5, 0.1], signed=True)
    # beta pushes hardest *against* the target: it is the last of the top words, not the first.
    assert [w.text for w in a.top_words(4)] == ["gamma", "alpha", "delta", "beta"]


def test_overlap_and_flag_words_rank_the_same_way() -> None:
    signed = _attribution([0.2, -0.9, 0.5, 0.1], signed=True, method="s")
    unsigned = _attribution([0.1, 0.9, 0.2, 0.0], signed=False, method="u")
    ag = agreement(signed, unsigned, k=1)
    # The signed top word is gamma, the unsigned one beta: they do not overlap.
    assert {w.text for w in signed.top_words(1)} != {w.text for w in unsigned.top_words(1)}
    assert ag.top_k_overlap == 0.0


def test_compose_words_is_the_one_perturbation() -> None:
    assert compose_words(["a", "b", "c"], [True, False, True]) == "a c"
    assert compose_words(["a", "b", "c"], [True, False, True], "[MASK]") == "a [MASK] c"


# --- sanity checks -------------------------------------------------------------------------------------

def test_cascade_covers_head_layers_and_embeddings(ground_truth_handle) -> None:  # type: ignore[no-untyped-def]
    names = step_names(ground_truth_handle)
    assert names[0] == "classifier head" and names[-1] == "all weights" and len(names) == 2 + 2
    assert len(stages(ground_truth_handle.model)) == len(names)


def test_randomised_copy_leaves_the_original_alone(ground_truth_handle) -> None:  # type: ignore[no-untyped-def]
    h = ground_truth_handle
    before = {k: v.clone() for k, v in h.model.state_dict().items()}
    head_only = randomised(h, 1)
    changed = [k for k, v in head_only.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(k.startswith(("classifier", "bert.pooler")) for k in changed)
    assert all(torch.equal(v, before[k]) for k, v in h.model.state_dict().items())
    assert randomised(h, 1) is head_only  # cached


def test_randomisation_destroys_faithful_explanations(ground_truth_handle) -> None:  # type: ignore[no-untyped-def]
    h = ground_truth_handle
    for name in ("ablation", "ig"):
        a = _explain(h, name, SENTENCES[0])
        r = randomisation_check(h, a, REGISTRY[name].Config(**FAST.get(name, {})), depths=[1, 4])
        assert r.steps == ("classifier head", "all weights")
        assert r.passed, (name, r)
        assert abs(r.final) < 0.5 and "Depends on the model" in r.sentence()


def test_sanity_check_catches_an_explainer_that_ignores_the_model(ground_truth_handle) -> None:  # type: ignore[no-untyped-def]
    """A map that is a property of the text (word length) must fail the check."""
    from explainers.base import BaseExplainer

    class WordLength(BaseExplainer):
        name = "word_length_test_only"
        title = "Word length"
        Config = REGISTRY["ablation"].Config
        signed = False

        def _attribute(self, handle, enc, text, target, config):  # type: ignore[no-untyped-def]
            return np.array([0.0 if s else float(b - a) for (a, b), s in zip(enc.offsets, enc.special)]), {}

    import explainers.base as base

    fake = WordLength()
    base.register(fake)
    try:
        a = fake.explain(ground_truth_handle, "a quite excellent movie about this plot")
        r = randomisation_check(ground_truth_handle, a)
        assert r.final == pytest.approx(1.0) and r.passed is False and "Barely depends" in r.sentence()
    finally:
        base.REGISTRY.unregister(fake.name)


def test_sanity_check_reuses_the_settings_of_the_explanation(ground_truth_handle) -> None:  # type: ignore[no-untyped-def]
    """Without a config, the randomised model is explained with the settings the original was made with."""
    a = _explain(ground_truth_handle, "ig", SENTENCES[0])  # 16 steps in one batch, not the default 50 in two
    r = randomisation_check(ground_truth_handle, a)
    assert r.passes == a.cost.passes
