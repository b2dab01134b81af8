"""What pages call: thin functions over explainers/model_zoo with the dashboard's caches."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import explainers
from dashboard import state
from model_zoo import ModelHandle


@dataclass
class ExplainRequest:
    """One explanation request: everything that decides the result, so a rerun can redraw it."""

    model_key: str
    text: str
    methods: list[str]
    configs: dict[str, Any] = field(default_factory=dict)
    target: int | None = None


def method_choices(handle: ModelHandle) -> dict[str, str]:
    """name -> title of the explainers that support ``handle`` (registry order)."""
    return {e.name: e.title for e in explainers.available(handle)}


def default_methods(handle: ModelHandle) -> list[str]:
    return [m for m in explainers.DEFAULT_METHODS if m in method_choices(handle)]


def run_one(handle: ModelHandle, req: ExplainRequest, method: str) -> explainers.Attribution:
    """One explainer's result for the request (cached)."""
    config = req.configs.get(method) or explainers.get(method).Config()
    return state.explain(handle, req.text, method, config, req.target)


def changed_configs(configs: dict[str, Any]) -> str:
    """The explainer settings that differ from their defaults, as compact JSON for a permalink ('' if none)."""
    import dataclasses
    import json

    out = {}
    for method, config in configs.items():
        default = dataclasses.asdict(type(config)())
        diff = {k: v for k, v in dataclasses.asdict(config).items() if default.get(k) != v}
        if diff:
            out[method] = diff
    return json.dumps(out, separators=(",", ":"), sort_keys=True) if out else ""


def config_state(raw: str, methods: dict[str, str]) -> dict[str, Any]:
    """Widget values (session-state keys) for the settings in a permalink's ``cfg``; bad entries are ignored."""
    import json

    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    out: dict[str, Any] = {}
    if not isinstance(data, dict):
        return out
    for method, values in data.items():
        if method not in methods or not isinstance(values, dict):
            continue
        fields = {f["name"]: f for f in explainers.config_fields(explainers.get(method).Config)}
        for name, value in values.items():
            spec = fields.get(name)
            if spec is None or type(value) is not type(spec["default"]):
                continue
            if "choices" in spec and value not in spec["choices"]:
                continue
            if ("min" in spec and value < spec["min"]) or ("max" in spec and value > spec["max"]):
                continue
            out[f"{state.CONFIG_PREFIX}.{method}.{name}"] = value
    return out


def permalink(params: dict[str, str]) -> str:
    """The full URL of this view with ``params`` as its query string."""
    import urllib.parse

    import streamlit as st

    base = (st.context.url or "").split("?")[0] or "http://localhost:8501/"
    return f"{base}?{urllib.parse.urlencode(params)}" if params else base


def report_png(page_html: str) -> bytes:
    """Render a report to PNG with headless Chromium (network blocked)."""
    import tempfile
    from pathlib import Path

    from dashboard.report import render_png

    chromium = os.environ.get("LOUPE_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        raise RuntimeError(f"no Chromium at {chromium}; install it (apt-get install chromium) or set LOUPE_CHROMIUM")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "report.html"
        src.write_text(page_html, encoding="utf-8")
        return render_png(src, Path(tmp) / "report.png", chromium=chromium).read_bytes()
