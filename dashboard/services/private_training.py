"""Private training seen from the Fine-tune page: the settings' specs, what the privacy budget means, whether
DP-SGD can train a method correctly, the noise a budget implies, and whether federated runs are offered here.

Private-training names come from :mod:`model_zoo.private_training` only.
"""

from __future__ import annotations

import json
import math
from typing import Any

import streamlit as st

from dashboard.services.models import model_revision
from model_zoo.private_training import (
    EPSILON_EXPLAINED,
    EXPLANATIONS_ARE_NOT_PRIVATE,
    DPConfig,
    FederatedConfig,
    PrivateTrainingError,
    default_delta,
)

MODES = {"none": "None", "dp": "Differentially private (DP-SGD)", "federated": "Federated (simulated clients)"}
SCOPE = "finetune"  # the settings are part of a fine-tuning run: limits are "finetune.<setting>"


def dp_config_class() -> type:
    return DPConfig


def federated_config_class() -> type:
    return FederatedConfig


def epsilon_explained() -> str:
    """Two sentences on what ε means (the page shows them with the DP settings)."""
    return EPSILON_EXPLAINED


def explanations_warning() -> str:
    """Explanations of a private model are computed on whatever text they are given: they are not private."""
    return EXPLANATIONS_ARE_NOT_PRIVATE


def federated_unavailable() -> str | None:
    """Why federated runs cannot start on this server (they need Ray), or None."""
    from model_zoo.engine import ray_unavailable

    return ray_unavailable()


@st.cache_data(max_entries=64, show_spinner="Checking per-example gradients…")
def _dp_refusal(base: str, revision: str, method: str, config: str, labels: tuple[str, ...]) -> str | None:
    import torch

    from model_zoo.finetune import prepare_model
    from model_zoo.private_training.dp import check_per_example_gradients

    prep = prepare_model(base, method, json.loads(config), list(labels), device="cpu")
    enc = prep.tokenizer(["a short text", "another, somewhat longer text to pad", "and a third"], padding=True,
                         return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": torch.tensor([0, 1, 0])}
    try:
        check_per_example_gradients(prep.model, batch)
    except PrivateTrainingError as err:
        return str(err)
    return None


def dp_refusal(base: str, method: str, config: Any, labels: list[str]) -> str | None:
    """Why DP-SGD cannot train ``method`` on ``base`` correctly (Opacus' per-example gradients checked against
    autograd's on three made-up texts), or None when it can. Cached per base revision, method and settings."""
    import dataclasses

    return _dp_refusal(base, model_revision(base), method, json.dumps(dataclasses.asdict(config), sort_keys=True),
                       tuple(labels))


@st.cache_data(max_entries=256, show_spinner=False)
def noise_preview(n: int, batch_size: int, epochs: float, target_epsilon: float, delta: float,
                  accountant: str) -> tuple[float, float, int]:
    """(noise multiplier, δ, steps) a DP run of ``n`` texts would use to spend ``target_epsilon``.

    Raises:
        PrivateTrainingError: the budget cannot be reached.
    """
    from model_zoo.private_training.dp import noise_for_budget

    per_epoch = math.ceil(n / batch_size)
    steps = max(1, math.ceil(epochs * per_epoch))
    delta = delta or default_delta(n)
    return noise_for_budget(target_epsilon, delta, 1 / per_epoch, steps, accountant), delta, steps
