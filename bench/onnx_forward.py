"""PyTorch against ONNX Runtime for the default model's gradient-free forward pass (the predictions of SHAP, LIME,
Feature Ablation and the faithfulness metrics): milliseconds per batch, warm, the two taking turns, and the
largest difference of a class probability.

    python bench/onnx_forward.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import default_handle, table

from model_zoo import onnx_forward


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    handle = default_handle()  # prepares the ONNX Runtime session (exported once, then cached)
    fast = onnx_forward.session_for(handle.model)
    if fast is None:
        raise SystemExit(f"no ONNX Runtime session: {handle.forward_path}")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for batch, seq in ((1, 16), (1, 32), (8, 32), (32, 32), (64, 24), (64, 48), (64, 96)):
        ids = torch.randint(1000, handle.model.config.vocab_size, (batch, seq), generator=gen)
        mask = torch.ones_like(ids)
        mask[0, seq // 2:] = 0
        times: dict[str, list[float]] = {"pytorch": [], "onnxruntime": []}
        with torch.inference_mode():
            for _ in range(3):  # warm-up
                handle.model(input_ids=ids, attention_mask=mask)
                fast.logits(ids, mask)
            for i in range(args.repeats):
                for which in (("pytorch", "onnxruntime") if i % 2 else ("onnxruntime", "pytorch")):
                    start = time.perf_counter()
                    if which == "pytorch":
                        ref = handle.model(input_ids=ids, attention_mask=mask).logits
                    else:
                        got = fast.logits(ids, mask)
                    times[which].append((time.perf_counter() - start) * 1000)
        diff = float((torch.softmax(got.float(), -1) - torch.softmax(ref.float(), -1)).abs().max())
        pt, ort = statistics.median(times["pytorch"]), statistics.median(times["onnxruntime"])
        rows.append({"batch": batch, "tokens": seq, "PyTorch ms": pt, "ONNX Runtime ms": ort, "ratio": ort / pt,
                     "max prob diff": f"{diff:.1e}"})
    print(f"{handle.id}, {torch.get_num_threads()} threads, medians of {args.repeats} runs")
    print(table(rows))


if __name__ == "__main__":
    main()
