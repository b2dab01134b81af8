"""What pages call: thin functions over explainers/model_zoo with the dashboard's caches.

Explanation work goes through one line (:data:`WORK`: ``LOUPE_MAX_RUNNING`` at once in the server,
``LOUPE_SESSION_RUNNING`` per session) and the model's readers-writer gate; a page passes ``on_wait`` to say
where a request is waiting. Query parameters are read by :func:`read_link`, which never raises.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import explainers
from dashboard import state
from dashboard.components.highlight import esc_md
from dashboard.components.widgets import config_fields
from explainers.base import default_config
from model_zoo import ModelHandle, limits
from model_zoo.concurrency import WorkQueue

Notify = Callable[[str], None]
WORK = WorkQueue(lambda: limits.current().max_running, lambda: limits.current().session_running)
# Longest query parameter read (characters); the text's limit is LOUPE_MAX_TEXT_CHARS.
PARAM_CHARS = {"methods": 1_000, "models": 2_000, "target": 12, "cfg": 4_000}
# What a link may start on its own when it is opened: no more than pressing the button with the defaults
# on a short text. Anything more waits for a click.
AUTORUN_CHARS = 1_000
AUTORUN_EXPLANATIONS = 8
AUTORUN_MODELS = 3


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


def session_owner() -> str:
    """Who a piece of work belongs to in :data:`WORK`: the Streamlit session (a thread outside one)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else f"thread-{threading.get_ident()}"


def text_limit() -> int:
    """The longest text this server explains (characters; ``LOUPE_MAX_TEXT_CHARS``)."""
    return limits.current().text_chars


def check_text(text: str) -> str | None:
    """Why ``text`` cannot be explained on this server (too long), as a message for a person; None if it can."""
    try:
        limits.check_text(text)
    except limits.BudgetError as err:
        return str(err)
    return None


def run_one(handle: ModelHandle, req: ExplainRequest, method: str,
            on_wait: Notify | None = None) -> explainers.Attribution:
    """One explainer's result for the request (cached).

    A result already in the cache returns at once; new work waits for its turn in :data:`WORK` and for the
    model (exclusive use for hook-based explainers), calling ``on_wait(message)`` while it waits.

    Raises:
        LoupeError: the text or a setting is over this server's limits, or the explainer failed.
    """
    explainer = explainers.get(method)
    config = req.configs.get(method) or default_config(method)
    limits.check_text(req.text)
    if state.is_cached(handle, req.text, method, config, req.target):
        return state.explain(handle, req.text, method, config, req.target)
    with WORK.admit(session_owner(), on_wait):
        if explainer.needs_exclusive_model:  # holds the model alone (re-entered by the explainer itself)
            with handle.use(True, explainer.title, on_wait):
                return state.explain(handle, req.text, method, config, req.target)
        with handle.use(False, explainer.title, on_wait):
            pass  # waits (and says so) while a hook-based explainer holds the model; passes share it after
        return state.explain(handle, req.text, method, config, req.target)


def faithfulness(handle: ModelHandle, attribution: explainers.Attribution, on_wait: Notify | None = None) -> Any:
    """Faithfulness of a result (cached); new work waits its turn in :data:`WORK` like an explanation."""
    with WORK.admit(session_owner(), on_wait):
        return state.faithfulness(handle, attribution)


def sanity(handle: ModelHandle, attribution: explainers.Attribution, on_wait: Notify | None = None) -> Any:
    """The model-randomisation check of a result (cached): one more explanation, so it waits its turn too."""
    with WORK.admit(session_owner(), on_wait):
        return state.sanity(handle, attribution)


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


@dataclass
class Link:
    """What a permalink's query parameters asked for, checked: only valid values, clamped to the limits.

    ``notes`` says, for a person, what was left out or changed (already Markdown-escaped where it quotes
    the link). ``None`` means the link did not set that value (or set it wrongly): the page's default stays.
    """

    text: str | None = None
    methods: list[str] | None = None
    target: int | None = None
    models: list[str] | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # widget session-state key -> value
    costlier: list[str] = field(default_factory=list)  # "method.field" set above its default's cost
    notes: list[str] = field(default_factory=list)


