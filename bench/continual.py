"""Continual fine-tuning: naive, replay and EWC on a three-task sequence, with the accuracy matrix of each.

Runs the real ``continual`` job (``model_zoo.continual.run_here``: the same data, head, Trainer loop, scoring
and saving as the page and ``python -m model_zoo continual``) on the bundled ``politics`` sequence — Rotten
Tomatoes sentiment, then the speaker's party in the 2016 debates, then in the 2012 convention speeches — from
the bundled MiniLM encoder. Every strategy starts from the same model after the first task; the seconds are
each strategy's own (training, scoring, and for EWC its Fisher estimates), the first task's are printed apart.
With ``--drift N`` it also explains N first-task test sentences after every step (the page's ``forgetting``
job) and prints the rank correlation with the explanations before.

    LOUPE_HOME=/tmp/lh-bench-cl python bench/continual.py [--limit 600] [--test-limit 500] [--epochs 1] \
        [--method full] [--scenario class] [--strategies naive,replay,ewc] [--ewc-lambda 1000] [--drift 20] \
        [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequence", default="politics")
    p.add_argument("--base", default="minilm-base")
    p.add_argument("--method", default="full", choices=["full", "lora"])
    p.add_argument("--scenario", default="class", choices=["class", "task"])
    p.add_argument("--strategies", default="naive,replay,ewc")
    p.add_argument("--limit", type=int, default=600, help="training texts per task")
    p.add_argument("--test-limit", type=int, default=500, help="test texts per task")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--replay-size", type=int, default=200)
    p.add_argument("--ewc-lambda", type=float, default=None)
    p.add_argument("--drift", type=int, default=0, help="first-task sentences explained after every step (0: none)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a CPU shared with other work, two threads fighting for two "
                        "busy cores ran a training step 7x slower than one)")
    p.add_argument("--json", default=None, help="also write the job's result here")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from model_zoo import jobs
    from model_zoo.continual import ContinualConfig, format_result, run_here

    values = {"base": args.base, "method": args.method, "scenario": args.scenario, "sequence": args.sequence,
              "strategies": [s for s in args.strategies.split(",") if s], "limit": args.limit,
              "test_limit": args.test_limit, "replay_size": args.replay_size, "train": {"epochs": args.epochs}}
    if args.ewc_lambda is not None:
        values["ewc_lambda"] = args.ewc_lambda
    cfg = ContinualConfig.from_dict(values)
    started = time.time()
    if args.drift:
        from explainers.continual_drift import job_config

        folder = jobs.create("forgetting", job_config(cfg, {"n_sentences": args.drift}))
        jobs.run_in_process(folder)
        job_id, status = folder.name, jobs.status(folder.name)
    else:
        job_id, status = run_here(cfg)
    if status.get("state") != "done":
        raise SystemExit(f"job {job_id} {status.get('state')}: {status.get('message')}")
    res = jobs.result(job_id) or {}
    print(f"\n{args.sequence}: {args.limit} training / {args.test_limit} test texts per task, "
          f"{args.epochs:g} epoch(s), {cfg.method} from {args.base}, torch threads {torch.get_num_threads()}, "
          f"job {job_id}")
    print(f"first task trained once in {res['shared']['first_task_seconds']} s (shared by every strategy); "
          f"EWC's first Fisher {res['shared']['fisher_seconds']} s (counted in EWC's time)")
    print(format_result(res))
    for name in res["order"]:
        observed = res["strategies"][name].get("observed") or []
        for step, o in enumerate(observed, 2):
            words = ", ".join(f"{w['word']} {w['change']:+.2f}" for w in o.get("changed_words", [])[:5])
            print(f"  {name} after task {step}: first-task explanations rank corr {o.get('spearman')}, top-k "
                  f"overlap {o.get('top_k_overlap')}, prediction moved {o.get('flipped')}; changed most: {words}")
    print(f"total {time.time() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
