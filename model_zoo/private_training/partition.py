"""Splitting the training texts between federated clients: at random (IID), by label skew (a Dirichlet draw of
each class's share per client), or one client per value of a column (e.g. the source each text came from).

Every function returns one list of example positions per client: disjoint, together covering every example once,
each sorted, and the same for the same seed. ``flwr-datasets`` has such partitioners but loads its data from the
Hugging Face Hub; Loupe's data is local, so it partitions itself (the Dirichlet scheme is the usual one, Hsu et
al. 2019, as in ``flwr_datasets.partitioner.DirichletPartitioner``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_zoo.private_training.config import PrivateTrainingError

MAX_DRAWS = 50  # Dirichlet re-draws until every client has at least ``min_size`` examples


def iid(n: int, clients: int, seed: int) -> list[list[int]]:
    """A seeded shuffle of ``range(n)`` cut into ``clients`` shards whose sizes differ by at most one."""
    if clients > n:
        raise PrivateTrainingError(f"{clients} clients need at least {clients} training texts (there are {n}).")
    order = np.random.default_rng(seed).permutation(n)
    return [sorted(int(i) for i in part) for part in np.array_split(order, clients)]


def dirichlet(labels: Sequence[int], clients: int, alpha: float, seed: int, min_size: int | None = None) \
        -> list[list[int]]:
    """Label skew: for each class, its examples are shared out in proportions drawn from Dirichlet(alpha, ...,
    alpha) over the clients; small ``alpha`` gives each client few classes, large ``alpha`` tends to IID.

    Draws again (same seeded generator, so still reproducible) until every client has ``min_size`` examples
    (default: 10, or fewer for a small dataset).

    Raises:
        PrivateTrainingError: no draw in :data:`MAX_DRAWS` gave every client enough examples.
    """
    y = np.asarray(labels)
    n = len(y)
    need = min_size if min_size is not None else max(1, min(10, n // (2 * clients)))
    if clients * need > n:
        raise PrivateTrainingError(f"{clients} clients with at least {need} texts each need {clients * need} training "
                                   f"texts (there are {n}).")
    rng = np.random.default_rng(seed)
    for _ in range(MAX_DRAWS):
        shards: list[list[int]] = [[] for _ in range(clients)]
        for cls in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == cls))
            shares = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for shard, part in zip(shards, np.split(members, cuts)):
                shard.extend(int(i) for i in part)
        if min(len(s) for s in shards) >= need:
            return [sorted(s) for s in shards]
    raise PrivateTrainingError(f"With alpha = {alpha} no draw gave each of the {clients} clients {need} texts; raise "
                               "alpha or use fewer clients.")


def by_value(values: Sequence[str]) -> tuple[list[str], list[list[int]]]:
    """One client per distinct value (sorted by value): ``(values, positions per client)``.

    Raises:
        PrivateTrainingError: fewer than two distinct values.
    """
    names = sorted({str(v) for v in values})
    if len(names) < 2:
        raise PrivateTrainingError("The partition column needs at least two different values (one per client).")
    index = {name: i for i, name in enumerate(names)}
    shards: list[list[int]] = [[] for _ in names]
    for i, v in enumerate(values):
        shards[index[str(v)]].append(i)
    return names, shards


def label_counts(labels: Sequence[int], shard: Sequence[int], names: Sequence[str]) -> dict[str, int]:
    """How many of ``shard``'s examples have each label (by name)."""
    counts = np.bincount(np.asarray(labels, dtype=int)[list(shard)], minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts)}
