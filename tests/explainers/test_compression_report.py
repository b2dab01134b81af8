"""explainers.compression_report: explanation drift, the compress job and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from explainers.compression_report import (
    CompressConfig,
    build_config,
    drift_summary,
    explain_texts,
    format_table,
    method_config,
    run_compression,
    run_job,
)
from model_zoo import load
from model_zoo.compression import CompressionError, at_batch_size, is_quantized, make_variant
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


def test_headline_drift_compares_only_explainers_every_variant_ran(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    """int8 runs ablation but not IG: its headline must not be ablation alone next to others' IG+ablation."""
    methods = ["ig", "ablation"]
    reference = explain_texts(tiny_handle, TEXTS, methods, configs=CONFIGS)
    targets = [a.target for a in reference.attributions["ig"]]
    pruned = explain_texts(make_variant(tiny_handle, "prune-90").handle, TEXTS, methods, targets=targets,
                           configs=CONFIGS)
    int8 = explain_texts(make_variant(tiny_handle, "int8").handle, TEXTS, methods, targets=targets, configs=CONFIGS)
    # Unasked, a variant missing one of the reference's explainers gets no headline (not a mean of the rest).
    lone = drift_summary(reference, int8)
    assert lone["drift_spearman"] is None and lone["drift_top_k"] is None and lone["drift_compared_on"] == []
    assert "skipped" in lone["drift"]["ig"] and lone["drift"]["ablation"]["n"] == len(TEXTS)  # still per explainer
    # Compared on the shared explainer, both headlines are exactly that explainer's drift.
    for explained in (pruned, int8):
        summary = drift_summary(reference, explained, compared_on=["ablation"])
        assert summary["drift_compared_on"] == ["ablation"]
        per = summary["drift"]["ablation"]
        assert (summary["drift_spearman"], summary["drift_top_k"], summary["drift_delta_comp"]) == (
            per["spearman"], per["top_k_overlap"], per["delta_comp_aopc"])
    both = drift_summary(reference, pruned)  # the pruned variant alone: over every explainer, named
    assert both["drift_compared_on"] == methods
    assert both["drift_spearman"] == pytest.approx(
        (both["drift"]["ig"]["spearman"] + both["drift"]["ablation"]["spearman"]) / 2, abs=1e-4)


def test_int8_explanations_depend_on_the_batch_size_they_are_served_at(tiny_handle) -> None:  # type: ignore[no-untyped-def]
    int8 = make_variant(tiny_handle, "int8").handle
    scores = {bs: explain_texts(at_batch_size(int8, bs), TEXTS[:2], ["ablation"],
                                configs={"ablation": method_config("ablation", batch_size=bs)})
              for bs in (1, 32)}
    assert method_config("ablation", batch_size=1).perturbations_per_eval == 1
    diffs = [max(abs(x - y) for x, y in zip(a.scores, b.scores)) for a, b in
             zip(scores[1].attributions["ablation"], scores[32].attributions["ablation"])]
    assert max(diffs) > 1e-5, diffs


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
    # int8 runs no IG, so every variant's headline is ablation's drift alone, and the result says so.
    assert result["drift_compared_on"] == ["ablation"]
    for name in ("int8", "prune-40"):
        assert rows[name]["drift_compared_on"] == ["ablation"]
        assert rows[name]["drift_spearman"] == rows[name]["drift"]["ablation"]["spearman"]
        assert rows[name]["drift_top_k"] == rows[name]["drift"]["ablation"]["top_k_overlap"]
    assert rows["prune-40"]["drift"]["ig"]["n"] == 2  # IG drift is still reported, per explainer
    # Drift per variant, explainer and batch size; int8 (batch-dependent outputs) at batch 1 and 32.
    seen_rows = {(r["variant"], r["explainer"], r["batch_size"]): r for r in result["drift_rows"]}
    assert set(seen_rows) == {("int8", "ig", 32), ("int8", "ablation", 32), ("int8", "ig", 1),
                              ("int8", "ablation", 1), ("prune-40", "ig", 32), ("prune-40", "ablation", 32)}
    assert "gradient" in seen_rows[("int8", "ig", 1)]["skipped"]
    assert seen_rows[("int8", "ablation", 1)]["spearman"] == rows["int8"]["drift_b1"]["ablation"]["spearman"]
    assert seen_rows[("prune-40", "ig", 32)]["spearman"] == rows["prune-40"]["drift"]["ig"]["spearman"]
    assert result["drift_batch_size"] == 32 and result["eval_batch_sizes"] == [1, 32]
    # Accuracy and agreement at both batch sizes; sparsity over both named denominators.
    for row in rows.values():
        assert {"accuracy_b1", "accuracy_b32", "agreement_b1", "agreement_b32"} <= set(row)
    assert rows["prune-40"]["sparsity_pruned_layers"] == pytest.approx(0.4, abs=1e-3)
    assert rows["prune-40"]["sparsity_all_weights"] < 0.1
    assert rows["int8"]["compression"]["backend_reason"]
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
        assert handle.info["compression"]["metrics"]["accuracy_b32"] == rows[name]["accuracy_b32"]
        test = handle.info["metrics"]["test"]  # the card's headline accuracy says its batch size
        assert (test["accuracy"], test["batch_size"], test["accuracy_b32"]) == (
            rows[name]["accuracy_b1"], 1, rows[name]["accuracy_b32"])
    text = format_table(result)
    assert "drift columns: mean over ablation" in text and "int8 / ablation @b1" in text
    assert "zeros/all: over all" in text and "zeros/pruned: over the" in text
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


def test_drift_on_ray_gives_the_local_numbers(tiny_model_dir: Path, tmp_path: Path, local_ray: None) -> None:
    config = _small(tiny_model_dir, variants=["prune-50"], methods=["ablation", "ig"])
    local = run_compression(config, tmp_path / "local")
    notes: list[str] = []
    on_ray = run_compression(config, tmp_path / "ray", progress=lambda f, m: notes.append(m),
                             run_on={"engine": "ray", "workers": 2, "batch_size": 1})
    for a, b in zip(local["rows"], on_ray["rows"]):
        assert a["variant"] == b["variant"]
        for method in ("ablation", "ig"):
            for stat in ("spearman", "top_k_overlap", "comp_aopc", "delta_comp_aopc"):
                assert a["drift"][method][stat] == pytest.approx(b["drift"][method][stat], abs=1e-4)
    assert not any("explained in this process" in m for m in notes)  # every model went to the workers


def test_unsupported_variant_is_reported_not_fatal(tiny_model_dir: Path) -> None:
    result = run_compression(_small(tiny_model_dir, variants=["fp16", "prune-20"], methods=["ablation"]))
    assert [r["variant"] for r in result["rows"]] == ["original", "prune-20"]
    assert "GPU" in result["errors"]["fp16"]


def test_bad_config_is_refused() -> None:
    with pytest.raises(CompressionError):
        build_config({"variants": ["int8"], "bogus": 1})
    with pytest.raises(CompressionError):
        CompressConfig(variants="int8,nope-3")


def test_cli_compress_json(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from explainers.__main__ import main

    args = ["compress", "--model", str(tiny_model_dir), "--variants", "prune-50", "--methods", "ablation",
            "--n-eval", "20", "--n-drift", "1", "--repeats", "3"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["variant"] for r in out["rows"]] == ["original", "prune-50"]
    assert main([*args, "--quiet"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:4] == ["variant", "acc@b1", "acc@b32", "F1@b32"] and "prune-50" in table
