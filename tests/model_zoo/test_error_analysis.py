"""Error analysis on known answers: a predictor that is wrong exactly where we planted it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from model_zoo.data import TextDataset
from model_zoo.error_analysis import SliceError, analyse, examples, pattern, slices, wilson
from model_zoo.errors import LoupeError


class NotBlind:
    """Predicts each text's true class (via a lookup), except that it gets every text holding "not" wrong."""

    def __init__(self, truth: dict[str, int]) -> None:
        self.truth = truth
        self.calls = 0

    def label_name(self, i: int) -> str:
        return ["negative", "positive"][i]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = []
        for t in texts:
            right = self.truth[t]
            pred = 1 - right if " not " in f" {t} " else right
            conf = 0.6 if "meh" in t else 0.9
            row = [1 - conf, conf] if pred == 1 else [conf, 1 - conf]
            out.append(row)
        return np.array(out)


def _dataset() -> TextDataset:
    texts = ["a fine film", "a dull film", "not a fine film at all really", "it is not dull",
             "great", "awful", "a meh but fine film overall", "the plot was a bore and it dragged on",
             "lovely acting", "it did not work for me"]
    labels = [1, 0, 0, 1, 1, 0, 1, 0, 1, 0]
    return TextDataset(texts, labels, ["negative", "positive"], "hand-made")


def _report() -> Any:
    ds = _dataset()
    fake = NotBlind(dict(zip(ds.texts, ds.labels)))
    report = analyse(fake, ds, "hand-made")  # type: ignore[arg-type]  (duck-typed model)
    assert fake.calls == 1  # one batched call over the split
    return report


def test_metrics_name_the_split_and_match_hand_counts() -> None:
    r = _report()
    assert r.split == "hand-made" and r.n == 10
    assert r.accuracy == pytest.approx(0.7)  # the three "not" texts are wrong
    # true negative: dull, awful, bore, "did not work" (wrong -> positive), "not a fine film" (wrong -> positive)
    assert r.confusion == ((3, 2), (1, 4))
    assert r.precision[0] == pytest.approx(3 / 4) and r.recall[0] == pytest.approx(3 / 5)
    assert r.precision[1] == pytest.approx(4 / 6) and r.recall[1] == pytest.approx(4 / 5)
    assert r.support == (5, 5)
    assert r.label_names == ("negative", "positive")


def test_negation_slice_is_all_wrong_and_sorts_first() -> None:
    out = slices(_report())
    assert out[0].name == "with negation" and out[0].accuracy == 0.0 and out[0].size == 3
    without = next(s for s in out if s.name == "without negation")
    assert without.accuracy == 1.0 and without.size == 7
    lengths = [s for s in out if s.kind == "length"]
    assert sum(s.size for s in lengths) == 10
    assert all("words" in s.name for s in lengths)
    accs = [s.accuracy for s in out if s.accuracy is not None]
    assert accs == sorted(accs)


def test_keyword_and_regex_slices_case_insensitive() -> None:
    out = slices(_report(), "FINE")
    hit = next(s for s in out if s.name.startswith("contains"))
    assert hit.size == 3 and hit.correct == 2  # "a fine film", "not a fine film...", "a meh but fine film"
    out = slices(_report(), r"\bnot\b|did", regex=True)
    hit = next(s for s in out if s.name.startswith("contains"))
    assert hit.size == 3 and hit.accuracy == 0.0
    assert out[0].accuracy == 0.0
    absent = slices(_report(), "zebra")
    assert next(s for s in absent if s.name.startswith("contains")).size == 0


def test_negation_word_list() -> None:
    r = analyse(NotBlind({t: 0 for t in ["does n't work", "isn't it", "No way", "nothing", "knot tied",
                                          "snowy", "hardly"]}),  # type: ignore[arg-type]
                TextDataset(["does n't work", "isn't it", "No way", "nothing", "knot tied", "snowy", "hardly"],
                            [0] * 7, ["negative", "positive"]), "words")
    neg = next(s for s in slices(r) if s.name == "with negation")
    assert sorted(neg.members) == [0, 1, 2, 3, 6]


