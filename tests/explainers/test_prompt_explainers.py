"""Every explainer on a prompt classifier, through the same contract as on any classifier.

A tiny causal LM is trained, through its prompt, to answer ``positive``/``negative`` by one planted word; the
explainers that claim faithfulness must rank that word first. IG completeness, SHAP additivity, faithfulness, the
sanity check and whole-prompt attributions run on the prompt classifier too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explainers import REGISTRY, Attribution
from explainers.metrics import faithfulness
from explainers.sanity import randomisation_check, randomised, stages
from model_zoo import prompting
from model_zoo.prompting import Demonstration, PromptTemplate
from tests.conftest import GT_TRIGGERS, ground_truth_sentences
from tests.model_zoo.test_prompting import build_tiny_lm

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"ig": {"n_steps": 16, "internal_batch_size": 16}, "shap": {"max_evals": 120}, "lime": {"num_samples": 200}}
FAITHFUL = sorted(name for name, e in REGISTRY.items() if e.claims_faithfulness)
SENTENCES, LABELS = ground_truth_sentences(5, seed=7)
TEMPLATE = PromptTemplate(instruction="Is this review positive or negative?", pattern="Review: {text}\nAnswer: {label}",
                          demonstrations=(Demonstration("a good movie", "positive"),
                                          Demonstration("a bad movie", "negative")))




def _explain(handle, name: str, text: str, target: int | None = None) -> Attribution:  # type: ignore[no-untyped-def]
    return REGISTRY[name].explain(handle, text, target, REGISTRY[name].Config(**FAST.get(name, {})))


@pytest.fixture(scope="module")
def gt_prompt(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A prompt classifier over a tiny LM trained (through the prompt) to answer by the planted trigger word."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny_lm(tmp_path_factory.mktemp("gt-lm") / "gt-llama", seed=1)
    lm = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa")
    tok = AutoTokenizer.from_pretrained(folder)
    h = prompting.build(lm, tok, TEMPLATE, base=str(folder), device=torch.device("cpu"))
    model = h.model
    model.train()
    model.requires_grad_(True)
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    for step in range(150):
        texts, labels = ground_truth_sentences(32, seed=2000 + step)
        # Filler words deleted or masked with SHAP's "..." half the time: the decision must rest on the trigger
        # whatever an explainer does to the other words (a real LM has seen ellipses; this one has to learn them).
        texts = [" ".join(w if w in GT_TRIGGERS or rng.random() > 0.3 else rng.choice(["...", ""]) for w in t.split())
                 if rng.random() < 0.5 else t for t in texts]
        texts = [" ".join(t.split()) for t in texts]
        # a quarter without their trigger, answered 50/50: no trigger, no evidence either way
        plain = [" ".join(w for w in t.split() if w not in GT_TRIGGERS) for t in texts[24:]]
        enc = h.tokenizer(texts[:24] + plain, padding=True, return_tensors="pt")
        log_p = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        loss = (torch.nn.functional.nll_loss(log_p[:24], torch.tensor(labels[:24])) * 0.7
                - 0.3 * log_p[:24].mean() - log_p[24:].mean())  # label smoothing keeps gradients alive
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    lm.eval()
    lm.save_pretrained(folder)
    return prompting.load_prompt_classifier(str(folder), TEMPLATE, device="cpu")


def test_the_prompted_model_decides_by_the_trigger(gt_prompt) -> None:  # type: ignore[no-untyped-def]
    probs = gt_prompt.predict_proba(SENTENCES)
    assert list(probs.argmax(axis=1)) == LABELS
    removed = [" ".join(w for w in t.split() if w not in GT_TRIGGERS) for t in SENTENCES]
    drop = probs.max(axis=1) - gt_prompt.predict_proba(removed)[np.arange(len(LABELS)), LABELS]
    assert (drop > 0.1).all()


@pytest.mark.parametrize("name", FAITHFUL)
def test_faithful_explainers_find_the_trigger_through_the_prompt(gt_prompt, name: str) -> None:  # type: ignore[no-untyped-def]
    for text, label in zip(SENTENCES, LABELS):
        a = _explain(gt_prompt, name, text)
        assert a.target == label
        trigger = next(w for w in text.split() if w in GT_TRIGGERS)
        assert a.top_words(1)[0].text == trigger, (name, text, [(w.text, round(w.score, 4)) for w in a.words])


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_explainer_runs_through_the_same_contract(gt_prompt, name: str) -> None:  # type: ignore[no-untyped-def]
    explainer = REGISTRY[name]
    assert explainer.supports(gt_prompt)
    text = "a very excellent story , quite fun"
    a = _explain(gt_prompt, name, text, target=1)
    enc = gt_prompt.encode(text)
    assert list(a.tokens) == enc.tokens  # the user's text only: no template token
    assert [w.text for w in a.words] == text.split()
    np.testing.assert_allclose(a.probs, gt_prompt.predict_proba([text])[0], atol=1e-5)
    assert np.isfinite(a.scores).all() and np.abs(a.scores).sum() > 0
    assert a.cost.passes >= 1


def test_integrated_gradients_is_complete_on_the_prompt(gt_prompt) -> None:  # type: ignore[no-untyped-def]
    text = SENTENCES[0]
    a = REGISTRY["ig"].explain(gt_prompt, text, None, REGISTRY["ig"].Config(n_steps=64))
    enc = gt_prompt.encode(text)
    blank = torch.full_like(enc.input_ids, gt_prompt.tokenizer.pad_token_id)  # the baseline: every token a space
    with torch.no_grad():
        ends = gt_prompt.forward_probs(torch.cat([enc.input_ids, blank]), enc.attention_mask.expand(2, -1))
    assert sum(a.scores) == pytest.approx(float(ends[0, a.target] - ends[1, a.target]), abs=0.02)
    assert a.extras["convergence_delta"] < 0.02


def test_shap_values_add_up_on_the_prompt(gt_prompt) -> None:  # type: ignore[no-untyped-def]
    text = SENTENCES[1]
    a = _explain(gt_prompt, "shap", text)
    assert sum(a.scores) + a.extras["base_value"] == pytest.approx(a.probs[a.target], abs=1e-4)


def test_faithfulness_and_sanity_run_on_the_prompt(gt_prompt) -> None:  # type: ignore[no-untyped-def]
    a = _explain(gt_prompt, "ablation", SENTENCES[2])
    f = faithfulness(gt_prompt, a)
    assert f.baseline is not None and f.comp_aopc > f.baseline.comp_aopc
    names = [n for n, _ in stages(gt_prompt.model)]
    assert names == ["classifier head", "layer 2 of 2", "layer 1 of 2", "embeddings"]
    shuffled = randomised(gt_prompt, len(names))
    assert not np.allclose(shuffled.predict_proba(SENTENCES), gt_prompt.predict_proba(SENTENCES), atol=1e-3)
    result = randomisation_check(gt_prompt, a)
    assert result.final is not None and -1 <= result.final <= 1 and result.passes >= 2
    again = _explain(shuffled, "ablation", SENTENCES[2], a.target)
    assert not np.allclose(again.scores, a.scores, atol=1e-4)  # the randomised copy explains a different model


def test_whole_prompt_attributions_cover_instruction_and_demonstrations(gt_prompt) -> None:  # type: ignore[no-untyped-def]
    text = SENTENCES[3]
    whole = prompting.whole_prompt(gt_prompt)
    body = TEMPLATE.body(text)
    a = _explain(whole, "ablation", body)
    words = [w.text for w in a.words]
    assert words[:5] == ["Is", "this", "review", "positive", "or"] and "good" in words and "bad" in words
    np.testing.assert_allclose(a.probs, gt_prompt.predict_proba([text])[0], atol=1e-5)
    segments = TEMPLATE.segments_for(text)
    mass = prompting.segment_mass(segments, [(w.start, w.end, w.score) for w in a.words])
    assert len(mass) == 4 and sum(mass) == pytest.approx(1.0) and mass[-1] > 0  # the query holds the trigger
    effects = prompting.demonstration_effects(gt_prompt, text)
    assert len(effects.effects) == 2 and effects.target == LABELS[3]


def test_attention_reads_the_answer_positions_row_of_the_whole_prompt(gt_prompt) -> None:  # type: ignore[no-untyped-def]
    """By hand: the whole prompt through the LM with eager attention, rollout, the last position's row at the text's
    columns. The LM runs SDPA otherwise, and still does afterwards."""
    from explainers.attention import rollout

    text = "the film was excellent"
    a = _explain(gt_prompt, "attention", text)
    model = gt_prompt.model
    ids = gt_prompt.encode(text).input_ids[0].tolist()
    full = torch.tensor([model.prefix_ids + ids + model.suffix_ids])
    config = model.config
    config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            out = model.transformer.decoder(input_ids=full, output_attentions=True)
    finally:
        config._attn_implementation = "sdpa"
    att = np.stack([x[0].float().numpy() for x in out.attentions])
    start = len(model.prefix_ids)
    expected = rollout(att, 0.5)[-1, start:start + len(ids)]
    np.testing.assert_allclose(a.scores, expected / expected.sum(), rtol=1e-5, atol=1e-7)  # the text's share
    assert np.asarray(a.extras["attentions"]).shape == (att.shape[0], att.shape[1], len(ids), len(ids))
    np.testing.assert_allclose(a.probs, gt_prompt.predict_proba([text])[0], atol=1e-5)
    assert model.config._attn_implementation == "sdpa" and gt_prompt.attn_implementation == "sdpa"
