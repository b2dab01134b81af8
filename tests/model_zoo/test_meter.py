"""ModelHandle.meter(): the pass count and the shape of every pass (batch, padded length, gradients)."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from model_zoo.handle import PassShape


def _padded_len(handle, texts: list[str]) -> int:  # type: ignore[no-untyped-def]
    enc = handle.tokenizer(texts, padding=True, truncation=True, max_length=handle.max_length)
    return len(enc["input_ids"][0])


def test_predict_proba_records_one_shape_per_batch(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    texts = ["a rather longer sentence about a film", "ok", "fine film"]
    with tiny_handle.meter() as passes:
        tiny_handle.predict_proba(texts, batch_size=2)
    # Length-sorted batches: ("ok", "fine film"), then the long one alone.
    assert passes.shapes == [PassShape(batch=2, seq_len=_padded_len(tiny_handle, texts[1:]), grad=False),
                             PassShape(batch=1, seq_len=_padded_len(tiny_handle, texts[:1]), grad=False)]
    assert passes[0] == passes.total == 2
    assert passes.shapes[0].seq_len < passes.shapes[1].seq_len


def test_gradient_path_records_the_grad_flag(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    enc = tiny_handle.encode("a small test sentence")
    seq = enc.input_ids.shape[1]
    embeds = tiny_handle.model.get_input_embeddings()(enc.input_ids.repeat(3, 1)).detach().requires_grad_()
    with tiny_handle.meter() as passes:
        with torch.enable_grad():
            tiny_handle.forward_probs(enc.input_ids, enc.attention_mask)
            tiny_handle.forward_probs(None, enc.attention_mask.repeat(3, 1), inputs_embeds=embeds)  # type: ignore[arg-type]
        with torch.no_grad():
            tiny_handle.forward_probs(enc.input_ids.repeat(4, 1), enc.attention_mask.repeat(4, 1))
    assert passes.shapes == [PassShape(1, seq, True), PassShape(3, seq, True), PassShape(4, seq, False)]
    assert passes[0] == 3


def test_attention_pass_is_recorded(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    enc = tiny_handle.encode("attention please")
    with tiny_handle.meter() as passes:
        try:
            tiny_handle.forward_attentions(enc.input_ids, enc.attention_mask)
        except Exception:  # a model without attention weights still made (and counted) the pass
            pass
    assert passes.shapes == [PassShape(1, enc.input_ids.shape[1], False)]


def test_nested_meters_both_see_shapes(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    with tiny_handle.meter() as outer:
        tiny_handle.predict_proba(["one"])
        with tiny_handle.meter() as inner:
            tiny_handle.predict_proba(["two", "three"], batch_size=1)
    assert (outer[0], inner[0]) == (3, 2)
    assert len(outer.shapes) == 3 and outer.shapes[1:] == inner.shapes
    assert all(s.batch == 1 and not s.grad for s in outer.shapes)


def test_meters_in_other_threads_are_separate(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []

    def other() -> None:
        with tiny_handle.meter() as mine:
            tiny_handle.predict_proba(["x", "y", "z"], batch_size=1)
        seen.append(len(mine.shapes))

    with tiny_handle.meter() as passes:
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
        tiny_handle.predict_proba(["mine"])
    assert seen == [3] and len(passes.shapes) == passes[0] == 1


def test_total_passes_still_counts(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    before = tiny_handle.total_passes
    tiny_handle.predict_proba(["a", "b", "c"], batch_size=2)
    assert tiny_handle.total_passes == before + 2


def test_pass_shapes_are_frozen() -> None:
    shape = PassShape(2, 7, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shape.batch = 3  # type: ignore[misc]