def test_wilson_interval_by_hand() -> None:
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.490, abs=5e-4) and high == pytest.approx(0.943, abs=5e-4)
    assert wilson(0, 3)[0] == 0.0 and wilson(3, 3)[1] == pytest.approx(1.0)
    assert wilson(0, 0) == (0.0, 1.0)


def test_bad_regex_is_a_typed_error() -> None:
    with pytest.raises(SliceError, match="Not a valid regular expression"):
        slices(_report(), "(unclosed", regex=True)
    with pytest.raises(SliceError, match="at most 200"):
        pattern("a" * 201, regex=True)
    assert issubclass(SliceError, LoupeError)
    assert slices(_report(), "(unclosed")  # as a plain keyword it is just text
    assert pattern("   ") is None


def test_examples_misclassified_first_then_least_confident() -> None:
    rows = examples(_report())
    assert [r["correct"] for r in rows[:3]] == [False, False, False]
    assert all(r["correct"] for r in rows[3:])
    assert rows[3]["text"] == "a meh but fine film overall" and rows[3]["confidence"] == pytest.approx(0.6)
    assert set(rows[0]) == {"text", "true", "predicted", "confidence", "correct"}
    assert [r["text"] for r in examples(_report(), only=[0, 2])] == ["not a fine film at all really", "a fine film"]


def test_analyse_with_tiny_model(tiny_handle: Any) -> None:
    ds = _dataset()
    r = analyse(tiny_handle, ds, "hand-made")
    assert r.probs.shape == (10, 2)
    assert np.allclose(r.probs.sum(axis=1), 1.0)
    assert r.accuracy == pytest.approx(float(r.correct.mean()))
    assert len(examples(r)) == 10


def test_labelled_csv_reads_the_models_classes_by_name_or_number() -> None:
    from model_zoo.error_analysis import labelled_csv

    names = ["negative", "positive"]
    ds = labelled_csv(b"review,stars\nA fine film,Positive\nDull,negative\n,positive\nOk,\n", "review", "stars",
                      names, "upload: r.csv")
    assert ds.texts == ["A fine film", "Dull"] and ds.labels == [1, 0] and ds.label_names == names
    assert ds.name == "upload: r.csv" and ds.notes == ["Dropped 2 row(s) with empty text or label."]
    numbered = labelled_csv(b"text,label\na,1\nb,0\nc,1\n", "text", "label", names)
    assert numbered.labels == [1, 0, 1] and any("0 = negative, 1 = positive" in n for n in numbered.notes)
    one_class = labelled_csv(b"text,label\na,negative\nb,negative\n", "text", "label", names)
    assert one_class.labels == [0, 0]  # a split may hold one class only


@pytest.mark.parametrize(("raw", "text", "label", "message"), [
    (b"text,label\na,pos\nb,neg\n", "text", "label", "'neg', 'pos' in 'label' are not classes of this model "
                                                     "(its classes: negative, positive)"),
    (b"text,label\na,2\nb,0\n", "text", "label", "'2' in 'label' are not classes"),
    (b"text,label\na,1\n", "text", "text", "the same"),
    (b"text,label\na,1\n", "review", "label", "Missing column(s): 'review'. The file has: 'text', 'label'"),
    (b"text,label\n,\n", "text", "label", "nothing to analyse"),
    (b"", "text", "label", "empty"),
    (b"text,label\ncaf\xe9,1\n", "text", "label", "not valid UTF-8"),
])
def test_labelled_csv_refuses_what_it_cannot_use_with_a_clear_message(raw: bytes, text: str, label: str,
                                                                     message: str) -> None:
    from model_zoo.error_analysis import labelled_csv
    from model_zoo.errors import DatasetError

    with pytest.raises(DatasetError) as err:
        labelled_csv(raw, text, label, ["negative", "positive"])
    assert message in str(err.value)
