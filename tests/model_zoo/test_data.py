"""Datasets: the Rotten Tomatoes split, the CSV loader's refusals, the train/validation/test split of a CSV."""

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
    assert ds.rows == [0, 2]  # data rows of the file, after the header


def _numbered(n: int, classes: int = 2) -> bytes:
    return ("text,label\n" + "".join(f"t{i},{i % classes}\n" for i in range(n))).encode()


def test_split_is_three_way_stratified_disjoint_and_seeded() -> None:
    ds = load_csv(_numbered(200, 3))
    parts = split_dataset(ds)
    assert {k: len(v) for k, v in parts.items()} == {"train": 160, "validation": 20, "test": 20}
    rows = [set(v.rows) for v in parts.values()]
    assert sum(map(len, rows)) == 200 and set.union(*rows) == set(range(200))  # disjoint and complete
    for v in parts.values():
        assert min(v.class_counts().values()) >= 6  # stratified: about 1/3 of each split per class
    assert split_dataset(ds, seed=13)["test"].rows == parts["test"].rows
    assert split_dataset(ds, seed=14)["test"].rows != parts["test"].rows
    assert parts["test"].name == "csv/test"
    two = split_dataset(ds, {"validation": 0.25})  # a test file of the user's own: no test carved out
    assert set(two) == {"train", "validation"} and len(two["validation"]) == 50


def test_split_keeps_copies_of_a_text_together() -> None:
    raw = "text,label\n" + "".join(f"t{i % 30},{i % 2}\n" for i in range(60))  # every text twice
    parts = split_dataset(load_csv(raw.encode()))
    texts = [set(v.texts) for v in parts.values()]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    assert all(len(v) % 2 == 0 for v in parts.values())


def test_split_refuses_a_class_too_small_and_bad_fractions() -> None:
    ds = load_csv(b"text,label\na,x\nb,x\nc,x\nd,x\ne,y\nf,y\n")
    with pytest.raises(DatasetError, match=r"'y' \(2\): each class needs at least 3"):
        split_dataset(ds)
    assert len(split_dataset(ds, {"validation": 0.2})["validation"]) == 2  # two splits: 2 a class is enough
    with pytest.raises(DatasetError, match="leave rows for training"):
        split_dataset(load_csv(_numbered(40)), {"validation": 0.6, "test": 0.4})


def test_a_held_out_file_keeps_the_training_label_ids() -> None:
    ds = load_csv(b"text,label\nx,pos\ny,neg\n", label_names=["neg", "pos"], name="test.csv")
    assert ds.labels == [1, 0] and ds.label_names == ["neg", "pos"]
    one_class = load_csv(b"text,label\nx,pos\n", label_names=["neg", "pos"])  # fine for a test file
    assert one_class.labels == [1]
    with pytest.raises(DatasetError, match="test.csv: label.*'meh'.*training file"):
        load_csv(b"text,label\nx,meh\n", label_names=["neg", "pos"], name="test.csv")


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
