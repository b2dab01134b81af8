"""What a person waits for: cold start to the first explanation on screen, and a repeated request.

1. **Cold start**: from ``streamlit run dashboard/app.py`` to the first Integrated Gradients explanation drawn in
   headless Chromium (a permalink with ``methods=ig``), on the default model (built first if missing). The
   clock starts before the server process does, so Python start-up, imports and the model load all count.
2. **Repeated request**: the same model, text, explainer, settings and target asked again through the
   dashboard's service (``dashboard.services.run_one``): model passes made and seconds, per explainer.

    python bench/latency.py [--model rt-sentiment-minilm] [--skip-browser]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

from _common import ROOT, default_handle, table

TEXT = "A wonderful, moving film with a terrible ending."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cold_start(chromium: str) -> dict[str, object]:
    """Seconds from launching the server to the first IG explanation on screen (and to the server answering)."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.headless", "true"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        healthy = time.perf_counter() - start
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(f"{url}/?{urllib.parse.urlencode({'text': TEXT, 'methods': 'ig'})}")
            page.wait_for_selector(".loupe-text", timeout=300_000)
            shown = time.perf_counter() - start
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"measure": "cold start", "server answers (s)": round(healthy, 2), "first IG on screen (s)": round(shown, 2)}


def repeated(handle: object, methods: list[str]) -> list[dict[str, object]]:
    """First and second request through the dashboard's cached service, per explainer."""
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    from dashboard import services

    rows = []
    for method in methods:
        req = services.ExplainRequest(services.model_key(handle), TEXT, [method])  # type: ignore[arg-type]
        timings = []
        for _ in range(2):
            before = handle.total_passes  # type: ignore[attr-defined]
            start = time.perf_counter()
            services.run_one(handle, req, method)  # type: ignore[arg-type]
            timings.append((handle.total_passes - before, time.perf_counter() - start))  # type: ignore[attr-defined]
        rows.append({"explainer": method, "first: passes": timings[0][0], "first: s": round(timings[0][1], 3),
                     "repeat: passes": timings[1][0], "repeat: ms": round(1000 * timings[1][1], 2)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="store id or folder (default: the default model)")
    p.add_argument("--methods", default="ig,shap,lime,saliency,grad_x_input,ablation,attention")
    p.add_argument("--chromium", default=os.environ.get("LOUPE_CHROMIUM", "/usr/bin/chromium"))
    p.add_argument("--skip-browser", action="store_true", help="only the repeated-request table")
    args = p.parse_args(argv)
    handle = default_handle(args.model)
    print(table(repeated(handle, [m.strip() for m in args.methods.split(",") if m.strip()])))
    if not args.skip_browser:
        del handle
        print()
        print(table([cold_start(args.chromium)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
