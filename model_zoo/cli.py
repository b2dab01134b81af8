"""The command lines' shared frame: subcommands registered by the module that owns them, one table printer.

A module adds its subcommand with :func:`command` (a function that adds its parser to the subparsers); a
package's ``__main__`` imports its modules and calls :func:`main`; each package's command line shows the
subcommands of its own layer only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from model_zoo.errors import run_cli
from model_zoo.registry import Registry

AddParser = Callable[[Any], None]
COMMANDS: dict[str, Registry[AddParser]] = {}


def command(package: str, name: str) -> Callable[[AddParser], AddParser]:
    """Decorator: register ``add(subparsers)`` as subcommand ``name`` of ``python -m <package>``."""

    def wrap(add: AddParser) -> AddParser:
        COMMANDS.setdefault(package, Registry(f"{package} command")).register(name, add)
        return add

    return wrap


def main(package: str, description: str, argv: list[str] | None = None) -> int:
    """Parse ``argv`` with every subcommand registered for ``package`` and run the chosen one."""
    parser = argparse.ArgumentParser(prog=f"python -m {package}", description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS.get(package, {}).values():
        add(sub)
    return run_cli(parser.parse_args(argv))


def report_job(job_id: str, status: dict[str, Any], as_json: bool, summary: Callable[[dict[str, Any]], str]) -> int:
    """Print a job run from the command line: its status and result as JSON (``--json``), why it did not finish
    (with its log and the ``--resume`` line), or ``summary(result)``. Returns the exit status."""
    from model_zoo import jobs

    res = jobs.result(job_id) or {}
    if as_json:
        print(json.dumps({"job": job_id, "state": status.get("state"), "message": status.get("message"), **res},
                         indent=2, default=str))
        return 0 if status.get("state") == "done" else 1
    if status.get("state") != "done":
        print(f"error: job {job_id} {status.get('state')}: {status.get('message')}")
        print(f"(log: {jobs.job_dir(job_id) / 'log.txt'}; continue with --resume {job_id})")
        return 1
    print(summary(res))
    return 0


def table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain-text table: columns left-aligned to their widest cell, two spaces apart."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)
