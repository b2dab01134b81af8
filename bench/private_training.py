"""Private training measured: the cost of differential privacy and of federation in accuracy and time, and whether
privacy changes what the model relies on.

1. **DP-SGD** (``--part dp``): the same base, method and hyper-parameters on N Rotten Tomatoes training sentences,
   non-private (the standard job, transformers' Trainer) and with DP-SGD at each ε (Opacus, RDP accountant,
   δ = 1/N rounded down to a power of ten, clipping norm 1, Poisson sampling): test accuracy, validation accuracy,
   training time, ε spent and the noise multiplier.
2. **Federated** (``--part fed``): K clients (IID, and non-IID by Dirichlet label skew) for R rounds of FedAvg, one
   local epoch each, against the same budget trained centrally (R epochs over the same texts): validation
   accuracy per round (centrally: after each epoch), test accuracy, time per round.
3. **Explanation drift** (``--part drift``): IG and Feature Ablation on S test sentences under the non-private and
   the ε = 3 model, compared as the Compare page does (Spearman and Kendall of word scores, top-k overlap, flipped
   predictions); for scale, the same between two non-private runs with different seeds (the seed also draws the
   N-sentence sample). Uses the models part 1 saved.

Every training run is the real ``finetune`` job in its own process; finished runs are kept in ``--out`` (JSON), so
an interrupted bench continues where it stopped.

    LOUPE_HOME=/tmp/lh-bench-private python bench/private_training.py [--part dp,fed,drift] [--method head_only]
        [--limit 2000] [--eps 8,3,1] [--clip-only] [--fed-limit 1000] [--fed-val 500] [--clients 5] [--rounds 10]
        [--alpha 0.3] [--drift-n 20]

The README's figures: ``--clip-only --fed-limit 500 --fed-val 400`` on a shared 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))


def train_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One fine-tuning job as ``spec`` says (in this process); its numbers."""
    from model_zoo import jobs
    from model_zoo.finetune import DataSpec, FinetuneConfig, run_here

    cfg = FinetuneConfig(base="minilm-base", method=spec["method"], name=spec["name"], overwrite=True,
                         data=DataSpec("rt", limit=spec["limit"], validation_limit=spec.get("val_limit", 0)),
                         train=spec["train"],
                         dp=spec.get("dp", {}), federated=spec.get("federated", {}))
    job_id, status = run_here(cfg)
    if status.get("state") != "done":
        raise SystemExit(f"{spec['name']}: job {job_id} {status.get('state')}: {status.get('message')}")
    res = jobs.result(job_id) or {}
    records = jobs.metrics(job_id)
    privacy, fed = res.get("privacy") or {}, res.get("federated") or {}
    return {"name": spec["name"], "test_acc": res["metrics"]["test"]["accuracy"],
            "val_acc": res["metrics"]["validation"]["accuracy"], "train_s": res["train_seconds"],
            "steps": res["steps"], "epsilon": privacy.get("epsilon"), "delta": privacy.get("delta"),
            "sigma": privacy.get("noise_multiplier"),
            "val_curve": [(r["step"], r["accuracy"]) for r in records if r.get("split") == "validation"],
            "round_seconds": fed.get("round_seconds"), "clients": [c["size"] for c in fed.get("per_client", [])],
            "client_labels": [c["labels"] for c in fed.get("per_client", [])]}


