"""Rank the explainers by faithfulness on the default model: ``python bench/faithfulness.py [--n 100]``.

Runs :func:`explainers.evaluation.evaluate` (cached per explainer under ``LOUPE_HOME/reports/eval-cache``;
``--no-cache`` recomputes) and prints the ranking table, then the pairwise agreement matrix.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explainers.evaluation import evaluate  # noqa: E402
from model_zoo import DEFAULT_MODEL_ID  # noqa: E402
from model_zoo.cli import table as text_table  # noqa: E402

DEFAULT = "ig,shap,lime,attention,saliency,grad_x_input,ablation"


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print the table. Returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL_ID)
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=100, help="sentences (default 100)")
    p.add_argument("--methods", default=DEFAULT, help=f"comma-separated (default {DEFAULT})")
    p.add_argument("--no-cache", action="store_true")
    args = p.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    start = time.perf_counter()

    def show(done: float, total: float, message: str) -> None:
        print(f"\r[{done:.0f}/{total:.0f} {time.perf_counter() - start:6.0f} s] {message:<40}", end="",
              file=sys.stderr, flush=True)

    report = evaluate(args.model, args.split, args.n, methods, use_cache=not args.no_cache, progress=show)
    print(file=sys.stderr)
    print(report.table())
    names = [r.method for r in report.rows]
    print("\nmean Spearman agreement (rows x columns)")
    print(text_table(([a] + ["1.000" if a == b else _fmt(report.pairwise[a].get(b, {}).get("spearman"))
                                for b in names] for a in names), ["", *names]))
    print(f"\n{time.perf_counter() - start:.0f} s in all (cached explainers: "
          f"{', '.join(r.method for r in report.rows if r.cached) or 'none'})")
    return 0


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    sys.exit(main())
