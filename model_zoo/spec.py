"""One spec for every config: settings declared once, used by widgets, CLI flags, JSON and validation.

A config is a dataclass whose fields are made with :func:`setting` (default, help, and where they apply
``min``/``max``/``choices``/``hosted_max``). Everything else reads that declaration:

- :func:`settings` describes the fields for a UI or a help text, with ``max`` already tightened to the limit
  in force on this server (:mod:`model_zoo.limits`: ``hosted_max`` in hosted mode, the operator's
  ``LOUPE_LIMITS`` entry ``"<scope>.<field>"``);
- :func:`build` makes an instance from JSON (unknown keys, wrong types and out-of-range values are a
  :class:`ConfigError` naming the setting; nested config dataclasses are built the same way);
  :func:`check` validates an instance; :func:`defaults` is the instance with every default within limits;
- :func:`add_arguments` / :func:`from_args` turn the fields into ``argparse`` flags and back, and
  :func:`parse_assignments` reads ``KEY=VALUE`` strings (``--set r=16``, ``--config ig.n_steps=20``).

The *scope* is the name the config belongs to (an explainer ``ig``, a fine-tuning method ``lora``, a job kind
``compress``); it prefixes setting names in messages and in ``LOUPE_LIMITS``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import MISSING
from typing import Any

from model_zoo import limits
from model_zoo.errors import LoupeError
from model_zoo.limits import BudgetError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(LoupeError):
    """A setting is unknown, or its value has the wrong type or is out of its declared range."""


class SettingOverBudgetError(ConfigError, BudgetError):
    """A setting is above its maximum or above this server's limit for it."""


def setting(default: Any = MISSING, help: str = "", *, min: float | None = None, max: float | None = None,
            choices: typing.Sequence[Any] | None = None, hosted_max: float | None = None,
            factory: typing.Callable[[], Any] | None = None) -> Any:
    """A dataclass field with its spec (use as ``r: int = setting(8, "Rank", min=1, max=256)``).

    Args:
        default: the default value (or ``factory`` for a mutable one).
        help: one line for people (widget tooltip, ``--help``).
        min, max: inclusive bounds of a number.
        choices: the allowed values.
        hosted_max: a tighter maximum applied in hosted mode (``LOUPE_HOSTED=1``).
    """
    meta: dict[str, Any] = {"help": help}
    for key, value in (("min", min), ("max", max), ("hosted_max", hosted_max)):
        if value is not None:
            meta[key] = value
    if choices is not None:
        meta["choices"] = list(choices)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One field of a config as people and programs see it on this server."""

    name: str
    type: Any  # bool, int, float, str, list, dict, or a config dataclass
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None  # the limit in force here
    declared_max: float | None = None  # the field's own maximum, when a server limit is tighter or equal
    choices: tuple[Any, ...] | None = None
    hosted_max: float | None = None  # set on the settings that drive an explanation's cost

    @property
    def numeric(self) -> bool:
        return self.type in (int, float)

    @property
    def capped(self) -> bool:
        """Whether this server's limit is below the field's own maximum."""
        return self.declared_max is not None and self.max is not None and self.max < self.declared_max

    def parse(self, text: str) -> Any:
        """The value of a command-line string (``"16"``, ``"yes"``, ``"query,value"`` for a list)."""
        try:
            if self.type is bool:
                low = text.strip().lower()
                if low not in _TRUE + _FALSE:
                    raise ValueError(text)
                return low in _TRUE
            if self.type is int:
                return int(text)
            if self.type is float:
                return float(text)
        except ValueError:
            raise ConfigError(f"{self.name}={text!r} is not a valid {self.type.__name__}.") from None
        if self.type is list:
            return [part.strip() for part in text.split(",") if part.strip()]
        return text


def _types(cls: type) -> dict[str, Any]:
    """Each field's declared type: ``int | None`` -> int, ``list[str]`` -> list, a nested config its class."""
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint = args[0] if len(args) == 1 else Any
        out[name] = typing.get_origin(hint) or hint
    return out


