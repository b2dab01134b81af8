"""Explanations per second over N test sentences: this process, Ray with 1 worker, Ray with 2 workers.

    python bench/ray_throughput.py [--n 1000] [--methods ig,shap] [--model M]

Ray's start-up (a local Ray, then the actors loading the model) is timed apart from the work; the work is
timed from the first batch handed out to the last result. Each worker reserves one CPU and runs torch on one
thread (Ray sets OMP_NUM_THREADS=1); the local process runs torch on every core, as the app does.
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (puts the project root on sys.path)
from _common import table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--methods", default="ig,shap")
    parser.add_argument("--model", default=None, help="store id or folder (default: the default model)")
    args = parser.parse_args()

    import ray

    from explainers.batch import explain_many
    from model_zoo import engine
    from model_zoo.data import rotten_tomatoes

    handle = _common.default_handle(args.model)
    model = str(handle.info.get("path") or handle.id)
    texts = [t for t in rotten_tomatoes("test").texts if t.strip()][: args.n]
    rows = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        list(explain_many(texts[:2], method, handle=handle))  # warm up the local process
        begin = time.perf_counter()
        done = sum(1 for _ in explain_many(texts, method, handle=handle))
        local = time.perf_counter() - begin
        rows.append({"explainer": method, "engine": "local process", "workers": 1, "start-up s": 0.0,
                     "work s": local, "explanations/s": done / local, "vs 1 Ray worker": float("nan")})
        one_worker = None
        for workers in (1, 2):
            cfg = engine.config({"engine": "ray", "workers": workers, "batch_size": 8})
            startup = engine.timed_start(cfg)
            begin = time.perf_counter()
            list(explain_many(texts[: 2 * workers], method, model=model, run_on=cfg))  # actors load the model
            startup += time.perf_counter() - begin
            begin = time.perf_counter()
            done = sum(1 for _ in explain_many(texts, method, model=model, run_on=cfg))
            work = time.perf_counter() - begin
            ray.shutdown()
            rate = done / work
            one_worker = one_worker or rate
            rows.append({"explainer": method, "engine": "Ray", "workers": workers, "start-up s": startup,
                         "work s": work, "explanations/s": rate, "vs 1 Ray worker": rate / one_worker})
            print(f"{method}: Ray {workers} worker(s) done", flush=True)
    print(f"\n{len(texts)} Rotten Tomatoes test sentences, model {handle.id}\n")
    print(table(rows, "{:.2f}"))


if __name__ == "__main__":
    main()
