"""model_zoo.compression: variants are made as asked, measured honestly, saved and loaded back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from model_zoo import load, store
from model_zoo.compression import (
    CompressionError,
    UnsupportedVariantError,
    VariantSpec,
    at_batch_size,
    available_variants,
    evaluate_predictions,
    is_quantized,
    make_variant,
    measure,
    parse_variants,
    publish_variant,
    save_variant,
    spread,
    weight_sparsity,
)
from model_zoo.data import rotten_tomatoes
from model_zoo.errors import ModelLoadError
from model_zoo.params import count_parameters

TEXTS = [
    "A moving, funny and beautifully acted film.",
    "Dull, overlong and badly written.",
    "The plot never quite comes together, but the cast is charming.",
    "One of the best thrillers of the decade.",
    "I wanted to leave after twenty minutes.",
    "An uneven but often delightful comedy.",
]


def _zeros_in_encoder_linears(model: nn.Module) -> tuple[int, int, int]:
    """Zeros, weights and count of the encoder's Linear layers (what pruning targets), counted by hand."""
    zeros = total = layers = 0
    for m in model.bert.encoder.modules():
        if isinstance(m, nn.Linear):
            zeros += int((m.weight == 0).sum())
            total += m.weight.numel()
            layers += 1
    return zeros, total, layers


def _zeros_in_parameters(model: nn.Module) -> tuple[int, int]:
    return (sum(int((p == 0).sum()) for p in model.parameters()), sum(p.numel() for p in model.parameters()))


def test_names_parse_to_settings() -> None:
    assert VariantSpec.parse("prune-50").sparsity == 0.5
    assert VariantSpec.parse("layers-3").layers == 3 and VariantSpec.parse("layers-3").kind == "layers"
    spec = VariantSpec.parse({"name": "distill-2l", "train_examples": 64})
    assert (spec.kind, spec.layers, spec.train_examples, spec.name) == ("distill", 2, 64, "distill-2l")
    assert [s.name for s in parse_variants("int8, prune-30,distill-3l")] == ["int8", "prune-30", "distill-3l"]
    with pytest.raises(CompressionError, match="Unknown variant"):
        VariantSpec.parse("int4")
    with pytest.raises(CompressionError, match="twice"):
        parse_variants("int8,int8")
    with pytest.raises(CompressionError, match="setting"):
        VariantSpec.parse({"name": "int8", "bits": 4})
    assert spread(6, 3) == [0, 2, 4] and spread(2, 1) == [0]