def settings(cls: type, scope: str | None = None, budget: limits.Budget | None = None) -> list[Setting]:
    """The fields of config class ``cls`` with the limits in force (see the module docstring)."""
    budget = budget or limits.current()
    types = _types(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        meta = dict(f.metadata)
        kind = types.get(f.name, type(default))
        low, high, declared = meta.get("min"), meta.get("max"), None
        if kind in (int, float) and (high is not None or "hosted_max" in meta):
            cap = budget.setting_cap(f"{scope}.{f.name}" if scope else "", high, meta.get("hosted_max"))
            if cap is not None:
                cap = max(cap, low) if low is not None else cap  # an operator's cap below the minimum: the minimum
                declared, high = high, (int(cap) if kind is int else float(cap))
                if isinstance(default, (int, float)) and not isinstance(default, bool):
                    default = min(default, high)
        choices = tuple(meta["choices"]) if "choices" in meta else None
        out.append(Setting(f.name, kind, default, meta.get("help", ""), low, high, declared, choices,
                           meta.get("hosted_max")))
    return out


def _well_typed(s: Setting, value: Any) -> bool:
    if value is None:
        return s.default is None
    if s.type is bool:
        return isinstance(value, bool)
    if s.type is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if s.type is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(s.type, type) and not dataclasses.is_dataclass(s.type):
        return isinstance(value, s.type)
    return True


def check(config: Any, scope: str | None = None, budget: limits.Budget | None = None,
          error: type[ConfigError] = ConfigError, over: type[ConfigError] = SettingOverBudgetError) -> None:
    """Refuse values of the wrong type, below ``min``, not among ``choices`` or above the limit in force.

    Raises:
        ConfigError (or ``error``): a wrong type, a value below ``min`` or not among ``choices``.
        SettingOverBudgetError (or ``over``): a value above the maximum or this server's limit.
    """
    for s in settings(type(config), scope, budget):
        value = getattr(config, s.name)
        key = f"{scope}.{s.name}" if scope else s.name
        if dataclasses.is_dataclass(s.type) and dataclasses.is_dataclass(value):
            check(value, scope, budget, error, over)
            continue
        if not _well_typed(s, value):
            raise error(f"{key}={value!r} is not a valid {getattr(s.type, '__name__', s.type)}.")
        if s.choices is not None and value not in s.choices:
            raise error(f"{key}={value!r} is not one of {list(s.choices)}.")
        if s.min is not None and value < s.min:
            raise error(f"{key}={value} is below its minimum, {s.min}.")
        if s.max is not None and value > s.max:
            if s.capped:
                raise over(f"{key}={value} is over this server's limit of {s.max}.")
            raise over(f"{key}={value} is over its maximum, {s.max}.")


def build(cls: type, values: Any = None, scope: str | None = None, budget: limits.Budget | None = None,
          error: type[ConfigError] = ConfigError, over: type[ConfigError] = SettingOverBudgetError) -> Any:
    """An instance of ``cls`` from a dict (JSON), an instance, or None (the defaults), checked.

    Missing keys take their default within this server's limits; nested config dataclasses are built from
    their dicts the same way; an ``int`` is accepted where a ``float`` is declared.

    Raises:
        ConfigError (or ``error``): an unknown key, a wrong type, a value out of range.
        SettingOverBudgetError (or ``over``): a value over its limit.
    """
    if isinstance(values, cls):
        check(values, scope, budget, error, over)
        return values
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise error(f"{scope or cls.__name__} settings must be a mapping, not {type(values).__name__}.")
    specs = {s.name: s for s in settings(cls, scope, budget)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise error(f"Bad config for {scope or cls.__name__}: no setting(s) {', '.join(map(str, unknown))}; "
                    f"known: {', '.join(specs) or 'none'}.")
    kwargs: dict[str, Any] = {}
    for name, s in specs.items():
        value = values.get(name, s.default)
        if isinstance(s.type, type) and dataclasses.is_dataclass(s.type) and isinstance(value, dict):
            value = build(s.type, value, scope, budget, error, over)
        elif s.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        kwargs[name] = value
    try:
        config = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise error(f"Bad config for {scope or cls.__name__}: {err}") from err
    check(config, scope, budget, error, over)
    return config


def defaults(cls: type, scope: str | None = None, budget: limits.Budget | None = None) -> Any:
    """``cls`` with every default brought within this server's limits."""
    return cls(**{s.name: s.default for s in settings(cls, scope, budget)})


def to_dict(config: Any) -> dict[str, Any]:
    """The JSON form of a config (nested configs as dicts); :func:`build` reads it back."""
    return dataclasses.asdict(config)


def parse_assignments(items: typing.Iterable[str], cls: type, scope: str | None = None) -> dict[str, Any]:
    """``["r=16", "merge=no"]`` -> ``{"r": 16, "merge": False}``, typed by ``cls``'s spec.

    Raises:
        ConfigError: an item without ``=`` or naming no setting of ``cls``.
    """
    specs = {s.name: s for s in settings(cls, scope)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or key not in specs:
            where = f" of {scope}" if scope else ""
            raise ConfigError(f"{item!r}: use KEY=VALUE with KEY a setting{where}: {', '.join(specs) or 'none'}.")
        out[key] = specs[key].parse(text)
    return out


def flag(name: str, prefix: str = "") -> str:
    return "--" + (prefix + name).replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser | Any, cls: type, *, prefix: str = "",
                  skip: typing.Collection[str] = (), scope: str | None = None, default_none: bool = False,
                  defaults_from: Any = None) -> None:
    """One ``--flag`` per scalar setting of ``cls`` (``--batch-size``), typed, with help, bounds and default.

    Args:
        prefix: put before every flag name (``--train-`` ...).
        skip: settings that get no flag.
        default_none: leave unset flags as None (so :func:`from_args` returns only what was given),
            and name ``defaults_from``'s value (or the declared default) in the help.
        defaults_from: an instance whose values are shown as the defaults (e.g. a method's recipe).
    """
    for s in settings(cls, scope):
        if s.name in skip or s.type not in (bool, int, float, str, list):
            continue
        shown = getattr(defaults_from, s.name, s.default) if defaults_from is not None else s.default
        bounds = "" if s.min is None and s.max is None else f" [{s.min if s.min is not None else ''}.." \
                                                              f"{s.max if s.max is not None else ''}]"
        text = f"{s.help}{bounds} (default: {shown})".replace("%", "%%")
        dest = (prefix + s.name).replace("-", "_")
        if s.type is bool:
            parser.add_argument(flag(s.name, prefix), dest=dest, action=argparse.BooleanOptionalAction,
                                default=None if default_none else shown, help=text)
        elif s.type is list:
            parser.add_argument(flag(s.name, prefix), dest=dest, type=s.parse, metavar="A,B",
                                default=None if default_none else shown, help=text)
        else:
            parser.add_argument(flag(s.name, prefix), dest=dest, type=s.parse, choices=s.choices,
                                default=None if default_none else shown, help=text)


def from_args(args: argparse.Namespace, cls: type, *, prefix: str = "",
              skip: typing.Collection[str] = ()) -> dict[str, Any]:
    """The settings of ``cls`` given on the command line (flags made by :func:`add_arguments`), without Nones."""
    out = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, (prefix + f.name).replace("-", "_"), None)
        if f.name not in skip and value is not None:
            out[f.name] = value
    return out


__all__ = ["ConfigError", "Setting", "SettingOverBudgetError", "add_arguments", "build", "check", "defaults",
           "flag", "from_args", "parse_assignments", "setting", "settings", "to_dict"]
