"""Faithfulness, agreement and drift on hand-built cases with known answers."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from explainers.base import Attribution, Cost, ExplainerError, Word
from explainers.metrics import (
    agreement,
    bin_sizes,
    curve_sizes,
    drift,
    faithfulness,
    faithfulness_many,
    rank_agreement,
    ranking,
)

HIT, BASE = 0.9, 0.2
TWENTY = ("the plot drags and the cast looks tired but one great scene in the middle saves "
          "this odd little film")


class OneWordModel:
    """A ModelHandle stand-in that looks at one word only: p(positive) = HIT if present, else BASE."""

    num_labels = 2
    batch_size = 64

    def __init__(self, word: str = "great") -> None:
        self.word = word
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        p = np.array([HIT if self.word in t.split() else BASE for t in texts])
        return np.stack([1 - p, p], axis=1)


def make_attribution(text: str, scores: Sequence[float], *, signed: bool = True, target: int = 1,
                     probs: tuple[float, ...] = (1 - HIT, HIT), method: str = "hand",
                     n_words: int | None = None) -> Attribution:
    """One token per whitespace word; only the first ``n_words`` words are explained."""
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)][:n_words]
    assert len(spans) == len(scores)
    words = tuple(Word(text[a:b], a, b, float(s), (i,)) for i, ((a, b), s) in enumerate(zip(spans, scores)))
    return Attribution(text=text, tokens=tuple(text[a:b] for a, b in spans), offsets=tuple(spans),
                       special=(False,) * len(spans), scores=tuple(float(s) for s in scores), words=words,
                       target=target, labels=("negative", "positive"), probs=probs, signed=signed, method=method,
                       params={}, cost=Cost(passes=1, seconds=0.0))


def perfect(text: str = TWENTY, word: str = "great") -> Attribution:
    return make_attribution(text, [1.0 if w == word else 0.0 for w in text.split()])


# --- sizes and ranking ---------------------------------------------------------------------------

def test_bin_sizes_are_word_counts_and_fractions_distinct_and_capped() -> None:
    # Default bins: top 1, 2, 3, 5 words and 20%, 50% (rounded up), repeats dropped, capped at the words.
    assert bin_sizes(100) == [1, 2, 3, 5, 20, 50]
    assert bin_sizes(20) == [1, 2, 3, 4, 5, 10]
    assert bin_sizes(3) == [1, 2, 3]
    assert bin_sizes(1) == [1]
    assert bin_sizes(100, (0.01, 0.05, 0.1)) == [1, 5, 10]  # 0.05 * 100 is 5.000000000000001 in floats
    # Percent-only bins say nothing past the top word of a short review; word counts do.
    assert bin_sizes(12, (0.01, 0.05, 0.1)) == [1, 2] and bin_sizes(12) == [1, 2, 3, 5, 6]


@pytest.mark.parametrize("bins", [(), (0,), (1.5,), (-0.2,), (True,)])
def test_bad_bins_are_refused(bins) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExplainerError, match="bins"):
        faithfulness(OneWordModel(), perfect(), bins=bins, random_seeds=())
    assert curve_sizes(20, 10) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert curve_sizes(5, 4) == [0, 1, 3, 4, 5]


def test_signed_scores_rank_toward_the_target_first() -> None:
    assert ranking(np.array([0.1, -5.0, 2.0])).tolist() == [2, 0, 1]
    assert ranking(np.array([1.0, 1.0, 1.0])).tolist() == [0, 1, 2]  # ties keep text order


# --- faithfulness ---------------------------------------------------------------------------------

def test_removing_the_only_word_the_model_reads_gives_p_minus_base() -> None:
    model = OneWordModel()
    f = faithfulness(model, perfect(), random_seeds=())
    assert f.full_prob == pytest.approx(HIT, abs=1e-12)
    assert f.comprehensiveness == pytest.approx([HIT - BASE] * 6, abs=1e-12)
    assert f.comp_aopc == pytest.approx(HIT - BASE, abs=1e-12)
    assert f.sufficiency == pytest.approx([0.0] * 6, abs=1e-12)  # the top word alone keeps the prediction
    assert f.ks == (1, 2, 3, 4, 5, 10) and f.n_words == 20
    top20 = faithfulness(model, perfect(), bins=(0.2,), steps=1, random_seeds=())  # ERASER's top 20%
    assert top20.comprehensiveness[0] == pytest.approx(HIT - BASE, abs=1e-12)
    assert top20.sufficiency[0] == pytest.approx(0.0, abs=1e-12)


def test_curves_start_and_end_where_they_must() -> None:
    f = faithfulness(OneWordModel(), perfect(), random_seeds=())
    assert f.deletion == pytest.approx([HIT] + [BASE] * 10)
    assert f.insertion == pytest.approx([BASE] + [HIT] * 10)
    # trapezoid over fractions 0, 0.1, ..., 1
    assert f.deletion_auc == pytest.approx(0.1 * (HIT + BASE) / 2 + 0.9 * BASE)
    assert f.insertion_auc == pytest.approx(0.1 * (HIT + BASE) / 2 + 0.9 * HIT)


def test_removed_words_are_deleted_and_only_the_explained_part_is_used() -> None:
    model = OneWordModel()
    text = "the movie was great fun and this tail was cut off by truncation"
    a = make_attribution(text, [0.0, 0.1, 0.0, 1.0, 0.5], n_words=5)
    faithfulness(model, a, random_seeds=())
    texts = set(model.calls[0])
    assert "the movie was fun" in texts  # comprehensiveness at k=1: "great" deleted, no gap left behind
    assert "great" in texts  # sufficiency at k=1
    assert "" in texts  # deletion curve end / insertion curve start
    assert all("tail" not in t for t in texts)
    assert len(texts) == len(model.calls[0])  # duplicates are sent once


def test_a_perfect_attribution_beats_a_random_one() -> None:
    f = faithfulness(OneWordModel(), perfect(), random_seeds=(0, 1, 2, 3, 4))
    base = f.baseline
    assert base is not None and base.method == "random" and base.params["seeds"] == [0, 1, 2, 3, 4]
    # Random ranking puts "great" in the top k with chance k/20: expected AOPC 0.7 * 0.18 = 0.126.
    assert f.comp_aopc - base.comp_aopc > 0.3
    assert f.suff_aopc < base.suff_aopc - 0.3
    assert f.deletion_auc < base.deletion_auc
    assert f.insertion_auc > base.insertion_auc
    worst = make_attribution(TWENTY, [-1.0 if w == "great" else 0.0 for w in TWENTY.split()])
    assert faithfulness(OneWordModel(), worst, random_seeds=()).comp_aopc < base.comp_aopc


def test_one_predict_proba_call_per_explanation_random_baseline_included() -> None:
    model = OneWordModel()
    faithfulness(model, perfect())
    assert len(model.calls) == 1
    model.calls.clear()
    other = make_attribution(TWENTY, list(np.linspace(0, 1, 20)), method="other")
    out = faithfulness_many(model, [perfect(), other, perfect("one great scene")])
    assert len(model.calls) == 1 and len(out) == 3
    assert [f.method for f in out] == ["hand", "other", "hand"]
    # the random baseline of a text does not depend on the explainer
    assert out[0].baseline == out[1].baseline


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=20, max_size=20))
def test_no_ranking_is_more_comprehensive_than_the_true_one(scores: list[float]) -> None:
    model = OneWordModel()
    f = faithfulness(model, make_attribution(TWENTY, scores), random_seeds=())
    assert f.comp_aopc <= HIT - BASE + 1e-12
    assert f.suff_aopc >= -1e-12
    assert f.deletion[0] == f.insertion[-1] == f.full_prob


def test_to_dict_is_json_ready() -> None:
    d = faithfulness(OneWordModel(), perfect()).to_dict()
    back = json.loads(json.dumps(d))
    assert back["comp_aopc"] == pytest.approx(HIT - BASE)
    assert back["baseline"]["method"] == "random"


def test_real_model_one_call_and_passes_match_the_meter(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    import explainers

    ig = explainers.get("ig")
    a = ig.explain(tiny_handle, "a quiet, moving film about two brothers", None, ig.Config(n_steps=4))
    calls = []
    original = tiny_handle.predict_proba

    def counting(texts, batch_size=None):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return original(texts, batch_size)

    tiny_handle.predict_proba = counting
    try:
        with tiny_handle.meter() as passes:
            f = faithfulness(tiny_handle, a)
    finally:
        del tiny_handle.predict_proba
    assert len(calls) == 1
    assert f.passes == passes[0] == math.ceil(calls[0] / tiny_handle.batch_size)
    # the explained text rebuilt from its words is the text itself
    assert f.full_prob == pytest.approx(a.probs[a.target], abs=1e-5)
    assert all(0.0 <= p <= 1.0 for p in f.deletion + f.insertion)


# --- agreement and drift ---------------------------------------------------------------------------

def test_agreement_with_itself_is_one_and_with_a_permuted_copy_lower() -> None:
    scores = np.linspace(-1, 2, 20)
    a = make_attribution(TWENTY, scores)
    same = agreement(a, a)
    assert same.spearman == 1.0 and same.kendall == 1.0 and same.top_k_overlap == 1.0
    assert same.k == 4 and same.n_words == 20
    shuffled = make_attribution(TWENTY, np.random.default_rng(3).permutation(scores))
    perm = agreement(a, shuffled)
    assert perm.spearman is not None and perm.spearman < 0.9
    assert perm.spearman == pytest.approx(stats.spearmanr(scores, shuffled.word_scores())[0])
    assert perm.kendall == pytest.approx(stats.kendalltau(scores, shuffled.word_scores())[0])
    reversed_ = agreement(a, make_attribution(TWENTY, scores[::-1]))
    assert reversed_.spearman == pytest.approx(-1.0) and reversed_.top_k_overlap == 0.0


def test_constant_scores_give_no_correlation_and_no_warning() -> None:
    flat = make_attribution(TWENTY, [0.0] * 20)
    varied = make_attribution(TWENTY, np.linspace(0, 1, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = agreement(flat, varied)
        assert agreement(flat, flat).spearman == 1.0  # the same ranking, even a flat one
    assert res.spearman is None and res.kendall is None
    assert 0.0 <= res.top_k_overlap <= 1.0
    assert rank_agreement([], []).spearman is None
    assert rank_agreement([1.0], [2.0]).spearman is None


def test_signed_against_unsigned_ranks_each_as_its_top_words() -> None:
    # Every word pushes against the target, the first hardest: for the signed method the first word is
    # the *last* of its top words, for the unsigned one (same magnitudes) the first. They disagree.
    signed = make_attribution(TWENTY, np.linspace(-3, -1, 20))
    unsigned = make_attribution(TWENTY, np.linspace(3, 1, 20), signed=False)
    assert agreement(signed, unsigned).spearman == pytest.approx(-1.0)
    assert signed.top_words(1)[0].text == TWENTY.split()[-1] and unsigned.top_words(1)[0].text == TWENTY.split()[0]
    with pytest.raises(ValueError):
        agreement(signed, make_attribution("another text", [1.0, 2.0]))


def test_drift_of_a_model_against_itself_is_exactly_one_with_no_change() -> None:
    a = make_attribution(TWENTY, np.linspace(-1, 2, 20))
    f = faithfulness(OneWordModel(), a, random_seeds=())
    d = drift(a, a, f, f)
    assert d.spearman == 1.0 and d.kendall == 1.0 and d.top_k_overlap == 1.0
    assert d.prediction_flipped is False and d.same_target
    assert d.delta_prob == 0.0 and d.delta_comp_aopc == 0.0 and d.delta_suff_aopc == 0.0
    assert drift(a, a).delta_comp_aopc is None
    flipped = make_attribution(TWENTY, np.linspace(2, -1, 20), probs=(0.7, 0.3))
    d2 = drift(a, flipped)
    assert d2.prediction_flipped and d2.spearman == pytest.approx(-1.0)
    assert d2.delta_prob == pytest.approx(0.3 - HIT)
    assert json.loads(json.dumps(d2.to_dict()))["prediction_flipped"] is True