def _run(spec: dict[str, Any], done: dict[str, Any], out: Path) -> dict[str, Any]:
    if spec["name"] in done:
        return dict(done[spec["name"]])
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True,
                          cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{spec['name']} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    done[spec["name"]] = json.loads(lines[-1][6:])
    out.write_text(json.dumps(done, indent=1), encoding="utf-8")
    print(f"  {spec['name']}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return dict(done[spec["name"]])


def _table(rows: list[list[Any]], head: list[str]) -> str:
    cells = [head] + [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |" for r in cells]
    return "\n".join([lines[0], "|" + "|".join("-" * (w + 2) for w in widths) + "|", *lines[1:]])


def part_dp(args: argparse.Namespace, done: dict[str, Any], out: Path) -> None:
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr, "warmup_ratio": 0.0,
             "weight_decay": 0.0, "eval_steps": 0, "save_steps": 0}
    base = {"method": args.method, "limit": args.limit, "train": train}
    rows = []
    runs: list[tuple[str, str, dict[str, Any]]] = [("non-private", "np", {})]
    if args.clip_only:  # the DP loop with clipping but (almost) no noise: what clipping alone costs
        runs.append(("clipping only (σ = 1e-6)", "cliponly", {"enabled": True, "target_epsilon": 0.0,
                                                              "noise_multiplier": 1e-6}))
    runs += [(f"ε = {float(e):g}", f"dp{float(e):g}", {"enabled": True, "target_epsilon": float(e)})
             for e in args.eps.split(",")]
    for label, stem, dp in runs:
        r = _run({**base, "name": f"bench-{args.method.replace('_', '-')}-{stem}", "dp": dp}, done, out)
        eps = "-" if r["epsilon"] is None else ("huge" if r["epsilon"] > 1e4 else f"{r['epsilon']:.2f}")
        rows.append([label, r["test_acc"], r["val_acc"], r["train_s"], eps, "-" if r["sigma"] is None else r["sigma"],
                     "-" if r["delta"] is None else f"{r['delta']:g}", r["steps"]])
    print(f"\nDP-SGD: {args.method} on {args.limit} Rotten Tomatoes sentences, {args.epochs:g} epoch, batch "
          f"{args.batch_size}, lr {args.lr:g} (AdamW, no warm-up), clipping norm 1, Poisson sampling, RDP\n")
    print(_table(rows, ["run", "test acc", "val acc", "train s", "ε spent", "σ", "δ", "steps"]))


def part_fed(args: argparse.Namespace, done: dict[str, Any], out: Path) -> None:
    train = {"epochs": float(args.rounds), "batch_size": args.batch_size, "learning_rate": args.lr,
             "warmup_ratio": 0.0, "weight_decay": 0.0, "save_steps": 0,
             "eval_steps": -(-int(args.fed_limit * 1.0) // args.batch_size)}
    central = _run({"method": args.method, "limit": args.fed_limit, "train": train, "val_limit": args.fed_val,
                    "name": f"bench-{args.method.replace('_', '-')}-central{args.fed_limit}"}, done, out)
    runs = {}
    for kind in ("iid", "dirichlet"):
        fed = {"enabled": True, "clients": args.clients, "rounds": args.rounds, "local_epochs": 1.0, "partition": kind,
               "alpha": args.alpha}
        spec = {"method": args.method, "limit": args.fed_limit, "val_limit": args.fed_val,
                "name": f"bench-{args.method.replace('_', '-')}-fed-{kind}", "federated": fed,
                "train": {**train, "epochs": 1.0, "eval_steps": 0}}
        runs[kind] = _run(spec, done, out)
    per_round = {k: dict(r["val_curve"]) for k, r in runs.items()}
    epochs = sorted(central["val_curve"])
    rows = []
    for rnd in range(0, args.rounds + 1):
        cen = dict(epochs).get(rnd * train["eval_steps"]) if rnd else None
        rows.append([rnd, per_round["iid"].get(rnd, "-"), per_round["dirichlet"].get(rnd, "-"),
                     "-" if cen is None else cen])
    print(f"\nFederated: {args.method}, {args.fed_limit} Rotten Tomatoes sentences over {args.clients} clients, "
          f"{args.rounds} rounds of FedAvg, 1 local epoch, batch {args.batch_size}, lr {args.lr:g}; central: "
          f"{args.rounds} epochs over the same texts. Validation accuracy per round:\n")
    print(_table(rows, ["round", "IID", f"non-IID (α {args.alpha:g})", "central (epoch)"]))
    print()
    summary = [["central", central["test_acc"], central["train_s"], "-", "-"]]
    for kind, r in runs.items():
        secs = r["round_seconds"] or []
        summary.append([f"federated {kind}", r["test_acc"], r["train_s"],
                        f"{sum(secs[1:]) / max(1, len(secs) - 1):.1f} (first {secs[0]:.0f})" if secs else "-",
                        " / ".join(f"{c}: {'-'.join(str(v) for v in lab.values())}"
                                   for c, lab in zip(r["clients"], r["client_labels"]))])
    print(_table(summary, ["run", "test acc", "train s", "s per round", "client sizes: labels neg-pos"]))


def _explain_all(model: str, texts: list[str], methods: list[str]) -> dict[str, list[Any]]:
    import explainers
    from model_zoo import load

    handle = load(model, device="cpu")
    return {m: [explainers.get(m).explain(handle, t) for t in texts] for m in methods}


def part_drift(args: argparse.Namespace, done: dict[str, Any], out: Path) -> None:
    import numpy as np

    from explainers.metrics import drift
    from model_zoo.data import rotten_tomatoes

    train = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr, "warmup_ratio": 0.0,
             "weight_decay": 0.0, "eval_steps": 0, "save_steps": 0}
    stem = f"bench-{args.method.replace('_', '-')}"
    _run({"method": args.method, "limit": args.limit, "train": {**train, "seed": 14}, "name": f"{stem}-np-seed14"},
         done, out)
    test = rotten_tomatoes("test")
    rng = np.random.default_rng(0)
    texts = [test.texts[i] for i in sorted(rng.choice(len(test), size=args.drift_n, replace=False))]
    methods = ["ig", "ablation"]
    ref = _explain_all(f"{stem}-np", texts, methods)
    rows = []
    for other, label in ((f"{stem}-np-seed14", "non-private, another seed"), (f"{stem}-dp3", "ε = 3")):
        exp = _explain_all(other, texts, methods)
        for m in methods:
            d = [drift(a, b) for a, b in zip(ref[m], exp[m])]
            rows.append([label, m, float(np.nanmean([x.spearman for x in d if x.spearman is not None])),
                         float(np.nanmean([x.kendall for x in d if x.kendall is not None])),
                         float(np.mean([x.top_k_overlap for x in d])), sum(x.prediction_flipped for x in d)])
    print(f"\nExplanation drift against the non-private model on {args.drift_n} test sentences (means):\n")
    print(_table(rows, ["model", "explainer", "Spearman", "Kendall", "top-k overlap", "predictions flipped"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="dp,fed,drift")
    parser.add_argument("--method", default="head_only")
    parser.add_argument("--limit", type=int, default=2000, help="training sentences (DP and drift)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-2)
    parser.add_argument("--eps", default="8,3,1")
    parser.add_argument("--clip-only", action="store_true", help="also a DP run with clipping and no real noise")
    parser.add_argument("--fed-limit", type=int, default=1000, help="training sentences shared by the clients")
    parser.add_argument("--fed-val", type=int, default=500, help="validation sentences scored after each round")
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.3)
    parser.add_argument("--drift-n", type=int, default=20)
    parser.add_argument("--out", default="")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one run, JSON out
    args = parser.parse_args()
    if args.one:
        print("BENCH " + json.dumps(train_one(json.loads(args.one))), flush=True)
        return 0
    os.environ.setdefault("LOUPE_HOME", "/tmp/lh-bench-private")
    out = Path(args.out or Path(os.environ["LOUPE_HOME"]) / "bench-private.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    parts = {"dp": part_dp, "fed": part_fed, "drift": part_drift}
    for part in args.part.split(","):
        parts[part](args, done, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
