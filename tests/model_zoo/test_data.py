"""Datasets: the Rotten Tomatoes split and the CSV loader's refusals."""

from __future__ import annotations

import pytest

from model_zoo.data import _rt_frame, load_csv, rotten_tomatoes, split_dataset
from model_zoo.errors import DatasetError


def test_rotten_tomatoes_split_by_movie() -> None:
    sizes = {s: len(rotten_tomatoes(s)) for s in ("train", "validation", "test")}
    assert sizes["train"] > 9000 and 900 < sizes["validation"] < 1700 and 900 < sizes["test"] < 1700
    df = _rt_frame()
    assert df.groupby("movie_name")["split"].nunique().max() == 1
    assert df["text"].is_unique
    train = rotten_tomatoes("train")
    assert set(train.labels) == {0, 1} and train.label_names == ["negative", "positive"]
    with pytest.raises(DatasetError, match="Unknown split"):
        rotten_tomatoes("dev")


def test_csv_loader_reads_and_drops_empty_rows() -> None:
    ds = load_csv(b"text,label\ngood film,pos\n,pos\nbad film,neg\n  ,neg\n")
    assert ds.texts == ["good film", "bad film"]
    assert ds.label_names == ["neg", "pos"] and ds.labels == [1, 0]
    assert ds.notes == ["Dropped 2 row(s) with empty text or label."]
    tr, va = split_dataset(load_csv(("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(40))).encode()))
    assert len(tr) == 36 and len(va) == 4


@pytest.mark.parametrize(
    ("raw", "kwargs", "message"),
    [
        (b"review,label\nhi,1\n", {}, "Missing column"),
        (b"text,label\n,1\n ,0\n", {}, "nothing to use"),
        (b"text,label\na,1\nb,1\n", {}, "Only one class"),
        ("text,label\ncaf\u00e9,1\n".encode("latin-1"), {}, "not valid UTF-8"),
        (("text,label\n" + "".join(f"t{i},{i}\n" for i in range(60))).encode(), {}, "at most 50"),
        (b"text,label\na,1\nb,0\n", {"max_bytes": 5}, "limit"),
        (b"", {}, "empty"),
    ],
)
def test_csv_loader_refusals(raw: bytes, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(DatasetError, match=message):
        load_csv(raw, **kwargs)
