"""Shared bits of the bench scripts: the default model and a plain table printer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/explainers.py would shadow the `explainers` package: put the project root first, bench/ out.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))


def default_handle(model: str | None = None):  # type: ignore[no-untyped-def]
    """``model`` (a folder or store id) if given, else the default model from LOUPE_HOME's store, built first
    if missing; its ONNX Runtime forward pass prepared before any timing (``LOUPE_ONNX=off``: PyTorch only)."""
    from model_zoo import load, onnx_forward
    from model_zoo.recipe import prepare

    handle = load(model or str(prepare()), device=os.environ.get("LOUPE_DEVICE", "auto"))
    print(f"predictions: {onnx_forward.prepare(handle.model, handle.device)}", file=sys.stderr)
    return handle


def table(rows: list[dict], floatfmt: str = "{:.3f}") -> str:  # type: ignore[type-arg]
    """Rows of dicts as a plain-text table (``model_zoo.cli.table``), floats formatted with ``floatfmt``."""
    from model_zoo.cli import table as text_table

    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    return text_table(([floatfmt.format(r[c]) if isinstance(r[c], float) else r[c] for c in cols] for r in rows), cols)
