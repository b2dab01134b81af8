"""Build the default model from scratch in a temporary store and print build time and accuracy.

    python bench/default_model.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from _common import table


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        os.environ["LOUPE_HOME"] = home
        from model_zoo.recipe import prepare

        start = time.perf_counter()
        card = json.loads((prepare(quiet=True) / "loupe.json").read_text())
        total = time.perf_counter() - start
    m = card["metrics"]
    print(table([{"build s": total, "train s": float(card["train_seconds"]), "steps": card["steps"],
                  "val acc": m["validation"]["accuracy"], "test acc": m["test"]["accuracy"],
                  "test F1": m["test"]["f1_macro"], "target": ">= 0.82 (stretch 0.85), <= 300 s"}]))


if __name__ == "__main__":
    main()