def _quote(value: Any, width: int = 24) -> str:
    text = str(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return esc_md(text if len(text) <= width else text[: width - 1] + "…")


def _names(raw: str, allowed: Mapping[str, Any] | list[str], what: str, notes: list[str]) -> list[str] | None:
    if len(raw) > PARAM_CHARS.get(what, 1_000):
        notes.append(f"The link's {what} list is too long ({len(raw):,} characters); the defaults are used.")
        return None
    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown:
        shown = ", ".join(_quote(n) for n in unknown[:5])
        shown += f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        notes.append(f"Left out {what} this page does not offer: {shown}.")
    known = [n for n in names if n in allowed]
    return known or None


def _number(spec: dict[str, Any], key: str, value: Any, notes: list[str]) -> Any:
    """A link's value for a numeric field, clamped to [min, limit]; None when it is not a number of the field's type."""
    kind = spec["type"]
    ok = (isinstance(value, int) and not isinstance(value, bool)) or (kind is float and isinstance(value, float))
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        notes.append(f"{esc_md(key)}: {_quote(value)} is not a {'whole ' if kind is int else ''}number; "
                     "the default is used.")
        return None
    low, high = spec.get("min", -math.inf), spec.get("max", math.inf)
    if value > high:
        why = "this server's limit" if spec.get("declared_max") not in (None, high) else "its maximum"
        notes.append(f"{esc_md(key)}: {_quote(value)} was lowered to {high:,} ({why}).")
        return high
    if value < low:
        notes.append(f"{esc_md(key)}: {_quote(value)} was raised to its minimum, {low:,}.")
        return low
    return kind(value)


def _settings(raw: str, methods: Mapping[str, str], notes: list[str], costlier: list[str]) -> dict[str, Any]:
    if len(raw) > PARAM_CHARS["cfg"]:
        notes.append(f"The link's settings are too long ({len(raw):,} characters); the defaults are used.")
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        notes.append("The link's settings are not valid JSON; the defaults are used.")
        return {}
    if not isinstance(data, dict):
        notes.append("The link's settings are not a list of explainer settings; the defaults are used.")
        return {}
    out: dict[str, Any] = {}
    for method, values in data.items():
        if method not in methods:
            notes.append(f"Settings for {_quote(method)} were left out: this page does not offer it.")
            continue
        if not isinstance(values, dict):
            notes.append(f"Settings for {esc_md(method)} are not a list of fields; its defaults are used.")
            continue
        fields = {f["name"]: f for f in config_fields(explainers.get(method).Config, method)}
        for name, value in values.items():
            spec, key = fields.get(name), f"{method}.{name}"
            if spec is None:
                notes.append(f"{esc_md(method)} has no setting {_quote(name)}; it was left out.")
                continue
            if "choices" in spec or isinstance(spec["default"], (bool, str)):
                if "choices" in spec:
                    valid = isinstance(value, type(spec["default"])) and value in spec["choices"]
                elif isinstance(spec["default"], bool):
                    valid = isinstance(value, bool)
                else:
                    valid = isinstance(value, str) and len(value) <= 200
                if not valid:
                    notes.append(f"{esc_md(key)}: {_quote(value)} is not a valid value; the default is used.")
                    continue
            else:
                value = _number(spec, key, value, notes)
                if value is None:
                    continue
                if "hosted_max" in spec and value > spec["default"]:  # fields with a hosted_max set the cost
                    costlier.append(key)
            out[f"{state.CONFIG_PREFIX}.{method}.{name}"] = value
    return out


def read_link(params: Mapping[str, Any], methods: Mapping[str, str], num_labels: int = 0,
              models: list[str] | None = None) -> Link:
    """Check a permalink's query parameters (``text``, ``methods``, ``target``, ``cfg``, ``models``).

    Never raises: a value of the wrong type, too long, nested too deep, unknown or out of range is left out
    (or clamped to the limits in force) and said in ``notes``.

    Args:
        params: the query parameters (``st.query_params.to_dict()``).
        methods: the explainers the page offers (name -> title).
        num_labels: classes of the loaded model (for ``target``).
        models: the models the page offers (for ``models``, Compare only).
    """
    link = Link()
    notes = link.notes
    raw = {k: str(v) for k, v in params.items()}
    text = raw.get("text")
    if text:
        reason = check_text(text)
        if reason:
            notes.append(f"The link's text was not loaded. {reason}")
        else:
            link.text = text
    if raw.get("methods"):
        link.methods = _names(raw["methods"], methods, "explainers", notes)
    if raw.get("models") and models is not None:
        link.models = _names(raw["models"], models, "models", notes)
    target = raw.get("target")
    if target:
        if re.fullmatch(r"\d{1,6}", target) and int(target) < num_labels:
            link.target = int(target)
        else:
            notes.append(f"The link's target {_quote(target, 12)} is not a class of this model "
                         f"(0 to {num_labels - 1}); the predicted class is used.")
    if raw.get("cfg"):
        link.settings = _settings(raw["cfg"], methods, notes, link.costlier)
    return link


def autorun_blocker(link: Link, explanations: int, models: int = 1) -> str:
    """Why opening ``link`` must not start its explanations by itself ('' when it may).

    A link runs on open only what pressing the button with the default settings would run on a short
    text: at most :data:`AUTORUN_CHARS` characters, :data:`AUTORUN_EXPLANATIONS` explanations and
    :data:`AUTORUN_MODELS` models, and no setting that costs more than its default.
    """
    if link.text is None:
        return "no text"
    if len(link.text) > AUTORUN_CHARS:
        return f"Its text is longer than {AUTORUN_CHARS:,} characters."
    if link.costlier:
        return f"It asks for more work than the defaults ({', '.join(esc_md(k) for k in link.costlier)})."
    if models > AUTORUN_MODELS:
        return f"It names {models} models."
    if explanations > AUTORUN_EXPLANATIONS:
        return f"It asks for {explanations} explanations."
    return ""


def link_message(link: Link) -> str:
    """One message for everything a link asked for that was changed or left out ('' when nothing was)."""
    if not link.notes:
        return ""
    return "This link asked for more than this page will do, so it was adjusted:\n" + "\n".join(
        f"- {n}" for n in link.notes)


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
