"""Widgets built from Config dataclasses: each field's type, default and metadata (help/min/max/choices)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import streamlit as st

from model_zoo import spec


def config_fields(config_cls: type, scope: str | None = None) -> list[dict[str, Any]]:
    """The spec of ``config_cls`` (:func:`model_zoo.spec.settings`) as dicts without the unset keys."""
    return [{k: v for k, v in dataclasses.asdict(s).items() if v is not None or k == "default"}
            for s in spec.settings(config_cls, scope)]


def config_widgets(config_cls: type, key: str, values: dict[str, Any] | None = None,
                   scope: str | None = None) -> Any:
    """Draw one widget per field of ``config_cls`` and return an instance with the chosen values.

    A value already in session state (e.g. from a permalink) wins over ``values`` and the field default. Numeric
    widgets stop at the limit in force on this server (``config_fields``' ``max``), and a value outside the
    range is brought within it first (Streamlit refuses a widget whose value is out of its range).
    """
    values = values or {}
    chosen: dict[str, Any] = {}
    for fs in config_fields(config_cls, scope):
        name, default = fs["name"], values.get(fs["name"], fs["default"])
        wkey = f"{key}.{name}"
        help_text = fs.get("help")
        if fs.get("declared_max") is not None and fs["max"] < fs["declared_max"]:
            help_text = f"{help_text} (at most {fs['max']:,} on this server)"
        # Streamlit warns when a widget gets both a default and a session-state value: pass one only.
        common: dict[str, Any] = {"label": name.replace("_", " "), "help": help_text, "key": wkey}
        preset = wkey in st.session_state
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            low, high = fs.get("min", -math.inf), fs.get("max", math.inf)
            default = min(max(default, low), high)
            current = st.session_state.get(wkey)
            if isinstance(current, (int, float)) and not isinstance(current, bool) and not low <= current <= high:
                st.session_state[wkey] = min(max(current, low), high)
        if "choices" in fs:
            choices = list(fs["choices"])
            if not preset:
                common["index"] = choices.index(default) if default in choices else 0
            chosen[name] = st.selectbox(options=choices, **common)
        elif isinstance(fs["default"], bool):
            chosen[name] = st.checkbox(**common, **({} if preset else {"value": bool(default)}))
        elif isinstance(fs["default"], int):
            chosen[name] = int(st.number_input(min_value=fs.get("min"), max_value=fs.get("max"), step=1,
                                               **common, **({} if preset else {"value": int(default)})))
        elif isinstance(fs["default"], float):
            chosen[name] = float(st.number_input(min_value=float(fs.get("min", -1e9)),
                                                 max_value=float(fs.get("max", 1e9)), format="%g",
                                                 **common, **({} if preset else {"value": float(default)})))
        else:
            chosen[name] = st.text_input(**common, **({} if preset else {"value": str(default)}))
    return config_cls(**chosen)
