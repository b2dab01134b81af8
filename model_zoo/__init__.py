"""Loupe's model zoo: loading models safely, datasets, the default model, training."""

from model_zoo.errors import (
    CustomCodeError,
    DatasetError,
    EmptyTextError,
    HubUnavailableError,
    LabelMismatchError,
    LoupeError,
    MissingTokenizerError,
    ModelLoadError,
    UnsafeCheckpointError,
    UntrainedHeadError,
)
from model_zoo.handle import ModelHandle
from model_zoo.loading import BASE_ENCODER_ID, load, resolve_device
from model_zoo.paths import loupe_home

# Modules that register how their model-card entries load (``loading.BUILDERS`` / ``FINISHERS``).
from model_zoo import compression, methods, prompting  # noqa: E402,F401  isort: skip

DEFAULT_MODEL_ID = "rt-sentiment-minilm"

__all__ = [
    "BASE_ENCODER_ID",
    "DEFAULT_MODEL_ID",
    "CustomCodeError",
    "DatasetError",
    "EmptyTextError",
    "HubUnavailableError",
    "LabelMismatchError",
    "LoupeError",
    "MissingTokenizerError",
    "ModelHandle",
    "ModelLoadError",
    "UnsafeCheckpointError",
    "UntrainedHeadError",
    "load",
    "loupe_home",
    "resolve_device",
]
