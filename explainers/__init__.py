"""Loupe's explainers: one contract (``explain(handle, text, target, config) -> Attribution``), a registry.

Each family lives in its own module and registers itself on import; optional backends whose library
is missing are simply absent from :data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
import logging

from explainers.base import (
    REGISTRY,
    Attribution,
    BaseExplainer,
    Cost,
    Explainer,
    ExplainerError,
    Word,
    available,
    get,
    make_config,
    register,
)

log = logging.getLogger(__name__)

DEFAULT_METHODS = ("ig", "shap", "lime", "attention")

for _module in ("captum_ig", "captum_gradients", "captum_ablation", "shap_partition", "lime_text", "attention"):
    try:
        importlib.import_module(f"explainers.{_module}")
    except ImportError as _err:  # a backend library is not installed
        log.warning("explainer module %s unavailable: %s", _module, _err)

__all__ = [
    "DEFAULT_METHODS",
    "REGISTRY",
    "Attribution",
    "BaseExplainer",
    "Cost",
    "Explainer",
    "ExplainerError",
    "Word",
    "available",
    "get",
    "make_config",
    "register",
]