def test_half_precision_is_gpu_only(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    assert "fp16" not in available_variants("cpu") and "bf16" not in available_variants("cpu")
    assert "int8" in available_variants("cpu") and "int8" not in available_variants("cuda")
    for name in ("fp16", "bf16"):
        with pytest.raises(UnsupportedVariantError, match="GPU"):
            make_variant(tiny_handle, name)


def test_pruning_reports_sparsity_over_both_named_denominators(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    before, zeros_before = tiny_handle.predict_proba(TEXTS), weight_sparsity(tiny_handle.model)
    variant = make_variant(tiny_handle, "prune-50")
    model = variant.handle.model
    zeros, total, layers = _zeros_in_encoder_linears(model)
    all_zeros, all_total = _zeros_in_parameters(model)
    card = variant.card
    # Over the pruned layers' weights the requested fraction is met exactly (global L1 over those weights).
    assert card["sparsity_pruned_layers"] == pytest.approx(zeros / total, abs=1e-6) == pytest.approx(0.5, abs=1e-4)
    # Over all parameters (embeddings, LayerNorms, biases, pooler, head) it is far lower, and says so.
    assert card["sparsity_all_weights"] == pytest.approx(all_zeros / all_total, abs=1e-6)
    assert card["sparsity_all_weights"] < 0.1 < card["sparsity_pruned_layers"]
    assert f"all {all_total:,} parameters" in card["sparsity_denominators"]["all_weights"]
    assert f"the {total:,} weights of the {layers} encoder Linear layers" in card["sparsity_denominators"][
        "pruned_layers"]
    assert card["requested_sparsity"] == 0.5
    # Permanent: plain weights, no masks or hooks left behind.
    assert not any(n.endswith("_mask") or n.endswith("_orig") for n, _ in variant.handle.model.named_buffers())
    assert not any(n.endswith("_orig") for n, _ in variant.handle.model.named_parameters())
    # The source model is untouched.
    assert weight_sparsity(tiny_handle.model) == zeros_before and zeros_before["sparsity_pruned_layers"] == 0.0
    np.testing.assert_allclose(tiny_handle.predict_proba(TEXTS), before)


def test_int8_sparsity_counts_its_packed_weights(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """The int8 model's Linear weights are packed (not parameters); both denominators still include them."""
    fp32, int8 = weight_sparsity(tiny_handle.model), weight_sparsity(make_variant(tiny_handle, "int8").handle.model)
    assert fp32["sparsity_denominators"] == int8["sparsity_denominators"]
    assert 0.0 <= int8["sparsity_pruned_layers"] < 0.05  # rounding to int8 zeroes only the smallest weights


def test_per_layer_pruning_hits_each_layer(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    variant = make_variant(tiny_handle, {"name": "prune-30", "scope": "layer"})
    for name, m in variant.handle.model.bert.encoder.named_modules():
        if isinstance(m, nn.Linear):
            frac = float((m.weight == 0).float().mean())
            assert frac == pytest.approx(0.3, abs=0.01), name


def test_layer_drop_keeps_fewer_layers(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    variant = make_variant(tiny_handle, "layers-1")
    model = variant.handle.model
    assert len(model.bert.encoder.layer) == 1 and model.config.num_hidden_layers == 1
    assert variant.card["kept_layers"] == [0]
    assert count_parameters(model).total < count_parameters(tiny_handle.model).total
    probs = variant.handle.predict_proba(TEXTS)
    assert probs.shape == (len(TEXTS), 2) and np.allclose(probs.sum(axis=1), 1)


def test_int8_quantises_linears_and_reloads(tiny_handle, tiny_model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    variant = make_variant(tiny_handle, "int8")
    assert is_quantized(variant.handle.model) and not is_quantized(tiny_handle.model)
    assert variant.card["backend"] == "torch.ao.quantization.quantize_dynamic" and variant.card["backend_reason"]
    assert count_parameters(variant.handle.model).total == count_parameters(tiny_handle.model).total
    probs = variant.handle.predict_proba(TEXTS)
    folder = save_variant(variant, tmp_path / "tiny-int8", source_folder=tiny_model_dir)
    assert store.read_card(folder)["quantization"]["method"] == "dynamic-int8"
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))  # the store holds no pickles
    reloaded = load(str(folder), device="cpu")
    assert is_quantized(reloaded.model)
    np.testing.assert_allclose(reloaded.predict_proba(TEXTS), probs, atol=1e-6)
    # Published to the store under a new id, it loads by id with its card.
    publish_variant(folder, "tiny-int8")
    by_id = load("tiny-int8", device="cpu")
    assert is_quantized(by_id.model) and by_id.info["compression"]["variant"] == "int8"


def test_unknown_quantisation_in_card_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    shutil.copytree(tiny_model_dir, folder)
    store.write_card(folder, {"quantization": {"method": "int3-magic"}})
    with pytest.raises(ModelLoadError):
        load(str(folder), device="cpu")


def test_pruned_variant_saves_and_reloads(tiny_handle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    variant = make_variant(tiny_handle, "prune-60")
    folder = save_variant(variant, tmp_path / "tiny-prune", metrics={"accuracy": 0.5, "f1_macro": 0.4})
    card = store.read_card(folder)
    assert card["compression"]["variant"] == "prune-60" and card["compression"]["source_model"] == tiny_handle.id
    assert card["metrics"]["test"]["accuracy"] == 0.5
    reloaded = load(str(folder), device="cpu")
    assert weight_sparsity(reloaded.model)["sparsity_pruned_layers"] == variant.card["sparsity_pruned_layers"]
    np.testing.assert_allclose(reloaded.predict_proba(TEXTS), variant.handle.predict_proba(TEXTS), atol=1e-6)


def test_distillation_trains_a_smaller_student(tiny_handle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    teacher_state = {k: v.clone() for k, v in tiny_handle.model.state_dict().items()}
    variant = make_variant(tiny_handle, {"name": "distill-1l", "train_examples": 64, "epochs": 0.5})
    dist = variant.card["distillation"]
    assert dist["steps"] >= 1 and np.isfinite(dist["train_loss"]) and dist["examples"] == 64
    assert len(variant.handle.model.bert.encoder.layer) == 1
    assert not variant.handle.model.training
    for k, v in tiny_handle.model.state_dict().items():  # the teacher was not trained
        assert torch.equal(v, teacher_state[k]), k
    reloaded = load(str(save_variant(variant, tmp_path / "tiny-distill")), device="cpu")
    assert reloaded.model.config.num_hidden_layers == 1
    np.testing.assert_allclose(reloaded.predict_proba(TEXTS), variant.handle.predict_proba(TEXTS), atol=1e-6)


def test_measure_reports_every_column(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    variants = [make_variant(tiny_handle, "original"), make_variant(tiny_handle, "int8"),
                make_variant(tiny_handle, "prune-50")]
    rows = measure(variants, rotten_tomatoes("test").head(40), latency_texts=8, repeats=3)
    assert list(rows) == ["original", "int8", "prune-50"]
    for row in rows.values():
        for key in ("accuracy_b1", "accuracy_b32", "f1_macro_b1", "f1_macro_b32", "agreement_b1", "agreement_b32",
                    "p50_ms_b1", "p95_ms_b1", "p50_ms_b32", "p95_ms_b32", "throughput_per_s", "size_mb",
                    "parameters", "sparsity_all_weights", "sparsity_pruned_layers", "peak_memory_mb"):
            assert isinstance(row[key], (int, float)), key
        assert row["p95_ms_b1"] >= row["p50_ms_b1"] > 0 and row["peak_memory_mb"] > row["weights_mb"] > 0
        assert "accuracy" not in row and "sparsity" not in row  # no figure without its batch or denominator
    assert rows["original"]["agreement_b1"] == rows["original"]["agreement_b32"] == 1.0
    assert rows["original"]["latency_x_b1"] == 1.0
    assert rows["int8"]["batch_dependent"] and not rows["prune-50"]["batch_dependent"]
    assert rows["int8"]["size_mb"] < rows["original"]["size_mb"]
    assert rows["int8"]["weights_mb"] < rows["original"]["weights_mb"]
    assert rows["prune-50"]["sparsity_pruned_layers"] == pytest.approx(0.5, abs=1e-4)
    assert rows["prune-50"]["sparsity_all_weights"] == weight_sparsity(variants[2].handle.model)["sparsity_all_weights"]


def test_int8_accuracy_is_measured_at_batch_1_and_at_batch_32(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """One activation scale per padded batch: int8 outputs move with the batch, so both are measured."""
    test = rotten_tomatoes("test").head(40)
    original, int8 = make_variant(tiny_handle, "original"), make_variant(tiny_handle, "int8")
    at = {bs: int8.handle.predict_proba(test.texts, batch_size=bs) for bs in (1, 32)}
    assert np.abs(at[1] - at[32]).max() > 1e-4  # the premise: same texts, other batch-mates, other outputs
    np.testing.assert_allclose(tiny_handle.predict_proba(test.texts, batch_size=1),
                               tiny_handle.predict_proba(test.texts, batch_size=32), atol=1e-5)  # fp32 does not
    rows = measure([original, int8], test, latency_texts=4, repeats=3)
    for bs in (1, 32):
        reference = tiny_handle.predict_proba(test.texts, batch_size=bs).argmax(axis=1)
        expected = evaluate_predictions(at[bs], test.labels, reference, 2)
        assert rows["int8"][f"accuracy_b{bs}"] == expected["accuracy"]
        assert rows["int8"][f"f1_macro_b{bs}"] == expected["f1_macro"]
        assert rows["int8"][f"agreement_b{bs}"] == expected["agreement"]
    # The handle the explainers get at a batch size serves predict_proba at that size, on the same model.
    one = at_batch_size(int8.handle, 1)
    assert one.model is int8.handle.model and one.batch_size == 1
    np.testing.assert_array_equal(one.predict_proba(test.texts), at[1])


@pytest.mark.real_model
def test_int8_agrees_with_fp32_on_the_default_model(real_model_dir: Path) -> None:
    """The int8 variant of rt-sentiment-minilm predicts the fp32 class on at least 95% of 300 test texts,
    served one text per pass and 32 per pass (its activation scales are per batch)."""
    handle = load(str(real_model_dir), device="cpu", attn_implementation="sdpa")
    texts = rotten_tomatoes("test").texts[::4][:300]
    fp32 = handle.predict_proba(texts).argmax(axis=1)
    int8 = make_variant(handle, "int8").handle
    agreement = {bs: float((fp32 == int8.predict_proba(texts, batch_size=bs).argmax(axis=1)).mean()) for bs in (1, 32)}
    assert min(agreement.values()) >= 0.95, agreement


def test_a_variant_has_its_own_exclusive_lock(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """A variant is a different model: an explanation holding the source exclusively must not hold it up."""
    import threading

    variant = make_variant(tiny_handle, "prune-50")
    assert variant.handle.model is not tiny_handle.model
    held, release = threading.Event(), threading.Event()

    def hold_the_source() -> None:
        with tiny_handle.use(exclusive=True, label="an explanation of the source"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_source)
    holder.start()
    try:
        assert held.wait(10)
        got = variant.handle.lock.acquire(timeout=2)  # what variant.handle.use(exclusive=True) takes
        assert got, "the variant shares the source's lock"
        variant.handle.lock.release()
        with variant.handle.use(exclusive=True):
            assert variant.handle.predict_proba(TEXTS[:1]).shape == (1, 2)
    finally:
        release.set()
        holder.join(10)


def test_the_source_is_copied_without_an_explainers_hooks(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """Made while an explanation has hooks on the source model, a variant waits and copies no hook."""
    import threading

    hooked, release = threading.Event(), threading.Event()

    def explain_with_hooks() -> None:
        with tiny_handle.use(exclusive=True):
            hook = tiny_handle.model.bert.embeddings.register_forward_hook(lambda *_: None)
            hooked.set()
            release.wait(1.0)  # the variant is asked for while the hook is on
            hook.remove()

    holder = threading.Thread(target=explain_with_hooks)
    holder.start()
    try:
        assert hooked.wait(10)
        variant = make_variant(tiny_handle, "prune-50")
    finally:
        release.set()
        holder.join(10)
    assert not variant.handle.model.bert.embeddings._forward_hooks
