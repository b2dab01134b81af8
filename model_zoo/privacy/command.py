"""``python -m model_zoo pii scan FILE.csv`` and ``python -m model_zoo pii redact IN.csv OUT.csv``.

    python -m model_zoo pii scan reviews.csv --text-column text [--column author ...] [--json]
    python -m model_zoo pii redact reviews.csv clean.csv --text-column text [--style hash --salt S]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from model_zoo import cli
from model_zoo.errors import LoupeError


def _columns(args: argparse.Namespace) -> list[str]:
    return list(dict.fromkeys([args.text_column, *(args.column or [])]))


def _progress(args: argparse.Namespace) -> Any:
    if args.json or args.quiet:
        return None

    def show(done: int, total: int) -> None:
        print(f"\rscanning: {done:,}/{total:,}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    return show


def _print(result: Any) -> None:
    from model_zoo.privacy.analyzer import ENTITY_TYPES

    rows = [[r["personal data"], ENTITY_TYPES[r["personal data"]].phrase, *(r[c] for c in result.columns),
             r["total"]] for r in result.table()]
    if rows:
        print(cli.table(rows, ["type", "what", *result.columns, "total"]))
    print(result.sentence())
    for ex in result.examples:
        print(f"  row {ex['row']} {ex['column']!r} [{ex['found']}]: {ex['masked']}")


def cmd_scan(args: argparse.Namespace) -> int:
    from model_zoo.privacy.datasets import scan_csv

    result = scan_csv(args.file, _columns(args), entities=args.entities, min_score=args.min_score,
                      progress=_progress(args), examples=args.examples)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print(result)
    return 0


def cmd_redact(args: argparse.Namespace) -> int:
    from model_zoo.privacy.datasets import redact_csv, write_atomic
    from model_zoo.privacy.redaction import Redactor

    if args.out == args.file:
        raise LoupeError("Write the redacted copy to another file (OUT is the input).")
    redactor = Redactor(args.style, args.salt, args.entities, args.min_score)
    data, result = redact_csv(args.file, _columns(args), redactor, progress=_progress(args))
    write_atomic(args.out, data)
    if args.json:
        print(json.dumps({"out": args.out, "style": args.style, **result.to_dict()}, indent=2))
    else:
        _print(result)
        print(f"wrote {args.out} ({args.style} style)")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    from model_zoo.privacy.analyzer import MIN_SCORE

    p.add_argument("--text-column", default="text", help="the column of texts (default: text)")
    p.add_argument("--column", action="append", metavar="NAME", help="another column to include (repeatable)")
    p.add_argument("--entities", type=lambda v: [e for e in v.split(",") if e.strip()], metavar="A,B",
                   help="only these types (PERSON,EMAIL,PHONE,CREDIT_CARD,IBAN,IP_ADDRESS,URL,DATE,ADDRESS,"
                        "LOCATION,ORGANIZATION; default: all)")
    p.add_argument("--min-score", type=float, default=MIN_SCORE, help=f"detection score threshold (default "
                                                                       f"{MIN_SCORE})")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")


@cli.command("model_zoo", "pii")
def add_cli(sub: Any) -> None:
    """Add ``python -m model_zoo pii scan|redact``."""
    from model_zoo.privacy.redaction import STYLES

    p = sub.add_parser("pii", help="find or redact personal data in a CSV file (offline)")
    actions = p.add_subparsers(dest="pii_command", required=True)
    scan = actions.add_parser("scan", help="count personal data per type and column, with masked examples")
    scan.add_argument("file", help="a UTF-8 CSV file")
    scan.add_argument("--examples", type=int, default=3, help="masked examples per type (default 3)")
    _common(scan)
    scan.set_defaults(func=cmd_scan)
    red = actions.add_parser("redact", help="write a copy with the personal data replaced")
    red.add_argument("file", help="a UTF-8 CSV file")
    red.add_argument("out", help="where to write the redacted copy")
    red.add_argument("--style", choices=STYLES, default="placeholder",
                     help="placeholder (<PERSON>), mask (█████) or hash (stable pseudonyms; default placeholder)")
    red.add_argument("--salt", help="hash style: the salt (default: random, so pseudonyms differ between runs)")
    _common(red)
    red.set_defaults(func=cmd_redact)
