"""Regenerate the README screenshots: start Loupe with the default model, open each page in headless
Chromium and save PNGs under docs/.

    python scripts/screenshots.py            # uses LOUPE_HOME's store (builds the default model if missing)
    python scripts/screenshots.py prompts.png compare.png     # only these
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHROMIUM = os.environ.get("LOUPE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
EXAMPLE = "A wonderful, moving film with a terrible ending."
# (file, url path + query, height, elements that must be there before the shot)
SHOTS = [
    ("explain.png", "/?" + urllib.parse.urlencode({"text": EXAMPLE, "methods": "ig,shap,lime,attention"}), 2300,
     "document.querySelectorAll('.loupe-text').length >= 4"),
    ("compare.png", "/compare?" + urllib.parse.urlencode({"text": EXAMPLE, "methods": "ig,lime"}), 1200, "true"),
    ("finetune.png", "/finetune", 1200, "true"),
    ("compress.png", "/compress", 1000, "true"),
    ("evaluate.png", "/evaluate", 900, "true"),
    ("errors.png", "/errors", 2400, "document.body.innerText.includes('Examples')"),
    ("models.png", "/models", 900, "true"),
    ("prompts.png", "/prompts", 1300, "document.body.innerText.includes('Try it')"),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    from playwright.sync_api import sync_playwright

    from model_zoo.recipe import prepare

    prepare()
    port = _port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                             "--server.port", str(port), "--server.address", "127.0.0.1"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for name, path, height, ready in SHOTS:
                if sys.argv[1:] and name not in sys.argv[1:]:
                    continue
                page = browser.new_page(viewport={"width": 1400, "height": height})
                page.goto(url + path)
                page.wait_for_function(ready, timeout=300_000)
                page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=300_000)
                time.sleep(2)  # let iframes and charts draw
                out = ROOT / "docs" / name
                out.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(out))
                print(f"wrote {out.relative_to(ROOT)}")
                page.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
