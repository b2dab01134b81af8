"""Widgets built from a config's spec (:func:`model_zoo.spec.settings`): each setting's type, default, help,
bounds (tightened to this server's limits) and choices. The one widget builder of the app."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import streamlit as st

from model_zoo import spec
from model_zoo.spec import Setting


def _help(s: Setting) -> str:
    if s.capped and s.max is not None:
        return f"{s.help} (at most {s.max:,} on this server)"
    return s.help


def _number_range(s: Setting) -> tuple[float, float]:
    return (s.min if s.min is not None else -math.inf, s.max if s.max is not None else math.inf)


def setting_widget(s: Setting, key: str, default: Any = None) -> Any:
    """Draw the widget of one setting under session-state key ``key`` and return its value.

    A value already in session state (e.g. from a permalink) wins over ``default`` (None: the setting's own).
    Numeric widgets stop at the limit in force on this server (``s.max``), and a value outside the range is
    brought within it first (Streamlit refuses a widget whose value is out of its range).
    """
    value = s.default if default is None else default
    label = s.name.replace("_", " ")
    preset = key in st.session_state  # Streamlit warns when a widget gets both a default and a state value
    if s.type in (int, float) and s.choices is None:
        low, high = _number_range(s)
        value = min(max(value, low), high)
        current = st.session_state.get(key)
        if isinstance(current, (int, float)) and not isinstance(current, bool) and not low <= current <= high:
            st.session_state[key] = min(max(current, low), high)
    if s.choices is not None:
        choices = list(s.choices)
        index = None if preset else (choices.index(value) if value in choices else 0)
        if index is None:
            return st.selectbox(label, choices, help=_help(s), key=key)
        return st.selectbox(label, choices, index=index, help=_help(s), key=key)
    if s.type is bool:
        if preset:
            return st.checkbox(label, help=_help(s), key=key)
        return st.checkbox(label, value=bool(value), help=_help(s), key=key)
    if s.type is int:
        low_i = int(s.min) if s.min is not None else None
        high_i = int(s.max) if s.max is not None else None
        if preset:
            return int(st.number_input(label, min_value=low_i, max_value=high_i, step=1, help=_help(s), key=key)
                       or 0)
        return int(st.number_input(label, min_value=low_i, max_value=high_i, value=int(value), step=1,
                                   help=_help(s), key=key))
    if s.type is float:
        low_f = float(s.min) if s.min is not None else -1e9
        high_f = float(s.max) if s.max is not None else 1e9
        if preset:
            return float(st.number_input(label, min_value=low_f, max_value=high_f, format="%g", help=_help(s),
                                         key=key) or 0.0)
        return float(st.number_input(label, min_value=low_f, max_value=high_f, value=float(value), format="%g",
                                     help=_help(s), key=key))
    if preset:
        return st.text_input(label, help=_help(s), key=key)
    return st.text_input(label, value=str(value), help=_help(s), key=key)


def config_values(config_cls: type, key: str, values: Mapping[str, Any] | None = None, scope: str | None = None,
                  only: Collection[str] | None = None) -> dict[str, Any]:
    """Draw one widget per setting of ``config_cls`` (those named in ``only``, in ``only``'s order, when given)
    and return name -> chosen value. Widget keys are ``f"{key}.{name}"``; ``values`` override the defaults."""
    values = values or {}
    settings = {s.name: s for s in spec.settings(config_cls, scope)}
    names = list(only) if only is not None else list(settings)
    return {name: setting_widget(settings[name], f"{key}.{name}", values.get(name)) for name in names}


def config_widgets(config_cls: type, key: str, values: Mapping[str, Any] | None = None,
                   scope: str | None = None) -> Any:
    """Draw one widget per setting of ``config_cls`` and return an instance with the chosen values.

    Args:
        config_cls: a config dataclass whose fields carry their spec (``model_zoo.spec.setting``).
        key: prefix of the widgets' session-state keys (``f"{key}.{field}"``; a permalink may preset them).
        values: defaults that replace the fields' own (e.g. a method's training recipe).
        scope: the config's scope (an explainer's name), for this server's limits on its settings.
    """
    return config_cls(**config_values(config_cls, key, values, scope))
