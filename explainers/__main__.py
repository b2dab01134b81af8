"""CLI: ``python -m explainers explain | evaluate | compress`` (each subcommand registered by its module).

``python -m explainers explain --model M --text "..." --methods ig,shap,lime,attention --json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from explainers import compression_report, evaluation, global_importance
from model_zoo import DEFAULT_MODEL_ID, cli


def cmd_explain(args: argparse.Namespace) -> int:
    import explainers
    from explainers.evaluation import parse_overrides
    from model_zoo import limits, load

    limits.check_text(args.text)  # before loading the model: a refused text costs nothing
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        explainers.get(m)  # an unknown name fails here, with the known ones listed
    overrides = parse_overrides(args.config, methods)
    handle = load(args.model, device=args.device)
    results = [explainers.get(m).explain(handle, args.text, args.target, explainers.make_config(m, overrides.get(m)))
               for m in methods]
    checks = {}
    if args.sanity:
        from explainers.sanity import randomisation_check

        checks = {a.method: randomisation_check(handle, a) for a in results}
    if args.json:
        print(json.dumps([{**a.to_dict(extras=args.full), **({"sanity": checks[a.method].to_dict()} if checks else {})}
                          for a in results], indent=2))
        return 0
    first = results[0]
    print(f"prediction: {first.labels[first.predicted]} "
          + " ".join(f"{lab}={p:.3f}" for lab, p in zip(first.labels, first.probs)))
    for a in results:
        top = ", ".join(f"{w.text} ({w.score:+.3f})" for w in a.top_words(args.top))
        print(f"{a.method:>12} [{a.cost.passes} passes, {a.cost.seconds:.2f} s] target={a.target_label}: {top}")
        if a.method in checks:
            print(f"{'':>12} sanity: {checks[a.method].sentence()}")
    return 0


@cli.command("explainers", "explain")
def _add_explain(sub: Any) -> None:
    p = sub.add_parser("explain", help="explain one text and print the attributions")
    p.add_argument("--model", default=DEFAULT_MODEL_ID)
    p.add_argument("--text", required=True)
    p.add_argument("--methods", default="ig,shap,lime,attention")
    p.add_argument("--target", type=int, default=None, help="class index (default: the predicted class)")
    p.add_argument("--config", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                   help="explainer setting, e.g. ig.n_steps=20 (repeatable; within this server's limits)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print Attributions as JSON")
    p.add_argument("--full", action="store_true", help="with --json: include large extras (attention)")
    p.add_argument("--top", type=int, default=5, help="words shown per method without --json")
    p.add_argument("--sanity", action="store_true",
                   help="also run the model-randomisation sanity check (one more explanation per method)")
    p.set_defaults(func=cmd_explain)


def main(argv: list[str] | None = None) -> int:
    assert compression_report and evaluation and global_importance  # they register compress, evaluate, global
    return cli.main("explainers", "Explain predictions, rank explainers, compare compressed variants.", argv)


if __name__ == "__main__":
    sys.exit(main())
