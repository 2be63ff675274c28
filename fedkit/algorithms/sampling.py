"""Seeded client selection.

Flower's own strategies sample with the unseeded global ``random`` module (flwrlabs/flower#1845),
so two runs with the same seed pick different clients. fedkit samples from the sorted *stable
client ids* (never Flower node ids, which change between runs) with a stream derived from
``(seed, "sample-clients", round)`` (federated evaluation: ``"sample-evaluate"``): the same
seed and the same online set give the same clients on every runtime.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fedkit.seeding import numpy_rng

__all__ = ["sample_uniform"]


def sample_uniform(
    available: Iterable[int], num_clients: int, *, seed: int, server_round: int,
    purpose: str = "sample-clients",
) -> list[int]:
    """Pick ``num_clients`` client ids uniformly without replacement among ``available``.

    If fewer than ``num_clients`` are available, all of them are returned (as the FedAvg
    baseline of Yan et al. does under intermittent availability).

    Args:
        available: Stable ids of the clients online this round (any order, no duplicates).
        num_clients: K, the number of clients wanted (>= 1).
        seed: The run's root seed.
        server_round: The current round (1-based); each round has its own stream.
        purpose: Names the stream: ``"sample-clients"`` (training) or ``"sample-evaluate"``
            (federated evaluation), so the two draws are independent.

    Returns:
        The chosen client ids, sorted ascending.

    Raises:
        ValueError: If ``num_clients`` < 1 or ``available`` holds duplicates.

    Example:
        >>> picked = sample_uniform(range(10), 3, seed=0, server_round=1)
        >>> picked == sample_uniform(range(9, -1, -1), 3, seed=0, server_round=1)
        True
    """
    if num_clients < 1:
        raise ValueError(f"num_clients = {num_clients}, expected >= 1")
    pool = np.array(sorted(available), dtype=np.int64)
    if np.unique(pool).size != pool.size:
        raise ValueError(f"available client ids hold duplicates: {pool.tolist()}")
    if pool.size <= num_clients:
        return pool.tolist()
    rng = numpy_rng(seed, purpose, server_round)
    chosen = rng.choice(pool, size=num_clients, replace=False)
    return sorted(int(c) for c in chosen)
