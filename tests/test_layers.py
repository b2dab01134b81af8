"""Dependencies point one way, ``dashboard -> explainers -> model_zoo``: no module imports or names a higher layer.

Each layer is imported alone in a fresh interpreter (every module of it), and must not pull in a higher one;
and no source file of a lower layer mentions a higher layer's name, not even in a string (job kinds and
subcommands are registered by the module that owns them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["model_zoo", "explainers", "dashboard"]  # lowest first


def _modules(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__" or (package == "dashboard" and ("app_pages" in parts or parts[-1] == "app")):
            continue  # entry points and Streamlit page scripts run code at import
        out.append(".".join(parts))
    return out


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_importing_a_layer_loads_no_higher_layer(layer: str) -> None:
    higher = LAYERS[LAYERS.index(layer) + 1:]
    code = (f"import importlib, json, sys\nfor m in {_modules(layer)!r}:\n    importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    leaked = [m for m in loaded if m.split(".")[0] in higher or (layer != "dashboard" and m == "streamlit")]
    assert not leaked, f"importing {layer} loaded {leaked}"


@pytest.mark.parametrize("layer", LAYERS[:-1])
def test_no_lower_module_names_a_higher_layer(layer: str) -> None:
    higher = LAYERS[LAYERS.index(layer) + 1:]
    names = "|".join(higher)
    # a module path (``explainers.evaluation``), an import, a quoted package name, or ``-m explainers``; the
    # plain words in prose ("what explainers need") are not references
    pattern = re.compile(rf"(?<![\w.])({names})(?=\.[A-Za-z_]|['\"])|(import|from)\s+({names})\b|-m\s+({names})\b")
    found = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "a lower layer names a higher one:\n" + "\n".join(found)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The import check is not vacuous: a model_zoo module importing explainers is caught."""
    code = ("import importlib, json, sys\nimportlib.import_module('model_zoo.jobs')\nimport explainers.base\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert any(m.startswith("explainers") for m in loaded)
