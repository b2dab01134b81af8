"""Widgets built from Config dataclasses: each field's type, default and metadata (help/min/max/choices)."""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from explainers import config_fields


def config_widgets(config_cls: type, key: str, values: dict[str, Any] | None = None) -> Any:
    """Draw one widget per field of ``config_cls`` and return an instance with the chosen values.

    A value already in session state (e.g. from a permalink) wins over ``values`` and the field default. Numeric
    widgets stop at the limit in force on this server (``config_fields``' ``max``), and a value outside the
    range is brought within it first (Streamlit refuses a widget whose value is out of its range).
    """
    values = values or {}
    chosen: dict[str, Any] = {}
    for spec in config_fields(config_cls):
        name, default = spec["name"], values.get(spec["name"], spec["default"])
        wkey = f"{key}.{name}"
        help_text = spec.get("help")
        if spec.get("declared_max") is not None and spec["max"] < spec["declared_max"]:
            help_text = f"{help_text} (at most {spec['max']:,} on this server)"
        # Streamlit warns when a widget gets both a default and a session-state value: pass one only.
        common: dict[str, Any] = {"label": name.replace("_", " "), "help": help_text, "key": wkey}
        preset = wkey in st.session_state
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            low, high = spec.get("min", -math.inf), spec.get("max", math.inf)
            default = min(max(default, low), high)
            current = st.session_state.get(wkey)
            if isinstance(current, (int, float)) and not isinstance(current, bool) and not low <= current <= high:
                st.session_state[wkey] = min(max(current, low), high)
        if "choices" in spec:
            choices = list(spec["choices"])
            if not preset:
                common["index"] = choices.index(default) if default in choices else 0
            chosen[name] = st.selectbox(options=choices, **common)
        elif isinstance(spec["default"], bool):
            chosen[name] = st.checkbox(**common, **({} if preset else {"value": bool(default)}))
        elif isinstance(spec["default"], int):
            chosen[name] = int(st.number_input(min_value=spec.get("min"), max_value=spec.get("max"), step=1,
                                               **common, **({} if preset else {"value": int(default)})))
        elif isinstance(spec["default"], float):
            chosen[name] = float(st.number_input(min_value=float(spec.get("min", -1e9)),
                                                 max_value=float(spec.get("max", 1e9)), format="%g",
                                                 **common, **({} if preset else {"value": float(default)})))
        else:
            chosen[name] = st.text_input(**common, **({} if preset else {"value": str(default)}))
    return config_cls(**chosen)
