"""Reports: self-contained, escaped HTML; a non-blank PNG; CSV cells guarded against formulas."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from dashboard.__main__ import main
from dashboard.report import csv_bytes, csv_safe, finetune_report, finetune_rows

PAYLOAD = '"><img src=x onerror=alert(1)><script>alert(1)</script>'
CHROMIUM = Path("/usr/bin/chromium")


def test_cli_report_is_self_contained_and_escaped(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--model", str(tiny_model_dir), "--text", PAYLOAD + " a fine film",
                 "--methods", "saliency,ablation,attention", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"<script|<link|<[^>]*\ssrc=|@import|url\(", page, re.IGNORECASE)
    assert "<img" not in page and "&lt;img src=x" in page
    for needle in ("Prediction", "Saliency", "Comprehensiveness AOPC", "Agreement", "Model card", "Loupe 0.1.0"):
        assert needle in page


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
def test_cli_png_is_not_blank(tiny_model_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    out, png = tmp_path / "r.html", tmp_path / "r.png"
    assert main(["report", "--model", str(tiny_model_dir), "--text", "a dull film", "--methods", "saliency",
                 "--out", str(out), "--png", str(png)]) == 0
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape[0] > 300 and pixels.std() > 10  # text and colour, not a blank page


def test_batch_report_writes_index(tiny_model_dir: Path, tmp_path: Path) -> None:
    texts = tmp_path / "texts.csv"
    texts.write_bytes(csv_bytes([{"text": "A fine film."}, {"text": ""}, {"text": PAYLOAD}]))
    out_dir = tmp_path / "reports"
    assert main(["report", "--model", str(tiny_model_dir), "--csv", str(texts), "--methods", "saliency",
                 "--out-dir", str(out_dir)]) == 0
    # the empty row is skipped; file names follow row numbers
    assert sorted(p.name for p in out_dir.iterdir()) == ["index.html", "report-0000.html", "report-0002.html"]
    index = (out_dir / "index.html").read_text()
    assert "report-0002.html" in index and "<img" not in index


def test_cli_report_errors_are_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--model", str(tmp_path / "missing"), "--text", "x"]) == 2
    assert "error:" in capsys.readouterr().err


def test_csv_cells_are_guarded() -> None:
    assert csv_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)" and csv_safe("-2") == "'-2" and csv_safe(3) == 3
    data = csv_bytes([{"text": "@SUM(A1)", "n": 1}, {"text": "fine", "n": 2}]).decode()
    assert data.splitlines() == ["text,n", "'@SUM(A1),1", "fine,2"]


def _finetune_result(payload: str) -> dict:  # type: ignore[type-arg]
    def part(size: int, role: str) -> dict:  # type: ignore[type-arg]
        return {"size": size, "classes": {payload: size // 2, "pos": size - size // 2}, "role": role}

    metric = {"accuracy": 0.9, "f1_macro": 0.85}
    return {"method": "lora", "trainable": 1000, "total": 50000, "steps": 40, "train_seconds": 12.5,
            "metrics": {"validation": {**metric, "split": "validation", "size": 10, "role": "checkpoint selection",
                                       "confusion_matrix": [[5, 0], [1, 4]]},
                        "test": {**metric, "split": "test", "size": 12, "role": "held out",
                                 "confusion_matrix": [[6, 0], [2, 4]]}},
            "data": {"train": part(78, "fits"), "validation": part(10, "selects"), "test": part(12, "held out"),
                     "source": f"CSV file {payload}.csv", "split": "80/10/10", "notes": [payload]},
            "selection": {"split": "validation", "rule": "best validation accuracy", "step": 30}}


def test_finetune_report_names_the_split_of_every_figure() -> None:
    result = _finetune_result(PAYLOAD)
    page = finetune_report("Fine-tuning job-1", result, {"labels": [PAYLOAD, "pos"]})
    assert not re.search(r"<script|<img|<[^>]*\ssrc=", page, re.IGNORECASE) and "&lt;img src=x" in page
    for needle in ("Results by split", "Test (held out)", "Validation", "Confusion matrix · test split (12 texts)",
                   "checkpoint selection", "best validation accuracy (step 30)"):
        assert needle in page
    assert "no separate test split" not in page
    rows = finetune_rows(result["metrics"])
    assert [(r["split"], r["texts"]) for r in rows] == [("validation", 10), ("test", 12)]
    # A run from before the held-out split (its data had no test part) says that its "test" was validation.
    old = {**result, "data": {k: v for k, v in result["data"].items() if k != "test"}}
    assert "no separate test split" in finetune_report("old", old)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
