"""Fine-tuning methods side by side: each method's default recipe on Rotten Tomatoes, one table.

Each method runs as the real ``finetune`` job (``model_zoo.finetune.run_here``: same data loading, Trainer
loop, saving and reloading), in its own process so that peak memory is that method's alone: peak RSS on
the CPU, ``torch.cuda.max_memory_allocated`` on a GPU. Only the epochs (1) and the training sample (2,000
sentences, seeded) are set here; everything else is the method's recipe. No periodic evaluation and no
checkpoints, so the wall time is training alone; validation accuracy is on the whole validation split, test
accuracy on the held-out test split (scored once, on the model as saved).

    LOUPE_HOME=/tmp/lh-bench-ft python bench/finetune.py [--methods lora,bitfit] [--limit 2000] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_one(method: str, base: str, limit: int, epochs: float) -> dict[str, object]:
    """Fine-tune with ``method`` in this process; returns the table row."""
    import torch

    from model_zoo import jobs
    from model_zoo.finetune import METHODS, DataSpec, FinetuneConfig, run_here

    cfg = FinetuneConfig(base=base, method=method, name=f"bench-{method.replace('_', '-')}", publish=False,
                         data=DataSpec("rt", limit=limit), train={"epochs": epochs, "eval_steps": 0, "save_steps": 0})
    job_id, status = run_here(cfg)
    if status.get("state") != "done":
        raise SystemExit(f"{method}: job {job_id} {status.get('state')}: {status.get('message')}")
    res = jobs.result(job_id) or {}
    cuda = torch.cuda.is_available()
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"method": METHODS[method].title, "train_s": res["train_seconds"], "job_s": res["seconds"],
            "steps": res["steps"], "train_loss": res["train_loss"],
            "val_cm": res["metrics"]["validation"]["confusion_matrix"],
            "trainable": res["trainable"], "trainable_pct": 100 * res["trainable"] / res["total"],
            "peak_mib": peak / 2**20, "peak_kind": "GPU allocated" if cuda else "RSS",
            "val_acc": res["metrics"]["validation"]["accuracy"], "test_acc": res["metrics"]["test"]["accuracy"],
            "device": "cuda" if cuda else f"cpu ({torch.get_num_threads()} threads)"}


def main() -> int:
    from model_zoo.finetune import METHODS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--base", default="minilm-base")
    parser.add_argument("--limit", type=int, default=2000, help="training sentences")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one method, JSON out
    args = parser.parse_args()
    if args.one:
        print("BENCH " + json.dumps(run_one(args.one, args.base, args.limit, args.epochs)), flush=True)
        return 0

    os.environ.setdefault("LOUPE_HOME", "/tmp/lh-bench-ft")
    rows = []
    for method in args.methods.split(","):
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--one", method, "--base", args.base, "--limit",
                               str(args.limit), "--epochs", str(args.epochs)],
                              capture_output=True, text=True, cwd=ROOT)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")]
        if proc.returncode or not lines:
            print(f"{method}: failed\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(lines[-1][6:]))
        print(f"  {method}: done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    if not rows:
        return 1
    print(f"\nFine-tuning {args.base} on {args.limit} Rotten Tomatoes training sentences, {args.epochs:g} epoch, "
          f"each method's default recipe; device {rows[0]['device']}\n")
    cols = [("method", "method", "{}"), ("trainable", "trainable", "{:,}"), ("trainable %", "trainable_pct", "{:.3f}"),
            ("val acc", "val_acc", "{:.3f}"), ("test acc", "test_acc", "{:.3f}"), ("train s", "train_s", "{:.1f}"),
            (f"peak MiB ({rows[0]['peak_kind']})", "peak_mib", "{:.0f}"), ("job s", "job_s", "{:.1f}"),
            ("steps", "steps", "{}"), ("train loss", "train_loss", "{:.3f}"), ("val confusion", "val_cm", "{}")]
    cells = [[c[0] for c in cols]] + [[fmt.format(r[key]) for _, key, fmt in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    for n, row in enumerate(cells):
        print("| " + " | ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
              + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return 0


if __name__ == "__main__":
    sys.exit(main())
