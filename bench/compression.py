"""Compressed variants of the default model compared: ``python bench/compression.py [--variants ...]``.

Prints one row per variant (original first): test accuracy and agreement with the original's predictions
at batch 1 and at batch 32 (int8 computes one activation scale per padded batch, so its outputs depend on
the batch), macro F1, model latency p50/p95 at batch 1 and 32 (warm, same threads, interleaved in one run),
throughput, size on disk, parameters, sparsity over all parameters and over the pruned layers' weights,
peak memory, and explanation drift (Spearman of word scores, top-k overlap, change in comprehensiveness
AOPC) averaged over the explainers every variant ran; then drift per explainer (int8 at batch 1 and 32).
Then checks the int8 target: at most 0.5x the fp32 latency at batch 1, with at most 1 point of accuracy
lost at batch 1 AND at batch 32.

The model is read from the store (``LOUPE_HOME``); variants are made in memory and their folders written
to a temporary directory (``--out`` keeps them), never into the store.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the project root first on sys.path, bench/ out)

from explainers.compression_report import CompressConfig, build_config, format_table, run_compression
from model_zoo import spec as config_spec

VARIANTS = "int8,prune-30,prune-50,layers-3,distill-3l"
BENCH = CompressConfig(n_eval=0, repeats=40)  # the whole test split, more timed batches than the job's default


def _variants(names: str, recovery: int, distill_examples: int, epochs: float) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        spec: dict[str, object] = {"name": name}
        if name.startswith("layers-") and recovery:
            spec.update(recovery_examples=recovery, epochs=epochs)
        if name.startswith("distill-"):
            spec.update(train_examples=distill_examples, epochs=epochs)
        out.append(spec)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the table. Returns 0, or 1 when the int8 target is missed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    skip = ("variants", "save_variants")  # variants: names here, expanded with the settings below
    config_spec.add_arguments(p, CompressConfig, skip=skip, scope="compress", defaults_from=BENCH)
    p.add_argument("--variants", default=VARIANTS, help=f"comma-separated (default {VARIANTS})")
    p.add_argument("--recovery", type=int, default=500, help="layers-N: recovery fine-tune texts (0: none)")
    p.add_argument("--distill-examples", type=int, default=2000, help="distill: training texts")
    p.add_argument("--epochs", type=float, default=1.0, help="distill/recovery epochs")
    p.add_argument("--out", default=None, help="keep variant folders here")
    p.add_argument("--json-out", default=None, help="also write the full result as JSON here")
    args = p.parse_args(argv)
    cfg = build_config({**config_spec.from_args(args, CompressConfig, skip=skip),
                        "variants": _variants(args.variants, args.recovery, args.distill_examples, args.epochs),
                        "save_variants": args.out is not None})
    workdir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="loupe-bench-compress-"))
    start = time.perf_counter()

    def show(frac: float, message: str) -> None:
        print(f"[{frac:4.0%} {time.perf_counter() - start:6.0f} s] {message}", file=sys.stderr, flush=True)

    try:
        result = run_compression(cfg, workdir, progress=show)
    finally:
        if args.out is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print(f"model {result['model']} on {result['device']}, {result['threads']} threads; accuracy on "
          f"{result['eval_texts']} test texts; drift on {result['drift_texts']} sentences with "
          f"{', '.join(cfg.methods)}; {result['seconds']:.0f} s")
    print(format_table(result))
    rows = {r["variant"]: r for r in result["rows"]}
    for name, row in rows.items():
        made = row.get("compression", {}).get("seconds_to_make")
        if made is not None:
            print(f"  {name}: made in {made} s")
    if "int8" not in rows:
        return 0
    ratio = rows["int8"]["latency_x_b1"]
    lost = {bs: rows["original"][f"accuracy_b{bs}"] - rows["int8"][f"accuracy_b{bs}"] for bs in (1, 32)}
    ok = ratio <= 0.5 and max(lost.values()) <= 0.01
    print(f"int8 target (<= 0.5x fp32 latency at batch 1, <= 1 point accuracy lost at batch 1 and 32): "
          f"{ratio:.2f}x, {100 * lost[1]:.1f} points lost at batch 1, {100 * lost[32]:.1f} at batch 32 -> "
          f"{'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
