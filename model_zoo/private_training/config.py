"""The settings of private training, declared once with ``spec.setting``: differential privacy
(:class:`DPConfig`) and federated training (:class:`FederatedConfig`). Both are fields of a fine-tuning run
(``FinetuneConfig.dp`` / ``.federated``), so the page's widgets, the command line's flags, the job's JSON and
validation read the same spec. Federated with ``dp.enabled`` is federated training with DP-SGD on every client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_zoo.errors import DatasetError, LoupeError
from model_zoo.spec import setting

ACCOUNTANTS = ("rdp", "prv")
PARTITIONS = ("iid", "dirichlet", "column")


class PrivateTrainingError(LoupeError):
    """Private training cannot run with these settings (method, data or budget)."""


@dataclass
class DPConfig:
    """DP-SGD (Abadi et al., 2016) through Opacus: each example's gradient is clipped to ``max_grad_norm``,
    Gaussian noise of standard deviation ``noise_multiplier * max_grad_norm`` is added to their sum, and an
    accountant adds up the privacy spent over the steps."""

    enabled: bool = setting(False, "Train with differential privacy (DP-SGD, Opacus)")
    target_epsilon: float = setting(3.0, "Privacy budget ε for the whole run; the noise is set to spend it exactly "
                                         "(0: give the noise multiplier instead)", min=0.0, max=100.0)
    delta: float = setting(0.0, "δ: the chance the guarantee fails (0: 1/N rounded down to a power of ten, N the "
                                "training texts)", min=0.0, max=0.01)
    noise_multiplier: float = setting(1.0, "Noise standard deviation over the clipping norm; used only when the "
                                           "target ε is 0", min=0.0, max=100.0)
    max_grad_norm: float = setting(1.0, "Each text's gradient is clipped to this L2 norm", min=1e-4, max=1000.0)
    accountant: str = setting("rdp", "Privacy accountant: rdp (Rényi DP) or prv (privacy random variables, "
                                     "usually a little tighter)", choices=ACCOUNTANTS)
    poisson_sampling: bool = setting(True, "Poisson sampling: each text joins each batch with probability "
                                           "batch size / N, as the accountant assumes (off: shuffled fixed-size "
                                           "batches, and ε is only an estimate)")


@dataclass
class FederatedConfig:
    """Federated averaging (McMahan et al., 2017) with Flower: every round the server sends the trainable
    weights to a sample of clients, each trains on its own shard, and the server averages what comes back,
    weighted by shard size. Only the trainable weights travel (LoRA matrices, the head...)."""

    enabled: bool = setting(False, "Train federated: simulated clients, each with its own shard (Flower)")
    clients: int = setting(5, "Number of clients (partition 'column': one per value, this is ignored)", min=2,
                           max=100, hosted_max=10)
    rounds: int = setting(10, "Rounds of federated averaging", min=1, max=500, hosted_max=30)
    clients_per_round: int = setting(0, "Clients trained each round (0: all)", min=0, max=100)
    local_epochs: float = setting(1.0, "Passes over its own shard each client makes per round", min=0.1, max=20.0)
    partition: str = setting("iid", "How the training texts are split between clients: iid (at random), dirichlet "
                                     "(label skew) or column (one client per value of a CSV column)",
                             choices=PARTITIONS)
    alpha: float = setting(0.3, "Dirichlet concentration of the label skew (smaller: each client sees fewer "
                                "classes)", min=0.01, max=1000.0)
    partition_column: str = setting("", "CSV column whose values are the clients (partition 'column'), e.g. source")


def default_delta(n: int) -> float:
    """δ by default: 1/N rounded down to a power of ten (N = 2,000 -> 1e-4; N = 1,000 -> 1e-3)."""
    k = 0
    while 10 ** k < n:
        k += 1
    return float(10.0 ** -k)


def check_private(cfg: Any) -> None:
    """Refuse private-training settings that cannot run (``cfg`` is a ``FinetuneConfig``).

    Raises:
        PrivateTrainingError / DatasetError: with a message saying what to change.
    """
    from model_zoo import spec

    dp, fed = (spec.build(kind, value, scope="finetune") if isinstance(value, dict) else value
               for kind, value in ((DPConfig, cfg.dp), (FederatedConfig, cfg.federated)))
    if not (dp.enabled or fed.enabled):
        return
    if dp.enabled and not dp.target_epsilon and not dp.noise_multiplier:
        raise PrivateTrainingError("Differential privacy needs a target ε or a noise multiplier above 0 (with "
                                   "neither there is no noise, and no privacy).")
    if cfg.train.get("early_stopping_patience"):
        raise PrivateTrainingError("Early stopping is not offered with private training: the saved model is the last "
                                   "step (or round).")
    if not fed.enabled:
        return
    if fed.clients_per_round > fed.clients and fed.partition != "column":
        raise PrivateTrainingError(f"{fed.clients_per_round} clients per round is more than the {fed.clients} "
                                   "clients.")
    if fed.partition == "column":
        _check_column(cfg.data, fed.partition_column)


def _check_column(data: Any, column: str) -> None:
    if not column:
        raise PrivateTrainingError("Partition 'column' needs the CSV column whose values are the clients.")
    if data.source == "rt":
        raise DatasetError("Partition 'column' works on a CSV file; the bundled Rotten Tomatoes data has no column "
                           "to split it by (use iid or dirichlet).")
    if data.redaction:
        raise DatasetError("Partition 'column' reads a column that the redacted copy of the file does not keep "
                           "(only the text and label columns); use iid or dirichlet with redaction.")
    if column in (data.text_column, data.label_column):
        raise DatasetError(f"The clients cannot be the {column!r} column itself; pick a column such as the source.")
    path = Path(data.source).expanduser()
    if path.is_file():
        from model_zoo.data import read_csv_frame

        if column not in read_csv_frame(path).columns:
            raise DatasetError(f"The file has no column {column!r} to split the clients by.")
