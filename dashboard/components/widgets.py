"""Widgets built from Config dataclasses: each field's type, default and metadata (help/min/max/choices)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from explainers import config_fields


def config_widgets(config_cls: type, key: str, values: dict[str, Any] | None = None) -> Any:
    """Draw one widget per field of ``config_cls`` and return an instance with the chosen values."""
    values = values or {}
    chosen: dict[str, Any] = {}
    for spec in config_fields(config_cls):
        name, default = spec["name"], values.get(spec["name"], spec["default"])
        label = name.replace("_", " ")
        wkey = f"{key}.{name}"
        if "choices" in spec:
            choices = list(spec["choices"])
            chosen[name] = st.selectbox(label, choices, index=choices.index(default) if default in choices else 0,
                                        help=spec.get("help"), key=wkey)
        elif isinstance(spec["default"], bool):
            chosen[name] = st.checkbox(label, value=bool(default), help=spec.get("help"), key=wkey)
        elif isinstance(spec["default"], int):
            chosen[name] = int(st.number_input(label, min_value=spec.get("min"), max_value=spec.get("max"),
                                               value=int(default), step=1, help=spec.get("help"), key=wkey))
        elif isinstance(spec["default"], float):
            chosen[name] = float(st.number_input(label, min_value=float(spec.get("min", -1e9)),
                                                 max_value=float(spec.get("max", 1e9)), value=float(default),
                                                 help=spec.get("help"), key=wkey, format="%g"))
        else:
            chosen[name] = st.text_input(label, value=str(default), help=spec.get("help"), key=wkey)
    return config_cls(**chosen)
