"""Permalinks: reading a link's query parameters (checked, clamped, never raising) and writing one.

Explainer settings in a link are read with the same spec that builds their widgets
(:func:`model_zoo.spec.settings`, limits of this server included).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dashboard import state
from dashboard.components.highlight import esc_md
from dashboard.services.explaining import check_text, config_class
from model_zoo import spec
from model_zoo.spec import Setting

# Longest query parameter read (characters); the text's limit is LOUPE_MAX_TEXT_CHARS.
PARAM_CHARS = {"methods": 1_000, "models": 2_000, "target": 12, "cfg": 4_000}
# What a link may start on its own when it is opened: no more than pressing the button with the defaults
# on a short text. Anything more waits for a click.
AUTORUN_CHARS = 1_000
AUTORUN_EXPLANATIONS = 8
AUTORUN_MODELS = 3


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


def changed_configs(configs: Mapping[str, Any]) -> str:
    """The explainer settings that differ from their defaults, as compact JSON for a permalink ('' if none)."""
    out = {}
    for method, config in configs.items():
        default = dataclasses.asdict(type(config)())
        diff = {k: v for k, v in dataclasses.asdict(config).items() if default.get(k) != v}
        if diff:
            out[method] = diff
    return json.dumps(out, separators=(",", ":"), sort_keys=True) if out else ""


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


def _number(s: Setting, key: str, value: Any, notes: list[str]) -> int | float | None:
    """A link's value for a numeric setting, clamped to [min, limit]; None when it is not a number of its type."""
    ok = (isinstance(value, int) and not isinstance(value, bool)) or (s.type is float and isinstance(value, float))
    if not ok or (isinstance(value, float) and not math.isfinite(value)):
        notes.append(f"{esc_md(key)}: {_quote(value)} is not a {'whole ' if s.type is int else ''}number; "
                     "the default is used.")
        return None
    low = s.min if s.min is not None else -math.inf
    high = s.max if s.max is not None else math.inf
    if value > high:
        why = "this server's limit" if s.capped else "its maximum"
        notes.append(f"{esc_md(key)}: {_quote(value)} was lowered to {high:,} ({why}).")
        return high
    if value < low:
        notes.append(f"{esc_md(key)}: {_quote(value)} was raised to its minimum, {low:,}.")
        return low
    number: int | float = s.type(value)
    return number


def _valid_choice(s: Setting, value: Any) -> bool:
    """Whether a link's value for a setting with choices, a bool or a string is one it may take."""
    if s.choices is not None:
        return isinstance(value, type(s.default)) and value in s.choices
    if s.type is bool:
        return isinstance(value, bool)
    return isinstance(value, str) and len(value) <= 200


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
        fields = {s.name: s for s in spec.settings(config_class(method), method)}
        for name, value in values.items():
            s, key = fields.get(name), f"{method}.{name}"
            if s is None:
                notes.append(f"{esc_md(method)} has no setting {_quote(name)}; it was left out.")
                continue
            if s.choices is not None or s.type in (bool, str):
                if not _valid_choice(s, value):
                    notes.append(f"{esc_md(key)}: {_quote(value)} is not a valid value; the default is used.")
                    continue
            else:
                value = _number(s, key, value, notes)
                if value is None:
                    continue
                if s.hosted_max is not None and value > s.default:  # settings with a hosted_max set the cost
                    costlier.append(key)
            out[f"{state.config_prefix(method)}.{name}"] = value
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


def permalink(params: Mapping[str, str]) -> str:
    """The full URL of this view with ``params`` as its query string."""
    import urllib.parse

    import streamlit as st

    base = (st.context.url or "").split("?")[0] or "http://localhost:8501/"
    return f"{base}?{urllib.parse.urlencode(params)}" if params else base
