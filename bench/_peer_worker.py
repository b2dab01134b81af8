"""Timing worker for bench/peers.py, run with the peers venv's python (ferret-xai, transformers-interpret).

    python _peer_worker.py {ferret|ti} MODEL_FOLDER THREADS

Loads the model once, answers ``{"ready": true, ...}``, then reads one JSON request a line on stdin,
``{"method": "shap", "text": "...", "target": 1}``, and answers one JSON line, ``{"seconds": 0.42}`` (wall time
of the library call alone) or ``{"error": "..."}``. It stops at end of input. Each library runs at its own
defaults, which are the benchmark's settings (see bench/peers.py). This file imports nothing from Loupe.
"""

from __future__ import annotations

import json
import sys
import time
import traceback


def _ferret(model, tokenizer):  # type: ignore[no-untyped-def]
    from ferret import GradientExplainer, IntegratedGradientExplainer, LIMEExplainer, SHAPExplainer

    return {
        "shap": SHAPExplainer(model, tokenizer),  # Partition, shap's TextMasker ([MASK]), 500 evals, seed 42
        "lime": LIMEExplainer(model, tokenizer),  # min(tokens^2, 5000) samples, [MASK] substitution
        "saliency": GradientExplainer(model, tokenizer, multiply_by_inputs=False),
        "grad_x_input": GradientExplainer(model, tokenizer, multiply_by_inputs=True),
        "ig": IntegratedGradientExplainer(model, tokenizer, multiply_by_inputs=True),  # Captum: 50 steps
    }


def _transformers_interpret(model, tokenizer):  # type: ignore[no-untyped-def]
    from transformers_interpret import SequenceClassificationExplainer

    explainer = SequenceClassificationExplainer(model, tokenizer)  # LayerIntegratedGradients, 50 steps
    return {"ig": lambda text, target: explainer(text, index=target)}


def main() -> None:
    tool, folder, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out, sys.stdout = sys.stdout, sys.stderr  # the libraries' prints must not break the protocol
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    methods = (_ferret if tool == "ferret" else _transformers_interpret)(model, tokenizer)

    def reply(obj: dict) -> None:  # type: ignore[type-arg]
        out.write(json.dumps(obj) + "\n")
        out.flush()

    reply({"ready": True, "methods": list(methods), "torch": torch.__version__,
           "transformers": transformers.__version__, "threads": torch.get_num_threads()})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            start = time.perf_counter()
            methods[request["method"]](request["text"], request["target"])
            reply({"seconds": time.perf_counter() - start})
        except Exception:  # report and go on: one failed call should not lose the whole run
            reply({"error": traceback.format_exc(limit=3)})


if __name__ == "__main__":
    main()
