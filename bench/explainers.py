"""Explainer cost on 20 Rotten Tomatoes test sentences with the default model.

Per explainer: median wall time, median model passes, the floor and the ratio time / floor (median over
sentences). The floor replays, right after each explanation, bare passes of exactly the shapes the handle's
meter recorded for it (batch size, padded length, gradients or not) on random token ids: a forward under
``inference_mode``, or for a gradient pass a forward and a backward of the target probability to the input
embeddings (a pass the explainer made on ONNX Runtime replayed there). So the floor is what the
same model work costs with no explainer around it, and a ratio near 1 means the explainer's time is model time.
On a loaded machine use ``--repeat 3``: time the other processes take only ever adds, so the fastest of a few runs
is the steadiest estimate of each.

    python bench/explainers.py [--n 20] [--methods ig,shap,...] [--model PATH] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import default_handle, table

import explainers
from model_zoo import onnx_forward
from model_zoo.data import rotten_tomatoes
from model_zoo.handle import PassShape


def _bare_seconds(handle, shapes: list[PassShape], target: int) -> float:  # type: ignore[no-untyped-def]
    """Wall time of bare passes of ``shapes`` on ``handle``'s model (inputs built before the clock starts)."""
    gen = torch.Generator().manual_seed(0)
    vocab = handle.model.config.vocab_size
    inputs = [torch.randint(min(1000, vocab - 1), vocab, (s.batch, s.seq_len), generator=gen).to(handle.device)
              for s in shapes]
    model, embed = handle.model, handle.model.get_input_embeddings()
    fast = onnx_forward.session_for(model)  # gradient-free passes run where predict_proba runs them
    start = time.perf_counter()
    for s, ids in zip(shapes, inputs):
        mask = torch.ones_like(ids)
        if s.grad:
            x = embed(ids).detach().requires_grad_()
            probs = torch.softmax(model(inputs_embeds=x, attention_mask=mask).logits.float(), dim=-1)
            torch.autograd.grad(probs[:, target].sum(), x)
        elif s.onnx and fast is not None:
            fast.logits(ids, mask)
        else:
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask)
    if handle.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--methods", default=",".join(explainers.REGISTRY))
    parser.add_argument("--model", default=None, help="model folder or store id (default: the default model)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per sentence, the fastest explanation and floor kept (on a shared machine)")
    args = parser.parse_args()
    handle = default_handle(args.model)
    texts = rotten_tomatoes("test").texts[: args.n]
    methods = args.methods.split(",")
    for m in methods:  # warm-up: first calls pay one-off costs (imports, allocations)
        explainers.get(m).explain(handle, texts[0])
    rows = []
    for m in methods:
        secs, passes, floors = [], [], []
        for text in texts:
            runs = []
            for _ in range(args.repeat):
                with handle.meter() as meter:
                    a = explainers.get(m).explain(handle, text)
                runs.append((a.cost.seconds, _bare_seconds(handle, meter.shapes, a.target)))
            secs.append(min(s for s, _ in runs))
            floors.append(min(f for _, f in runs))
            passes.append(a.cost.passes)
        rows.append({"explainer": m, "median s": statistics.median(secs), "passes": statistics.median(passes),
                     "floor s": statistics.median(floors),
                     "ratio": statistics.median(s / f for s, f in zip(secs, floors))})
    print(f"{len(texts)} sentences, {handle.id}, device {handle.device}, {torch.get_num_threads()} threads")
    print(table(rows))


if __name__ == "__main__":
    main()
