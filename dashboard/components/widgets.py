"""Widgets built from Config dataclasses: each field's type, default and metadata (help/min/max/choices)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from explainers import config_fields


def config_widgets(config_cls: type, key: str, values: dict[str, Any] | None = None) -> Any:
    """Draw one widget per field of ``config_cls`` and return an instance with the chosen values.

    A value already in session state (e.g. from a permalink) wins over ``values`` and the field default.
    """
    values = values or {}
    chosen: dict[str, Any] = {}
    for spec in config_fields(config_cls):
        name, default = spec["name"], values.get(spec["name"], spec["default"])
        wkey = f"{key}.{name}"
        # Streamlit warns when a widget gets both a default and a session-state value: pass one only.
        common: dict[str, Any] = {"label": name.replace("_", " "), "help": spec.get("help"), "key": wkey}
        preset = wkey in st.session_state
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
