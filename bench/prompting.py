"""Prompt classifiers on Rotten Tomatoes: ``python bench/prompting.py [--n 200] [--rank-n 50]``.

1. Test accuracy (and macro F1) of SmolLM2-135M-Instruct, zero-shot, 4-shot and 8-shot, in two prompt formats
   (``plain``: instruction + ``Review: ...\\nSentiment:``; ``chat``: the same question in the chat template,
   ``Review: ...\\nAnswer:``), with and without contextual calibration (one pass gives both), beside the fine-tuned
   default model on the same sentences. Demonstrations: short training sentences, balanced, alternating labels,
   drawn with a fixed seed (the 4 of 4-shot are the first 4 of 8-shot).
2. Seconds per sentence at batch 1 and batch 16 (zero-shot and 8-shot; the prefix's keys and values are cached).
3. The best prompt is saved to the store and ranked like any model by ``explainers.evaluation.evaluate`` on
   ``--rank-n`` test sentences, beside the default model with the same settings and sentences.
4. Compare: agreement of the two models' predictions, and of their explanations (Spearman of word scores, top-k
   overlap) on the ranking's sentences.

Settings are cut down for a CPU (``--fast``, default on): IG 16 steps, SHAP 100 evaluations, LIME 100 samples.
``--threads`` sets torch's threads (default 1: on a shared, loaded 2-core machine two threads wait on each other).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common  # noqa: E402,F401  (puts the project root first)
import numpy as np  # noqa: E402

FORMATS = {
    "plain": {"instruction": "Classify the sentiment of the movie review as positive or negative.",
              "pattern": "Review: {text}\nSentiment: {label}", "chat": False},
    "chat": {"instruction": "Is this movie review positive or negative? Answer with one word.",
             "pattern": "Review: {text}\nAnswer: {label}", "chat": True},
}
FAST = {"ig": {"n_steps": 16, "internal_batch_size": 16}, "shap": {"max_evals": 100}, "lime": {"num_samples": 100}}
METHODS = "ig,shap,lime,ablation,saliency,grad_x_input"


def demonstrations(k: int, seed: int = 0, max_chars: int = 110) -> list[dict[str, str]]:
    """``k`` short training sentences, alternating negative/positive (fixed seed)."""
    from model_zoo.data import RT_LABELS, rotten_tomatoes

    train = rotten_tomatoes("train")
    order = np.random.default_rng(seed).permutation(len(train))
    by_label: dict[int, list[int]] = {0: [], 1: []}
    for i in order:
        if 30 <= len(train.texts[i]) <= max_chars:
            by_label[train.labels[i]].append(int(i))
    picked = [by_label[j % 2][j // 2] for j in range(k)]
    return [{"text": train.texts[i], "label": RT_LABELS[train.labels[i]]} for i in picked]


def template(fmt: str, shots: int, calibrate: bool = False):  # type: ignore[no-untyped-def]
    from model_zoo.prompting import PromptTemplate

    return PromptTemplate.from_dict({**FORMATS[fmt], "demonstrations": demonstrations(shots),
                                     "verbaliser": {"negative": ["negative"], "positive": ["positive"]},
                                     "calibrate": calibrate})


def seconds_per_sentence(handle, texts: list[str], batch: int) -> float:  # type: ignore[no-untyped-def]
    handle.predict_proba(texts[:2], batch_size=batch)  # warm (prefix cache, prior)
    start = time.perf_counter()
    handle.predict_proba(texts, batch_size=batch)
    return (time.perf_counter() - start) / len(texts)


def speed_table(args: argparse.Namespace, default, texts: list[str]) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    """Seconds per sentence of the prompt classifier (zero- and 8-shot) and the default model, batch 1 and 16."""
    from _common import table

    from model_zoo import DEFAULT_MODEL_ID, prompting

    speed: list[dict[str, object]] = []
    for shots in (0, 8):
        h = prompting.load_prompt_classifier(args.base, template("plain", shots), device="cpu")
        for batch in (1, 16):
            speed.append({"model": f"{args.base} plain {shots}-shot", "batch": batch,
                          "s/sentence": seconds_per_sentence(h, texts, batch)})
    for batch in (1, 16):
        speed.append({"model": DEFAULT_MODEL_ID, "batch": batch,
                      "s/sentence": seconds_per_sentence(default, texts, batch)})
    print(f"\nSeconds per sentence ({len(texts)} test sentences, torch threads: {args.threads})")
    print(table(speed, "{:.4f}"))
    return speed


def main(argv: list[str] | None = None) -> int:
    import torch
    from _common import table

    from explainers.evaluation import evaluate
    from explainers.evaluation.run import sample
    from explainers.metrics import rank_agreement
    from model_zoo import DEFAULT_MODEL_ID, load, prompting
    from model_zoo.data import rotten_tomatoes
    from model_zoo.paths import reports_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="test sentences for accuracy (default 200)")
    p.add_argument("--shots", default="0,4,8")
    p.add_argument("--formats", default="plain,chat")
    p.add_argument("--speed-n", type=int, default=32)
    p.add_argument("--rank-n", type=int, default=50, help="sentences of the explainer ranking (0: skip)")
    p.add_argument("--methods", default=METHODS)
    p.add_argument("--sanity-n", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--base", default=prompting.DEFAULT_LM)
    p.add_argument("--save-as", default="smollm2-rt-prompt", help="store id of the best prompt (ranked)")
    p.add_argument("--parts", default="accuracy,speed,rank", help="what to run (speed alone needs no accuracy run)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out: dict[str, object] = {"args": vars(args)}
    test = rotten_tomatoes("test")
    idx = sample(test, args.n)
    texts, labels = [test.texts[i] for i in idx], [test.labels[i] for i in idx]
    y = np.array(labels)

    parts = set(args.parts.split(","))
    default = load(DEFAULT_MODEL_ID, device="cpu")
    if "accuracy" not in parts:
        if "speed" in parts:
            out["speed"] = speed_table(args, default, test.texts[:args.speed_n])
        return 0
    t0 = time.perf_counter()
    ft_pred = default.predict_proba(texts).argmax(1)
    ft_seconds = (time.perf_counter() - t0) / len(texts)
    rows = [{"model": DEFAULT_MODEL_ID, "format": "fine-tuned", "shots": "-", "acc": float(np.mean(ft_pred == y)),
             "acc calibrated": "-", "p_cf(positive)": "-", "s": round(ft_seconds * len(texts), 1)}]
    print(f"{DEFAULT_MODEL_ID}: {rows[0]['acc']:.3f}", file=sys.stderr, flush=True)
    results = {}
    for fmt in args.formats.split(","):
        for shots in (int(s) for s in args.shots.split(",")):
            h = prompting.load_prompt_classifier(args.base, template(fmt, shots), device="cpu")
            s = prompting.evaluate(h, texts, labels)
            results[(fmt, shots)] = s
            rows.append({"model": args.base, "format": fmt, "shots": shots, "acc": s.accuracy,
                         "acc calibrated": s.accuracy_calibrated, "p_cf(positive)": s.prior[1], "s": s.seconds})
            print(f"{fmt} {shots}-shot: {s.accuracy:.3f} / calibrated {s.accuracy_calibrated:.3f} ({s.seconds:.0f} s)",
                  file=sys.stderr, flush=True)
    print(f"Rotten Tomatoes test, {len(texts)} sentences (torch threads: {args.threads})")
    print(table(rows))
    out["accuracy"] = rows

    if "speed" in parts:
        out["speed"] = speed_table(args, default, test.texts[:args.speed_n])

    (fmt, shots), best = max(results.items(), key=lambda kv: max(kv[1].accuracy, kv[1].accuracy_calibrated))
    calibrate = best.accuracy_calibrated > best.accuracy
    chosen = template(fmt, shots, calibrate)
    prompting.save(args.save_as, chosen, args.base, overwrite=True,
                   metrics={"test": {**best.metrics(calibrate), "sample": f"{len(texts)} of {len(test)}"}},
                   notes="Made by bench/prompting.py: the best of its prompts on the test sample.")
    out["chosen"] = {"id": args.save_as, "format": fmt, "shots": shots, "calibrate": calibrate}
    print(f"\nsaved {args.save_as}: {fmt} {shots}-shot{', calibrated' if calibrate else ''}")
    print(f"prediction agreement with {DEFAULT_MODEL_ID} on the {len(texts)} sentences: "
          f"{np.mean((best.probs_calibrated if calibrate else best.probs).argmax(1) == ft_pred):.3f}")

    if args.rank_n and "rank" in parts:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        reports = {}
        for model in (args.save_as, DEFAULT_MODEL_ID):
            start = time.perf_counter()

            def show(done: float, total: float, message: str, model: str = model, start: float = start) -> None:
                print(f"\r{model} [{done:.0f}/{total:.0f} {time.perf_counter() - start:6.0f} s]", end="",
                      file=sys.stderr, flush=True)

            reports[model] = evaluate(model, "test", args.rank_n, methods, FAST, device="cpu",
                                      sanity_n=args.sanity_n, progress=show)
            print(file=sys.stderr)
            print("\n" + reports[model].table())
        out["ranking"] = {m: [(r.rank, r.method, r.comp_aopc.mean, r.suff_aopc.mean, r.seconds.mean)
                              for r in rep.rows] for m, rep in reports.items()}
        out["compare"] = compare(reports, args.save_as, DEFAULT_MODEL_ID, methods, rank_agreement)
    path = reports_dir() / "bench-prompting.json"
    path.write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
    print(f"\nwritten {path}")
    return 0


def compare(reports, a: str, b: str, methods: list[str], rank_agreement) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Agreement of two models' predictions and explanations on the ranking's sentences (from its cached records)."""
    from explainers.evaluation.run import _cache_file, _read_cache  # the ranking's per-sentence records

    def records(model: str, method: str) -> dict[str, dict[str, object]]:
        rep = reports[model]
        import dataclasses

        from explainers.base import make_config

        key = {"v": _cache_version(), "model": model, "revision": rep.revision, "dataset": rep.dataset, "n": rep.n,
               "method": method, "config": dataclasses.asdict(make_config(method, FAST.get(method))),
               **rep.settings}
        recs, _ = _read_cache(_cache_file(key), key)
        return recs

    rows, summary = [], {}
    for m in methods:
        ra, rb = records(a, m), records(b, m)
        common = [i for i in ra if i in rb and "error" not in ra[i] and "error" not in rb[i]]
        if not common:
            continue
        agree = [rank_agreement(ra[i]["scores"], rb[i]["scores"]) for i in common]
        same = np.mean([ra[i]["predicted"] == rb[i]["predicted"] for i in common])
        rho = [g.spearman for g in agree if g.spearman is not None]
        row = {"explainer": m, "sentences": len(common), "same prediction": float(same),
               "Spearman": float(np.mean(rho)) if rho else float("nan"),
               "top-k overlap": float(np.mean([g.top_k_overlap for g in agree]))}
        rows.append(row)
        summary[m] = row
    print(f"\nCompare {a} with {b} on the ranking's sentences (word scores of the same explainer)")
    from _common import table

    print(table(rows))
    return summary


def _cache_version() -> object:
    from explainers.evaluation import run

    return run.CACHE_VERSION


if __name__ == "__main__":
    sys.exit(main())
