"""Does Loupe's default budget give up faithfulness? Each explainer at its defaults and at ferret's parameters.

On the first ``--n`` Rotten Tomatoes test sentences and the default model: comprehensiveness AOPC (higher is
better; the same metric and bins as the Evaluate page) and seconds per sentence, per explainer, at Loupe's
default settings and at the settings ``bench/peers.py`` matches to ferret's defaults (LIME min(tokens^2, 5000)
samples with [MASK], Partition SHAP 500 evaluations, IG 50 steps). The two runs take turns sentence by
sentence. "AOPC gap" is default minus ferret-budget (the goal: within 0.01); "cost" is the default's seconds
over the ferret-budget's. Multiply by ``bench/peers.py``'s Loupe/ferret ratio for the cost against ferret.

    python bench/budget.py [--n 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from _common import default_handle, table

from bench.peers import PANEL, loupe_config  # noqa: E402  (after _common fixed sys.path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--model", default=None)
    p.add_argument("--methods", default=",".join(PANEL))
    args = p.parse_args(argv)

    import explainers
    from explainers.metrics import faithfulness_many
    from model_zoo.data import rotten_tomatoes

    handle = default_handle(args.model)
    texts = [t for t in rotten_tomatoes("test").texts if t.strip()][: args.n]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    budgets = ("default", "ferret")
    aopc: dict[tuple[str, str], list[float]] = {(m, b): [] for m in methods for b in budgets}
    secs: dict[tuple[str, str], list[float]] = {(m, b): [] for m in methods for b in budgets}
    for i, text in enumerate(texts):
        for method in methods:
            explainer = explainers.get(method)
            order = budgets if i % 2 == 0 else budgets[::-1]  # take turns going first
            for budget in order:
                config = explainers.make_config(method) if budget == "default" else loupe_config(handle, method, text)
                start = time.perf_counter()
                a = explainer.explain(handle, text, None, config)
                secs[(method, budget)].append(time.perf_counter() - start)
                aopc[(method, budget)].append(faithfulness_many(handle, [a], random_seeds=())[0].comp_aopc)
        print(f"\r{i + 1}/{len(texts)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    rows = []
    for method in methods:
        d, f = (method, "default"), (method, "ferret")
        rows.append({"explainer": method, "default settings": str(explainers.make_config(method)),
                     "AOPC default": statistics.mean(aopc[d]), "AOPC ferret budget": statistics.mean(aopc[f]),
                     "AOPC gap": statistics.mean(aopc[d]) - statistics.mean(aopc[f]),
                     "s default": statistics.mean(secs[d]), "s ferret budget": statistics.mean(secs[f]),
                     "cost": sum(secs[d]) / sum(secs[f])})
    panel_d = sum(sum(secs[(m, "default")]) for m in methods)
    panel_f = sum(sum(secs[(m, "ferret")]) for m in methods)
    print(f"{len(texts)} test sentences; comprehensiveness AOPC without the random baseline")
    print(table(rows))
    print(f"panel ({', '.join(methods)}): {panel_d / len(texts):.2f} s at the defaults, "
          f"{panel_f / len(texts):.2f} s at ferret's budget: {panel_d / panel_f:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
