"""CLI: ``python -m model_zoo list | prepare``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from model_zoo import DEFAULT_MODEL_ID, store
from model_zoo.errors import run_cli


def _metric(card: dict, split: str, key: str) -> str:  # type: ignore[type-arg]
    value = card.get("metrics", {}).get(split, {}).get(key)
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def cmd_list(args: argparse.Namespace) -> int:
    cards = store.list_models()
    if args.json:
        print(json.dumps(cards, indent=2, default=str))
        return 0
    if not cards:
        print("The model store is empty. Build the default model with: python -m model_zoo prepare")
        return 0
    rows = [("id", "task", "labels", "test acc", "test F1", "method")]
    for c in cards:
        rows.append((c["id"], str(c.get("task", "-")), ", ".join(map(str, c.get("labels", []))),
                     _metric(c, "test", "accuracy"), _metric(c, "test", "f1_macro"), str(c.get("method", "-"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from model_zoo.recipe import prepare

    existed = store.model_path(args.id) is not None and not args.force
    path = prepare(args.id, force=args.force, quiet=args.quiet)
    card = store.read_card(path)
    verb = "already present" if existed else f"built in {card.get('build_seconds', '?')} s"
    print(f"{args.id}: {verb} at {path}; test accuracy {_metric(card, 'test', 'accuracy')}")
    return 0


def _add_cli(module: str, sub: Any) -> None:
    """Subcommands that live beside their feature (``finetune``, ``compress``): ``add_cli(subparsers)``."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return
    mod.add_cli(sub)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_zoo", description="Loupe's model store.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="models in the store with task, labels and metrics")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("prepare", help=f"build the default model ({DEFAULT_MODEL_ID}) if it is missing")
    p.add_argument("--id", default=DEFAULT_MODEL_ID)
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)
    for module in ("model_zoo.finetune", "explainers.compression_report"):
        _add_cli(module, sub)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
