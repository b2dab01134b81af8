"""Flags of ``python -m model_zoo finetune`` for private training, made from the specs:
``--dp [--target-epsilon 3 --delta 1e-5 --noise-multiplier 1.1 --max-grad-norm 1.0 --accountant prv
--no-poisson-sampling]`` and ``--federated [--clients 5 --rounds 10 --clients-per-round 3 --local-epochs 1
--partition dirichlet --alpha 0.3 | --partition column --partition-column source]``."""

from __future__ import annotations

import argparse
from typing import Any

from model_zoo import spec
from model_zoo.private_training.config import DPConfig, FederatedConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``differential privacy`` and ``federated`` flag groups."""
    dp = parser.add_argument_group("differential privacy", "DP-SGD with Opacus (see the README's Private training)")
    dp.add_argument("--dp", dest="dp_enabled", action="store_true", help="train with differential privacy")
    spec.add_arguments(dp, DPConfig, skip=("enabled",), default_none=True)
    fed = parser.add_argument_group("federated", "federated averaging with Flower, clients simulated on this machine "
                                                 "(with --dp: DP-SGD on every client)")
    fed.add_argument("--federated", dest="federated_enabled", action="store_true", help="train federated")
    spec.add_arguments(fed, FederatedConfig, skip=("enabled",), default_none=True)


def from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``{"dp": {...}, "federated": {...}}`` from the flags (unset ones: the defaults)."""
    return {"dp": {**spec.from_args(args, DPConfig, skip=("enabled",)), "enabled": bool(args.dp_enabled)},
            "federated": {**spec.from_args(args, FederatedConfig, skip=("enabled",)),
                          "enabled": bool(args.federated_enabled)}}
