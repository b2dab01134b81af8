"""What pages call: thin functions over explainers/model_zoo with the dashboard's caches."""

from __future__ import annotations

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
