"""Private training: differentially private fine-tuning (DP-SGD with Opacus) and federated fine-tuning (FedAvg with
Flower), as options of the ``finetune`` job (``FinetuneConfig.dp`` / ``.federated``; ``--dp`` / ``--federated``).

Modules: :mod:`~model_zoo.private_training.config` (the settings and their checks), :mod:`~.dp` (DP-SGD: the
per-example gradient check, the position-embedding fix, accountants), :mod:`~.run` (the private loop inside the
job), :mod:`~.partition` (splitting data between clients), :mod:`~.federated` (Flower's server and client apps),
:mod:`~.common` (validation, checkpoints, what clients exchange), :mod:`~.cli` (the flags). Opacus and Flower are
imported only when a private run starts.
"""

from model_zoo.private_training.config import (
    ACCOUNTANTS,
    PARTITIONS,
    DPConfig,
    FederatedConfig,
    PrivateTrainingError,
    check_private,
    default_delta,
)

EPSILON_EXPLAINED = (
    "ε (epsilon) bounds how much any one training text can change the trained model: whatever anyone sees of the "
    "model, their odds of telling whether a given text was in the training data grow by a factor of at most e^ε "
    "(except with a tiny probability δ). Smaller is more private: ε = 1 is a strong guarantee, ε = 8 a weak one that "
    "still limits what the model can memorise of any single text."
)
EXPLANATIONS_ARE_NOT_PRIVATE = (
    "Only training is private. Explanations of this model (and its predictions) are computed on whatever text you "
    "give them; that text is not protected, and what you show of it is as visible as the text itself."
)

__all__ = ["ACCOUNTANTS", "EPSILON_EXPLAINED", "EXPLANATIONS_ARE_NOT_PRIVATE", "PARTITIONS", "DPConfig",
           "FederatedConfig", "PrivateTrainingError", "check_private", "default_delta"]
