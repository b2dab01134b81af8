"""CLI: ``python -m model_zoo list | prepare | finetune | continual | calibrate | pii`` (each registered by its
module)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from model_zoo import DEFAULT_MODEL_ID, calibration, cli, continual, finetune, privacy, store


def _metric(card: dict[str, Any], split: str, key: str) -> str:
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
    print(cli.table(((c["id"], c.get("task", "-"), ", ".join(map(str, c.get("labels", []))),
                      _metric(c, "test", "accuracy"), _metric(c, "test", "f1_macro"), c.get("method", "-"))
                     for c in cards), ("id", "task", "labels", "test acc", "test F1", "method")))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from model_zoo.recipe import prepare

    existed = store.model_path(args.id) is not None and not args.force
    path = prepare(args.id, force=args.force, quiet=args.quiet)
    card = store.read_card(path)
    verb = "already present" if existed else f"built in {card.get('seconds', '?')} s"
    print(f"{args.id}: {verb} at {path}; test accuracy {_metric(card, 'test', 'accuracy')}")
    return 0


@cli.command("model_zoo", "list")
def _add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="models in the store with task, labels and metrics")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)


@cli.command("model_zoo", "prepare")
def _add_prepare(sub: Any) -> None:
    p = sub.add_parser("prepare", help=f"build the default model ({DEFAULT_MODEL_ID}) if it is missing")
    p.add_argument("--id", default=DEFAULT_MODEL_ID)
    p.add_argument("--force", action="store_true", help="rebuild even if present")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_prepare)


def main(argv: list[str] | None = None) -> int:
    assert finetune and calibration and privacy and continual  # they register finetune, calibrate, pii, continual
    return cli.main("model_zoo", "Loupe's model store.", argv)


if __name__ == "__main__":
    sys.exit(main())
