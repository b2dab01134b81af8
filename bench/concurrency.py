"""Eight sessions explaining at once with IG + SHAP on the default model: time to result and peak memory.

Each session is a thread that calls the service the Explain page calls (``dashboard.services.run_one``) for
IG and then SHAP on its own Rotten Tomatoes test sentence, all starting together, as eight people pressing
Explain at the same moment would. Three configurations, each in a fresh process (so peak RSS is its own):

- ``before``: the code before the readers-writer gate (one global lock per model around every explanation
  and pass): by default the parent of the first commit whose ``model_zoo/handle.py`` uses the gate
  (``--before REF`` to choose), run from a scratch copy made with ``git archive`` (the working tree is not
  touched);
- ``after``: this tree, with its defaults (``LOUPE_MAX_RUNNING=4`` at once, one per session; IG holds the
  model alone, SHAP shares it pass by pass);
- ``after, 8 slots``: this tree with ``LOUPE_MAX_RUNNING=8``.

    python bench/concurrency.py [--sessions 8] [--methods ig,shap] [--model PATH] [--repeat 2] [--before REF]
    python bench/concurrency.py --long-evals 2000    # one long SHAP first: do the others wait for it?
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _worker(args: argparse.Namespace) -> None:
    """Run the sessions in this process and print one JSON line (root of the code to use is sys.path[0])."""
    import logging
    import resource
    import threading
    import time

    logging.disable(logging.WARNING)  # Streamlit's "no runtime" notes: the caches work without one
    import explainers
    from dashboard import services
    from model_zoo import load
    from model_zoo.data import rotten_tomatoes

    handle = load(args.model, device=os.environ.get("LOUPE_DEVICE", "cpu"))
    methods = args.methods.split(",")
    test = rotten_tomatoes("test")
    texts = [t for t in test.texts if 60 <= len(t) <= 140][: args.sessions + 1]
    warm = services.ExplainRequest(services.model_key(handle), texts.pop(), methods)
    long_text = " ".join(t for t in test.texts[:400] if len(t) > 100)[:1500]
    for m in methods:  # imports and first-call costs, outside the clock
        services.run_one(handle, warm, m)
    start = threading.Barrier(args.sessions)
    took: dict[int, float] = {}
    long_run = args.long_evals > 0  # session 0 asks for one long SHAP run; the others start a second later

    def session(i: int) -> None:
        if long_run and i == 0:  # a review-length text (about 250 words), so SHAP has many tokens to split
            config = explainers.get("shap").Config(max_evals=args.long_evals)
            req = services.ExplainRequest(services.model_key(handle), long_text, ["shap"], {"shap": config})
        else:
            req = services.ExplainRequest(services.model_key(handle), texts[i], methods)
        start.wait()
        if long_run and i:
            time.sleep(1.0)
        t0 = time.perf_counter()
        for m in req.methods:
            services.run_one(handle, req, m)
        took[i] = time.perf_counter() - t0

    t0 = time.perf_counter()
    threads = [threading.Thread(target=session, args=(i,)) for i in range(args.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    times = sorted(t for i, t in took.items() if not (long_run and i == 0))
    row = {"median_s": statistics.median(times), "best_s": times[0], "worst_s": times[-1], "wall_s": wall}
    if long_run:
        row["long_shap_s"] = took[0]
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(row))


def _run(label: str, code_root: Path, args: argparse.Namespace, env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    cmd = [sys.executable, str(Path(__file__)), *_argv(args), "--code-root", str(code_root)]
    out = subprocess.run(cmd, env={**os.environ, **env}, cwd=code_root, capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"{label} failed:\n{out.stderr[-3000:]}")
    return {"code": label, **json.loads(lines[-1])}


def _before_ref() -> str:
    """The commit before the readers-writer gate came in (HEAD when there is no such commit)."""
    out = subprocess.run(["git", "-C", str(ROOT), "log", "--reverse", "--format=%H", "-S", "gate_for", "--",
                          "model_zoo/handle.py"], capture_output=True, text=True, check=False).stdout.split()
    return f"{out[0]}^" if out else "HEAD"


def _argv(args: argparse.Namespace) -> list[str]:
    return ["--worker", "--sessions", str(args.sessions), "--methods", args.methods, "--model", args.model,
            "--long-evals", str(args.long_evals)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--methods", default="ig,shap")
    parser.add_argument("--model", default="")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code-root", default=str(ROOT), help=argparse.SUPPRESS)
    parser.add_argument("--only", default="", help="comma-separated subset of: before,after,after8")
    parser.add_argument("--long-evals", type=int, default=0,
                        help="session 0 runs one SHAP with this many evaluations instead; the other sessions start "
                             "1 s later (their times are the table's; 0: all sessions alike)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each configuration, interleaved (medians)")
    parser.add_argument("--before", default="", help="git ref of the 'before' code (default: see above)")
    args = parser.parse_args()
    # bench/explainers.py would shadow the `explainers` package: bench/ out, the code to measure first.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
    sys.path.insert(0, args.code_root)
    if args.worker:
        _worker(args)
        return
    from bench._common import table
    from model_zoo.limits import MAX_RUNNING

    if not args.model:
        from model_zoo.recipe import prepare

        args.model = str(prepare())
    only = [c for c in ("before", "after", "after8") if not args.only or c in args.only.split(",")]
    runs: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as scratch:
        if "before" in only:
            packages = ["dashboard", "explainers", "model_zoo"]
            ref = args.before or _before_ref()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, *packages],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
        configs = {"before": ("before (one lock per model)", Path(scratch), {}),
                   "after": (f"after (default: max {MAX_RUNNING} running)", ROOT, {"LOUPE_MAX_RUNNING": ""}),
                   "after8": ("after (max 8 running)", ROOT, {"LOUPE_MAX_RUNNING": "8"})}
        for _ in range(args.repeat):
            for name in only:
                label, root, env = configs[name]
                runs.setdefault(label, []).append(_run(label, root, args, env))
    rows = [{"code": label, **{k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "code"}}
            for label, rs in runs.items()]
    what = (f"one SHAP of {args.long_evals} evaluations started first, then {args.sessions - 1} sessions of "
            f"{args.methods.replace(',', ' + ')} (their times)" if args.long_evals else
            f"{args.sessions} sessions, each {args.methods.replace(',', ' + ')} on its own sentence, started together")
    print(f"{what}; {os.cpu_count()} CPUs; median of {args.repeat} run(s)")
    print(table(rows, "{:.1f}"))


if __name__ == "__main__":
    main()
