"""Explainer cost on 20 Rotten Tomatoes test sentences with the default model.

Per explainer: median wall time, median model passes, the floor (the same number of bare forward
passes of ``predict_proba`` at the batch size the explainer uses, timed in this run on the same sentences)
and the ratio time / floor. A ratio near 1 means the explainer's time is model time; gradient methods
also pay a backward pass, so expect 2-3x there.

    python bench/explainers.py [--n 20] [--methods ig,shap,...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import default_handle, table

import explainers
from model_zoo.data import rotten_tomatoes


def _batch(method: str) -> int:
    """The batch size an explainer's passes use with its default config."""
    config = explainers.get(method).Config()
    for name in ("internal_batch_size", "batch_size", "perturbations_per_eval"):
        if hasattr(config, name):
            return int(getattr(config, name))
    return 64 if method == "lime" else 1  # LIME batches inside predict_proba; gradient/attention: one text


def _pass_seconds(handle, texts: list[str], batch: int) -> float:  # type: ignore[no-untyped-def]
    """Median time of one bare predict_proba pass of ``batch`` copies of each sentence."""
    times = []
    for text in texts:
        t = time.perf_counter()
        handle.predict_proba([text] * batch, batch_size=batch)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--methods", default=",".join(explainers.REGISTRY))
    args = parser.parse_args()
    handle = default_handle()
    texts = rotten_tomatoes("test").texts[: args.n]
    methods = args.methods.split(",")
    for m in methods:  # warm-up: first calls pay one-off costs (imports, allocations)
        explainers.get(m).explain(handle, texts[0])
    rows = []
    for m in methods:
        secs, passes = [], []
        for text in texts:
            a = explainers.get(m).explain(handle, text)
            secs.append(a.cost.seconds)
            passes.append(a.cost.passes)
        med_s, med_p = statistics.median(secs), statistics.median(passes)
        floor = med_p * _pass_seconds(handle, texts, _batch(m))
        rows.append({"explainer": m, "median s": med_s, "passes": med_p, "floor s": floor,
                     "ratio": med_s / floor if floor else float("nan")})
    print(f"{len(texts)} sentences, device {handle.device}, {torch.get_num_threads()} threads")
    print(table(rows))


if __name__ == "__main__":
    main()
