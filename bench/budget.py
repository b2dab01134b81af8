"""Does Loupe's default budget give up faithfulness, and what does it cost next to ferret? One run, taking turns.

On the first ``--n`` Rotten Tomatoes test sentences and the default model, per explainer: comprehensiveness AOPC
(higher is better; the same metric and bins as the Evaluate page) and seconds per sentence at Loupe's default
settings and at the settings ``bench/peers.py`` matches to ferret's defaults (LIME min(tokens^2, 5000) samples with
[MASK], Partition SHAP 500 evaluations, IG 50 steps), and ferret-xai itself at its defaults (the peers venv of
``bench/peers.py``; ``--no-ferret`` leaves it out). The three take turns sentence by sentence, a different one
first each time. "AOPC gap" is default minus ferret-budget (the goal: no lower than -0.01); "x ferret budget" is
the default's seconds over the ferret-budget's, "x ferret" over ferret's own.

    python bench/budget.py [--n 50] [--no-ferret] [--methods shap,lime,...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _common import default_handle, table

from bench.peers import PANEL, Worker, loupe_config, peers_python  # noqa: E402  (after _common fixed sys.path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--model", default=None)
    p.add_argument("--methods", default=",".join(PANEL))
    p.add_argument("--no-ferret", action="store_true", help="leave ferret-xai out (no peers venv needed)")
    args = p.parse_args(argv)

    import torch

    import explainers
    from explainers.metrics import faithfulness_many
    from model_zoo.data import rotten_tomatoes

    handle = default_handle(args.model)
    texts = [t for t in rotten_tomatoes("test").texts if t.strip()][: args.n]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    ferret = None if args.no_ferret else Worker(peers_python(), "ferret", str(handle.info["path"]),
                                                torch.get_num_threads())
    runs = ("default", "ferret budget", *(() if ferret is None else ("ferret",)))
    aopc: dict[tuple[str, str], list[float]] = {(m, r): [] for m in methods for r in runs[:2]}
    secs: dict[tuple[str, str], list[float]] = {(m, r): [] for m in methods for r in runs}

    def run(method: str, which: str, text: str, target: int) -> None:
        if which == "ferret":
            secs[(method, which)].append(ferret.seconds(method, text, target))  # type: ignore[union-attr]
            return
        config = explainers.make_config(method) if which == "default" else loupe_config(handle, method, text)
        start = time.perf_counter()
        a = explainers.get(method).explain(handle, text, target, config)
        secs[(method, which)].append(time.perf_counter() - start)
        aopc[(method, which)].append(faithfulness_many(handle, [a], random_seeds=())[0].comp_aopc)

    targets = handle.predict_proba(texts).argmax(axis=1).tolist()
    for method in methods:  # warm-up: first calls pay one-off costs (imports, allocations)
        for which in runs:
            run(method, which, texts[0], targets[0])
    for key in secs:
        secs[key].clear()
    for key in aopc:
        aopc[key].clear()
    for i, (text, target) in enumerate(zip(texts, targets)):
        for method in methods:
            for which in runs[i % len(runs):] + runs[: i % len(runs)]:  # a different one first each sentence
                run(method, which, text, target)
        print(f"\r{i + 1}/{len(texts)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if ferret is not None:
        ferret.close()

    rows = []
    for method in methods:
        d, f, fx = (method, "default"), (method, "ferret budget"), (method, "ferret")
        row = {"explainer": method, "default settings": str(explainers.make_config(method)),
               "AOPC default": statistics.mean(aopc[d]), "AOPC ferret budget": statistics.mean(aopc[f]),
               "AOPC gap": statistics.mean(aopc[d]) - statistics.mean(aopc[f]),
               "s default": statistics.mean(secs[d]), "s ferret budget": statistics.mean(secs[f]),
               "x ferret budget": sum(secs[d]) / sum(secs[f])}
        if ferret is not None:
            row |= {"s ferret": statistics.mean(secs[fx]), "x ferret": sum(secs[d]) / sum(secs[fx])}
        rows.append(row)
    print(f"{len(texts)} test sentences, {torch.get_num_threads()} threads; comprehensiveness AOPC without the "
          "random baseline; seconds per sentence")
    print(table(rows))
    panel = {which: sum(sum(secs[(m, which)]) for m in methods) for which in runs}
    line = (f"panel ({', '.join(methods)}): {panel['default'] / len(texts):.2f} s at the defaults, "
            f"{panel['ferret budget'] / len(texts):.2f} s at ferret's budget "
            f"({panel['default'] / panel['ferret budget']:.2f}x)")
    if ferret is not None:
        line += (f", ferret {panel['ferret'] / len(texts):.2f} s: defaults {panel['default'] / panel['ferret']:.2f}x "
                 f"ferret, ferret's budget {panel['ferret budget'] / panel['ferret']:.2f}x")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
