"""Adding a variant kind is one file plus its registration: the fixture kind is made, measured, saved, reloaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from model_zoo import load, store
from model_zoo.compression import (
    VARIANTS,
    available_variants,
    make_variant,
    measure,
    parse_variants,
    register,
    save_variant,
)
from model_zoo.data import rotten_tomatoes
from tests.model_zoo.fixture_variant import RandomPruning

TEXTS = ["A moving, funny and beautifully acted film.", "Dull, overlong and badly written."]


@pytest.fixture
def random_pruning() -> Iterator[None]:
    register(RandomPruning())
    try:
        yield
    finally:
        VARIANTS.unregister("random")


def test_a_registered_kind_is_made_measured_and_saved(random_pruning, tiny_handle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "random" in available_variants("cpu")
    assert [s.name for s in parse_variants("random-40,prune-40")] == ["random-40", "prune-40"]
    variant = make_variant(tiny_handle, {"name": "random-40", "seed": 3})
    assert variant.card["kind"] == "random" and variant.card["requested_sparsity"] == 0.4
    assert variant.card["sparsity_pruned_layers"] == pytest.approx(0.4, abs=1e-4)
    rows = measure([make_variant(tiny_handle, "original"), variant], rotten_tomatoes("test").head(16),
                   latency_texts=4, repeats=3)
    assert rows["random-40"]["kind"] == "random" and rows["random-40"]["p50_ms_b1"] > 0
    folder = save_variant(variant, tmp_path / "tiny-random-40", metrics=rows["random-40"])
    assert store.read_card(folder)["compression"]["settings"]["seed"] == 3
    reloaded = load(str(folder), device="cpu")
    np.testing.assert_allclose(reloaded.predict_proba(TEXTS), variant.handle.predict_proba(TEXTS), atol=1e-6)


def test_an_unregistered_kind_is_unknown() -> None:
    from model_zoo.compression import CompressionError

    with pytest.raises(CompressionError, match="Unknown variant"):
        parse_variants("random-40")
