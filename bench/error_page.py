"""The Error analysis page on the default model: time to first view, and global-explanation throughput.

    python bench/error_page.py [--n 200] [--method auto] [--skip-browser] [--skip-global] [--model M]

1. Time to first view of the page's analysis (no global explanations), once the model is loaded, on the full
   Rotten Tomatoes test split:
   - *analysis*: what the page draws before anything else needs computing: one batched prediction of the split,
     the metrics, the slices and the examples table (the functions the page's services call, caches cold);
   - *calibration*: what the page computes after that and draws in its place (the validation split's
     prediction and the temperature fit);
   - *browser*: from opening the page in headless Chromium (the server already serving, the model already
     loaded by a visit to the Explain page) to the examples table on screen, and to the whole page drawn
     (calibration included).
   Each row also gives the CPU seconds the work took (this process, or the server's process for the browser
   rows): on a shared, busy machine wall time says more about the neighbours than about Loupe, and CPU seconds
   divided by the cores torch uses estimate the wall time on an idle machine.
2. Global explanations with the default explainer (the rule of ``explainers.global_importance.choice``) over N
   test sentences: sentences per second in this process, and on Ray with 1 and 2 workers (one CPU each; Ray's
   start-up and the actors loading the model are timed apart).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (puts the project root on sys.path)
from _common import ROOT, table


def _analysis(handle) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    from model_zoo import calibration
    from model_zoo.data import rotten_tomatoes
    from model_zoo.error_analysis import analyse, examples, slices

    rows = []
    begin, cpu = time.perf_counter(), time.process_time()
    test = rotten_tomatoes("test")
    report = analyse(handle, test, "Rotten Tomatoes test")
    found = slices(report)
    examples(report)
    first = time.perf_counter() - begin
    rows.append({"what": "analysis: predict 1,281 texts, metrics, slices, examples", "seconds": first,
                 "CPU s": time.process_time() - cpu})
    begin, cpu = time.perf_counter(), time.process_time()
    fit = analyse(handle, rotten_tomatoes("validation"), "Rotten Tomatoes validation")
    temperature = calibration.fit_temperature(fit.probs, fit.labels)
    calibration.measure(calibration.scale(report.probs, temperature), report.labels)
    later = time.perf_counter() - begin
    rows.append({"what": "then calibration: predict 1,249 validation texts, fit T", "seconds": later,
                 "CPU s": time.process_time() - cpu})
    print(f"accuracy {report.accuracy:.3f}, {len(found)} slices, T = {temperature:.3f}", flush=True)
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu(proc) -> float:  # type: ignore[no-untyped-def]
    """CPU seconds used so far by a process and its children (the Streamlit server)."""
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except Exception:  # a child that ended
            pass
    return float(total)


def _browser(timeout: float = 300) -> list[dict]:  # type: ignore[type-arg]
    import psutil
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                               "--server.port", str(port), "--server.headless", "true"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    proc = psutil.Process(server.pid)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            deadline = time.time() + 60
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
                    break
                except Exception:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.5)
            page.get_by_text("Prediction").first.wait_for(timeout=timeout * 1000)  # the model is loaded
            page.wait_for_timeout(3000)
            begin, cpu = time.perf_counter(), _cpu(proc)
            page.goto(f"http://127.0.0.1:{port}/errors", timeout=timeout * 1000)
            page.get_by_text("misclassified first, then the least confident").first.wait_for(timeout=timeout * 1000)
            first, first_cpu = time.perf_counter() - begin, _cpu(proc) - cpu
            page.get_by_text("Reliability diagram").first.wait_for(timeout=timeout * 1000)
            page.get_by_text("Download HTML report").first.wait_for(timeout=timeout * 1000)
            whole, whole_cpu = time.perf_counter() - begin, _cpu(proc) - cpu
            rows.append({"what": "browser: open the page -> examples table on screen", "seconds": first,
                         "CPU s": first_cpu})
            rows.append({"what": "browser: open the page -> whole page (calibration too)", "seconds": whole,
                         "CPU s": whole_cpu})
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def _global(handle, model: str, n: int, method: str) -> tuple[list[dict], str]:  # type: ignore[no-untyped-def,type-arg]
    import ray

    import explainers.global_importance as gi
    from model_zoo import engine

    data = gi.load_split({"split": "test"})
    chosen, why = gi.pick_method(method, model, n, gi.signed_methods(handle))
    rows = []
    settings = {"n": n}
    begin, cpu = time.perf_counter(), time.process_time()
    local = gi.explain_split(model, data, chosen, None, settings, handle=handle, use_cache=False)
    work = time.perf_counter() - begin
    assert local is not None
    base = local.explained / work
    rows.append({"engine": "local process", "workers": 1, "start-up s": 0.0, "work s": work,
                 "CPU s": time.process_time() - cpu, "sentences/s": base, "vs local": 1.0, "same words": "-"})
    print(f"local: {work:.1f} s", flush=True)
    for workers in (1, 2):
        cfg = engine.config({"engine": "ray", "workers": workers, "batch_size": 4})
        startup = engine.timed_start(cfg)
        begin = time.perf_counter()  # the actors load the model: timed with start-up, on two sentences
        gi.explain_split(model, data, chosen, None, {"n": 2 * workers}, run_on=cfg, use_cache=False)
        startup += time.perf_counter() - begin
        begin = time.perf_counter()
        report = gi.explain_split(model, data, chosen, None, settings, run_on=cfg, use_cache=False)
        work = time.perf_counter() - begin
        ray.shutdown()
        assert report is not None
        same = all(a.means.keys() == b.means.keys() for a, b in zip(local.classes, report.classes))
        rows.append({"engine": "Ray", "workers": workers, "start-up s": startup, "work s": work,
                     "CPU s": float("nan"), "sentences/s": report.explained / work,
                     "vs local": report.explained / work / base, "same words": "yes" if same else "NO"})
        print(f"Ray {workers}: {work:.1f} s (start-up {startup:.1f} s)", flush=True)
    return rows, why or chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="sentences for the global explanation (default 200)")
    parser.add_argument("--method", default="auto", help="explainer (default: the page's default rule)")
    parser.add_argument("--model", default=None, help="store id or folder (default: the default model)")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--skip-global", action="store_true")
    args = parser.parse_args()

    import torch

    handle = _common.default_handle(args.model)
    model = args.model or handle.id
    print(f"model {handle.id} on {handle.device}, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    handle.predict_proba(["warm up"])
    rows = _analysis(handle)
    if not args.skip_browser and Path("/usr/bin/chromium").exists():
        rows += _browser()
    print("\nTime to first view of the Error analysis page (default model, full test split, model loaded)\n")
    print(table(rows, "{:.2f}"))
    if not args.skip_global:
        grows, why = _global(handle, model, args.n, args.method)
        print(f"\nGlobal explanations, {args.n} test sentences. Explainer: {why}\n")
        print(table(grows, "{:.2f}"))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (the machine's other work competes for its cores)")


if __name__ == "__main__":
    main()
