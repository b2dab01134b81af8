"""Server-side budgets: how long a text and how large a setting one request may use.

Every way in (widgets, permalinks, the CLIs and ``Explainer.explain`` itself) goes through these numbers, so a
shared link or a script cannot ask for more than a person at the page could. They are read from the
environment on each call (cheap), so an operator changes them with a restart and tests with ``monkeypatch``:

- ``LOUPE_MAX_TEXT_CHARS``: characters in one text (default 20,000; 5,000 when ``LOUPE_HOSTED=1``). A
  longer text is refused, never cut silently.
- ``LOUPE_MAX_EXPLAIN_TOKENS``: tokens an explanation works on (default 0: the model's own limit; 256 when
  hosted). The model truncates at its ``max_length`` anyway; this caps the explained part below that, with
  the same visible truncation notice.
- ``LOUPE_LIMITS``: JSON ``{"method.field": cap}`` (e.g. ``{"lime.num_samples": 2000}``): a cap per explainer
  setting. Each Config field declares its own ``max`` (and may declare a tighter ``hosted_max``); an entry here
  replaces the hosted default but never goes past the declared ``max``.
- ``LOUPE_MAX_RUNNING`` / ``LOUPE_SESSION_RUNNING``: explanations that run at once in the whole server
  (default 4) and per session (default 1); the rest wait in line, first come first served (see
  :mod:`model_zoo.concurrency`).

Broken values are logged and ignored (the defaults, which are safe, apply).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from model_zoo.errors import LoupeError
from model_zoo.hosting import hosted

log = logging.getLogger(__name__)

TEXT_CHARS = 20_000
HOSTED_TEXT_CHARS = 5_000
HOSTED_EXPLAIN_TOKENS = 256
# Four at once: a long run holds one place and the others go on (on 2 CPUs, 8 sessions with a long SHAP
# first: 17 s median with 4 places, 73 s with 2; bench/concurrency.py); more only adds memory.
MAX_RUNNING = 4
SESSION_RUNNING = 1


class BudgetError(LoupeError, ValueError):
    """A request is over one of this server's budgets (text length or an explainer setting)."""


class TextTooLongError(BudgetError):
    """The text has more characters than ``LOUPE_MAX_TEXT_CHARS`` allows."""


@dataclass(frozen=True)
class Budget:
    """The limits in force. Build it with :func:`current`."""

    text_chars: int
    explain_tokens: int | None  # None: the model's own max_length
    settings: dict[str, float] = field(default_factory=dict)  # "method.field" -> operator cap
    hosted: bool = False
    max_running: int = MAX_RUNNING
    session_running: int = SESSION_RUNNING

    def setting_cap(self, key: str, declared_max: float | None, hosted_max: float | None = None) -> float | None:
        """The largest value allowed for setting ``key`` (``"lime.num_samples"``); None when unbounded.

        An operator's cap wins over the hosted default; neither can go past the field's declared ``max``.
        """
        cap = self.settings.get(key)
        if cap is None and self.hosted:
            cap = hosted_max
        if cap is None:
            return declared_max
        return cap if declared_max is None else min(cap, declared_max)

    def check_text(self, text: str) -> None:
        """Refuse a text over the character budget.

        Raises:
            TextTooLongError: with a message for a person (both lengths, what to do).
        """
        if len(text) > self.text_chars:
            raise TextTooLongError(f"The text has {len(text):,} characters; this server explains at most "
                                   f"{self.text_chars:,}. Shorten it and try again.")

    def tokens_for(self, model_max_length: int) -> int:
        """How many tokens (specials included) an explanation may use on a model that reads ``model_max_length``."""
        return model_max_length if self.explain_tokens is None else max(8, min(model_max_length, self.explain_tokens))


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        log.warning("%s=%r is not a whole number; using %d", name, raw, default)
        return default
    if value < 0:
        log.warning("%s=%r is negative; using %d", name, raw, default)
        return default
    return value


@lru_cache(maxsize=8)
def _parse_settings(raw: str) -> dict[str, float]:
    if not raw.strip():
        return {}
    try:
        data: Any = json.loads(raw)
    except (ValueError, RecursionError):
        log.warning("LOUPE_LIMITS is not valid JSON; ignored (the default limits apply)")
        return {}
    if not isinstance(data, dict):
        log.warning("LOUPE_LIMITS must be a JSON object like {\"lime.num_samples\": 2000}; ignored")
        return {}
    out: dict[str, float] = {}
    for key, value in data.items():
        ok_key = isinstance(key, str) and key.count(".") == 1 and all(key.split("."))
        ok_value = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                    and value > 0)
        if ok_key and ok_value:
            out[key] = value
        else:
            log.warning("LOUPE_LIMITS entry %r: %r ignored (use \"method.field\": a positive number)", key, value)
    return out


def current() -> Budget:
    """The budgets in force now, from the environment (see the module docstring for each variable)."""
    is_hosted = hosted()
    chars = _positive_int("LOUPE_MAX_TEXT_CHARS", HOSTED_TEXT_CHARS if is_hosted else TEXT_CHARS) or TEXT_CHARS
    tokens = _positive_int("LOUPE_MAX_EXPLAIN_TOKENS", HOSTED_EXPLAIN_TOKENS if is_hosted else 0)
    return Budget(
        text_chars=chars,
        explain_tokens=tokens or None,
        settings=_parse_settings(os.environ.get("LOUPE_LIMITS", "")),
        hosted=is_hosted,
        max_running=max(1, _positive_int("LOUPE_MAX_RUNNING", MAX_RUNNING)),
        session_running=max(1, _positive_int("LOUPE_SESSION_RUNNING", SESSION_RUNNING)),
    )


def check_text(text: str) -> None:
    """Refuse a text over ``LOUPE_MAX_TEXT_CHARS`` (raises :class:`TextTooLongError`)."""
    current().check_text(text)


__all__ = ["Budget", "BudgetError", "TextTooLongError", "check_text", "current", "hosted"]
