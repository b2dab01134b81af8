"""Uploaded CSVs (issue 11): one column for text and label refused, encodings named, thin classes warned,
previews of any file small enough for a browser."""

from __future__ import annotations

import pandas as pd
import pytest

from model_zoo.data import load_csv, read_csv_frame
from model_zoo.errors import DatasetError

CSV = "text,label\n" + "".join(f"review number {i},{'pos' if i % 2 else 'neg'}\n" for i in range(40))


def test_same_column_for_text_and_label_is_refused() -> None:
    with pytest.raises(DatasetError, match="text and the label column are the same"):
        load_csv(CSV.encode(), text_column="text", label_column="text")


def test_a_text_column_picked_as_label_is_named() -> None:
    raw = ("text,label\n" + "".join(f"{'x' * 300} {i},{'y' * 250} {i}\n" for i in range(5))).encode()
    with pytest.raises(DatasetError, match="is that the text column"):
        load_csv(raw, text_column="text", label_column="label")


@pytest.mark.parametrize(("encoding", "named"), [("utf-16-le", "UTF-16 (little-endian) without a byte-order mark"),
                                                 ("utf-16-be", "UTF-16 (big-endian) without a byte-order mark"),
                                                 ("utf-32-le", "UTF-32"), ("cp1252", "Windows-1252")])
def test_encoding_errors_are_named(encoding: str, named: str) -> None:
    with pytest.raises(DatasetError, match=named.replace("(", r"\(").replace(")", r"\)")) as err:
        read_csv_frame((CSV + "café au lait,pos\n").encode(encoding))
    assert "UTF-8" in str(err.value) and "field" not in str(err.value)


def test_utf16_with_a_bom_still_reads() -> None:
    assert len(read_csv_frame(CSV.encode("utf-16"))) == 40


def test_fewer_than_ten_examples_per_class_is_warned() -> None:
    from model_zoo.data import MIN_PER_CLASS, few_examples

    assert few_examples({"pos": 20, "neg": 10}) is None
    warning = few_examples({"pos": 20, "neg": 3, "meh": 1})
    assert warning and "'neg' (3)" in warning and "'meh' (1)" in warning and str(MIN_PER_CLASS) in warning


def test_preview_caps_rows_columns_and_cells() -> None:
    from model_zoo.data import preview_frame

    huge = "w" * 15_000_000
    frame = pd.DataFrame({"text": [huge] + ["short"] * 50, "label": ["a"] * 51,
                          **{f"extra{i}": ["v"] * 51 for i in range(40)}})
    frame = frame.rename(columns={"extra0": "h" * 5000, "extra1": "h" * 5001})
    out = preview_frame(frame)
    assert out.shape == (8, 20)
    assert max(len(str(v)) for v in out.to_numpy().ravel()) <= 200
    assert max(len(c) for c in out.columns) <= 201 and len(set(out.columns)) == 20  # cut names stay distinct
    assert out.iloc[0, 0].endswith("…")


def test_unquoted_commas_are_named_not_shifted_into_an_index() -> None:
    with pytest.raises(DatasetError, match="double quotes"):
        read_csv_frame(b"text,label\na bad film, take 0,neg\na good film, take 1,pos\n")
