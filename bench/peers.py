"""Loupe's explanation panel against ferret-xai and transformers-interpret, on the same sentences and model.

    .venv/bin/python bench/peers.py [--n 10] [--model PATH] [--threads N] [--methods shap,lime,...]

The peers live in their own virtual environment, ``LOUPE_HOME/peers-venv``, built on the first run (a few
minutes; rebuilt when the pins below change): torch first (2.13.0, the local CPU build, as in Loupe), then
ferret-xai 0.4.2 and transformers-interpret. ferret 0.4.2 requires ``transformers<5`` (Loupe has 5.x),
``shap<0.45``, ``captum<0.8``, ``numpy<2``, and ``pyarrow<17`` to install; the pins are what resolved.

Each peer runs in a worker process (bench/_peer_worker.py, the venv's python) that loads the model folder
once and times each library call; Loupe runs here. The first ``--n`` non-empty Rotten Tomatoes test
sentences, the default model (or ``--model``), the predicted class as target, the same torch thread count,
every explainer warmed up once; the tools take turns first, sentence by sentence, so load on the machine
falls on all of them alike. Settings, matched to ferret's defaults (ferret/explainers/*.py):

- SHAP: Partition, shap's ``Text`` masker on the tokenizer ([MASK]), 500 evaluations (``max_evals=500``).
- LIME: min(tokens^2, 5000) samples, tokens counted as ferret does (input ids with [CLS]/[SEP]); removed
  features replaced by [MASK] (Loupe ``perturbation="mask"``). ferret's features are word-pieces, Loupe's
  words.
- Saliency: ferret sums |gradient| over the embedding (Loupe ``norm="l1"``); Gradient x Input as is.
- IG: 50 steps, Gauss-Legendre, [PAD] baseline between [CLS] and [SEP], x input (ferret
  ``multiply_by_inputs=True``); Loupe ``first_steps=0`` (always all 50, no early stop); transformers-interpret's
  ``SequenceClassificationExplainer`` at its defaults (the same, but on the word embeddings).

Batching is each tool's own: ferret sends 8 texts a pass, Loupe's handle picks its batch size.
Table: mean seconds per sentence; Loupe/ferret is Loupe's total over ferret's, ``median ratio`` the median
of the per-sentence ratios (less moved by a load spike on a shared machine). ``panel`` sums the five.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import default_handle, table

import explainers
from model_zoo.data import rotten_tomatoes
from model_zoo.paths import loupe_home

TORCH = "torch==2.13.0"  # first, so that no later resolve pulls a CUDA build of gigabytes
PEERS = ["ferret-xai==0.4.2", "transformers-interpret==0.10.0", "transformers==4.57.6", "shap==0.44.1",
         "captum==0.7.0", "numpy==1.26.4", "pyarrow==16.1.0"]
WORKER = Path(__file__).with_name("_peer_worker.py")
PANEL = ("shap", "lime", "saliency", "grad_x_input", "ig")


def peers_python() -> Path:
    """The peers venv's python, building the venv first if it is missing or has other pins."""
    venv = loupe_home() / "peers-venv"
    python, stamp = venv / "bin" / "python", venv / "loupe-pins.txt"
    pins = "\n".join([TORCH, *PEERS])
    if python.exists() and stamp.exists() and stamp.read_text() == pins:
        return python
    print(f"building {venv} (once) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    for step in ([TORCH], PEERS):
        subprocess.run([str(python), "-m", "pip", "install", "-q", *step], check=True)
    stamp.write_text(pins)
    return python


class Worker:
    """One peer's worker process: a JSON request line in, a JSON answer line out."""

    def __init__(self, python: Path, tool: str, folder: str, threads: int) -> None:
        self.log = loupe_home() / "peers-venv" / f"worker-{tool}.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen([str(python), str(WORKER), tool, folder, str(threads)], text=True, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log.open("w"))
        self.info = self._answer()

    def _answer(self) -> dict:  # type: ignore[type-arg]
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            sys.exit(f"peer worker died; see {self.log}")
        answer = json.loads(line)
        if "error" in answer:
            sys.exit(f"peer worker failed:\n{answer['error']}")
        return answer

    def seconds(self, method: str, text: str, target: int) -> float:
        self.proc.stdin.write(json.dumps({"method": method, "text": text, "target": target}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return float(self._answer()["seconds"])

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=60)


def loupe_config(handle, method: str, text: str):  # type: ignore[no-untyped-def]
    """Loupe's config for ``method`` matched to ferret's defaults (see the module docstring)."""
    n_tokens = len(handle.tokenizer(text, truncation=True)["input_ids"])
    settings = {"shap": {"max_evals": 500, "perturbation": "mask"},
                "lime": {"num_samples": min(n_tokens**2, 5000), "perturbation": "mask"},
                "saliency": {"norm": "l1"}, "ig": {"n_steps": 50, "first_steps": 0}}.get(method, {})
    return explainers.get(method).Config(**settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10, help="sentences")
    parser.add_argument("--model", default=None, help="model folder or store id (default: the default model)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads, all tools")
    parser.add_argument("--methods", default=",".join(PANEL), help="a part of the panel (the panel row sums these)")
    args = parser.parse_args()
    methods = tuple(m for m in PANEL if m in args.methods.split(","))
    python = peers_python()
    torch.set_num_threads(args.threads)
    handle = default_handle(args.model)
    texts = [t for t in rotten_tomatoes("test").texts if t.strip()][: args.n]
    targets = handle.predict_proba(texts).argmax(axis=1).tolist()
    folder = str(handle.info["path"])
    peers = {"ferret": Worker(python, "ferret", folder, args.threads), "ti": Worker(python, "ti", folder, args.threads)}

    def run(tool: str, method: str, text: str, target: int) -> float:
        if tool in peers:
            return peers[tool].seconds(method, text, target)
        explainer, config = explainers.get(method), loupe_config(handle, method, text)
        start = time.perf_counter()
        explainer.explain(handle, text, target, config)
        return time.perf_counter() - start

    jobs = [(m, tool) for m in methods for tool in ("loupe", *(t for t in peers if m in peers[t].info["methods"]))]
    for method, tool in jobs:  # warm-up
        run(tool, method, texts[0], targets[0])
    secs: dict[tuple[str, str], list[float]] = {job: [] for job in jobs}  # per sentence
    for i, (text, target) in enumerate(zip(texts, targets)):
        for method in methods:
            tools = [tool for m, tool in jobs if m == method]
            for tool in tools[i % len(tools):] + tools[: i % len(tools)]:  # a different tool first each sentence
                secs[method, tool].append(run(tool, method, text, target))
    for worker in peers.values():
        worker.close()

    secs["panel", "ferret"], secs["panel", "loupe"] = ([sum(s) for s in zip(*(secs[m, tool] for m in methods))]
                                                      for tool in ("ferret", "loupe"))
    rows = [{"explainer": m, "ferret s": statistics.mean(secs[m, "ferret"]),
             "Loupe s": statistics.mean(secs[m, "loupe"]),
             "Loupe/ferret": sum(secs[m, "loupe"]) / sum(secs[m, "ferret"]),
             "median ratio": statistics.median(a / b for a, b in zip(secs[m, "loupe"], secs[m, "ferret"])),
             "t-interpret s": statistics.mean(secs[m, "ti"]) if (m, "ti") in secs else "-"}
            for m in (*methods, "panel")]
    info = peers["ferret"].info
    print(f"{len(texts)} sentences, {handle.id}, device {handle.device}, {args.threads} threads; peers: torch "
          f"{info['torch']}, transformers {info['transformers']}; Loupe: torch {torch.__version__}")
    print(table(rows))


if __name__ == "__main__":
    main()
