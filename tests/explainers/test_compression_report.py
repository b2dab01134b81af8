"""explainers.compression_report: explanation drift, the compress job and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from explainers.compression_report import (
    CompressConfig,
    drift_summary,
    explain_texts,
    method_config,
    run_compression,
    run_job,
)
from model_zoo import load
from model_zoo.compression import CompressionError, is_quantized, make_variant
from model_zoo.jobs import JobContext

TEXTS = ["A moving, funny and beautifully acted film.", "Dull, overlong and badly written from start to end.",
         "The plot never quite comes together, but the cast is charming."]
CONFIGS = {"ig": method_config("ig", ig_steps=8), "ablation": method_config("ablation")}


def _small(model: Path, **kw: object) -> dict[str, object]:
    return {"model": str(model), "variants": ["int8", "prune-40"], "methods": ["ig", "ablation"], "n_eval": 40,
            "n_drift": 2, "n_show": 1, "ig_steps": 8, "repeats": 3, **kw}


def test_drift_against_itself_is_exactly_one(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    first = explain_texts(tiny_handle, TEXTS, ["ig", "ablation"], configs=CONFIGS)
    again = explain_texts(tiny_handle, TEXTS, ["ig", "ablation"], configs=CONFIGS)  # recomputed, not reused
    summary = drift_summary(first, again)
    assert summary["drift_spearman"] == 1.0 and summary["drift_top_k"] == 1.0
    assert summary["drift_delta_comp"] == 0.0 and summary["drift_delta_suff"] == 0.0
    for method in ("ig", "ablation"):
        m = summary["drift"][method]
        assert (m["spearman"], m["kendall"], m["top_k_overlap"], m["flipped"]) == (1.0, 1.0, 1.0, 0.0)
        assert m["n"] == len(TEXTS)


def test_drift_of_a_pruned_variant_is_measured(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    reference = explain_texts(tiny_handle, TEXTS, ["ig"], configs=CONFIGS)
    targets = [a.target for a in reference.attributions["ig"]]
    variant = make_variant(tiny_handle, "prune-90")
    explained = explain_texts(variant.handle, TEXTS, ["ig"], targets=targets, configs=CONFIGS)
    assert [a.target for a in explained.attributions["ig"]] == targets  # same class explained
    summary = drift_summary(reference, explained)
    assert summary["drift_spearman"] is not None and summary["drift_spearman"] < 1.0
    assert len(summary["per_sentence"]["ig"]) == len(TEXTS)


def test_int8_skips_gradient_explainers_with_a_reason(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    variant = make_variant(tiny_handle, "int8")
    explained = explain_texts(variant.handle, TEXTS[:1], ["ig", "ablation"], configs=CONFIGS)
    assert "ig" in explained.skipped and "gradient" in explained.skipped["ig"]
    assert len(explained.attributions["ablation"]) == 1


def test_run_compression_table_viewer_and_saved_variants(tiny_model_dir: Path, tmp_path: Path) -> None:
    seen: list[float] = []
    result = run_compression(_small(tiny_model_dir), tmp_path, progress=lambda f, m: seen.append(f))
    json.dumps(result)  # the job writes it as JSON
    rows = {r["variant"]: r for r in result["rows"]}
    assert list(rows) == ["original", "int8", "prune-40"]
    assert rows["original"]["drift_spearman"] == 1.0 and rows["original"]["drift_delta_comp"] == 0.0
    assert "skipped" in rows["int8"]["drift"]["ig"] and rows["int8"]["drift"]["ablation"]["n"] == 2
    assert rows["prune-40"]["sparsity"] > 0.3 and rows["int8"]["compression"]["backend_reason"]
    assert seen == sorted(seen) and seen[-1] == 1.0
    viewer = result["viewer"]
    assert len(viewer["texts"]) == 1 and set(viewer["attributions"]) == set(rows)
    shown = viewer["attributions"]["prune-40"]["ig"][0]
    assert shown["text"] == viewer["texts"][0] and shown["target"] == viewer["targets"][0]
    assert "ig" not in viewer["attributions"]["int8"]
    for name in ("int8", "prune-40"):  # kept so the page can save them to the store
        folder = Path(result["variant_dirs"][name])
        handle = load(str(folder), device="cpu")
        assert handle.info["compression"]["variant"] == name
        assert handle.info["compression"]["metrics"]["accuracy"] == rows[name]["accuracy"]
    assert is_quantized(load(result["variant_dirs"]["int8"], device="cpu").model)


def test_job_reports_progress_and_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    ctx = JobContext(tmp_path, _small(tiny_model_dir, variants=["prune-50"], methods=["ablation"]), _started=0.0)
    result = run_job(ctx)
    assert [r["variant"] for r in result["rows"]] == ["original", "prune-50"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["row"]["variant"] for r in records] == ["original", "prune-50"]
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["progress"] == 1.0
    (tmp_path / "CANCEL").touch()
    with pytest.raises(CompressionError, match="Cancelled"):
        run_job(ctx)


def test_unsupported_variant_is_reported_not_fatal(tiny_model_dir: Path) -> None:
    result = run_compression(_small(tiny_model_dir, variants=["fp16", "prune-20"], methods=["ablation"]))
    assert [r["variant"] for r in result["rows"]] == ["original", "prune-20"]
    assert "GPU" in result["errors"]["fp16"]


def test_bad_config_is_refused() -> None:
    with pytest.raises(CompressionError):
        CompressConfig.from_dict({"variants": ["int8"], "bogus": 1})
    with pytest.raises(CompressionError):
        CompressConfig(variants="int8,nope-3")


def test_cli_compress_json(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from model_zoo.__main__ import main

    args = ["compress", "--model", str(tiny_model_dir), "--variants", "prune-50", "--methods", "ablation",
            "--n-eval", "20", "--n-drift", "1", "--repeats", "3"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["variant"] for r in out["rows"]] == ["original", "prune-50"]
    assert main([*args, "--quiet"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["variant", "acc", "F1"] and "prune-50" in table
