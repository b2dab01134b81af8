"""The ``compress`` job's settings: one spec (:func:`model_zoo.spec.setting`) for the page, the CLI and JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from explainers.base import get
from model_zoo import DEFAULT_MODEL_ID
from model_zoo import spec as config_spec
from model_zoo.compression import CompressionOverBudgetError, CompressionSettingError, parse_variants

SCOPE = "compress"  # the settings' scope in messages and in LOUPE_LIMITS ("compress.n_drift")


@dataclass
class CompressConfig:
    """Settings of one compression comparison (the ``compress`` job's config, the CLI's flags)."""

    model: str = config_spec.setting(DEFAULT_MODEL_ID, "Model id or folder")
    variants: list[Any] = config_spec.setting(help="Variant names (e.g. int8, fp16, prune-50, layers-3, distill-3l) "
                                                   "or {name, settings} dicts",
                                              factory=lambda: ["int8", "prune-50", "distill-3l"])
    methods: list[str] = config_spec.setting(help="Explainers compared for drift", factory=lambda: ["ig", "shap"])
    n_eval: int = config_spec.setting(500, "Test texts for accuracy (0: the whole split)", min=0, max=100000)
    n_drift: int = config_spec.setting(20, "Test sentences explained for drift", min=1, max=500)
    n_show: int = config_spec.setting(5, "Sentences kept for the side-by-side viewer", min=0, max=50)
    ig_steps: int = config_spec.setting(20, "IG integration steps", min=4, max=500)
    shap_max_evals: int = config_spec.setting(64, "SHAP masked texts per sentence", min=10, max=20000)
    repeats: int = config_spec.setting(30, "Timed batches per variant and batch size", min=3, max=1000)
    device: str = config_spec.setting("cpu", "cpu (int8) or cuda (fp16/bf16)")
    save_variants: bool = config_spec.setting(True, "Keep each variant's folder to save it later")

    def __post_init__(self) -> None:
        if isinstance(self.variants, str):
            self.variants = [v for v in self.variants.split(",") if v.strip()]
        if isinstance(self.methods, str):
            self.methods = [m.strip() for m in self.methods.split(",") if m.strip()]
        for name in self.methods:
            get(name)  # unknown explainer -> ExplainerError
        parse_variants(self.variants)


def build_config(values: CompressConfig | dict[str, Any] | None = None) -> CompressConfig:
    """A checked :class:`CompressConfig` from its JSON (:func:`model_zoo.spec.build`).

    Raises:
        CompressionSettingError: an unknown setting, a wrong type or a value out of range (a ``CompressionError``).
        CompressionOverBudgetError: a value over its maximum or this server's limit.
        CompressionError: an unknown or repeated variant; ExplainerError: an unknown explainer.
    """
    return config_spec.build(CompressConfig, values, SCOPE, error=CompressionSettingError,
                             over=CompressionOverBudgetError)
