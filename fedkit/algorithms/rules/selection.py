"""Longest-waiting client selection (FedLaAvg's rule).

Among the clients online in round r, pick the K whose latest participation round R_i is the
oldest; clients never seen (R_i = -1) therefore go first. Staleness is then bounded: if every
client is available at least once in every E consecutive rounds, r - R_i <= ceil(N/K) E - 1
after each round's selection, and every client is picked within the first ceil(N/K) E rounds
(Lemma 1 of Yan et al.; pigeonhole).

The sources leave tie-breaking among equal R_i open. fedkit breaks ties by a seeded random
permutation drawn from ``numpy_rng(seed, "fedlaavg-ties", server_round)`` over the sorted
available ids, so the choice depends only on (seed, round, online set, R) -- never on the
order in which the grid lists the online clients.

References:
    Yan et al., "Federated Optimization under Intermittent Client Availability",
    arXiv 2002.07399, Alg. 3 line 8 and Lemma 1; code ``mikudehuane/FedLaAvg``
    ``Server.pick_clients(pick_outdated=True)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from fedkit.algorithms.rules._validate import check_client_ids, check_count, check_round
from fedkit.seeding import numpy_rng

__all__ = ["longest_waiting"]


def longest_waiting(
    last_round: np.ndarray,
    available: Iterable[int],
    k: int,
    *,
    seed: int,
    server_round: int,
) -> list[int]:
    """The ``k`` available clients that waited longest, ties broken by a seeded permutation.

    Args:
        last_round: ``(N,)`` integers, each client's latest participation round (-1 = never).
        available: Distinct ids (0..N-1) of the clients online this round, any order.
        k: K >= 1 clients wanted; all available clients are returned when fewer are online.
        seed: The run's root seed.
        server_round: The current round (keys the tie-breaking stream).

    Returns:
        The chosen ids, sorted ascending.

    Raises:
        ValueError: If ``last_round`` is not a 1-D integer array, ``k`` < 1, or ``available``
            holds duplicates or ids outside 0..N-1.

    Example:
        >>> longest_waiting(np.array([3, -1, 0, 2]), [0, 2, 3], 2, seed=0, server_round=4)
        [2, 3]
    """
    rounds = np.asarray(last_round)
    if rounds.ndim != 1 or rounds.size == 0 or rounds.dtype.kind not in "iu":
        raise ValueError(
            f"last_round has shape {rounds.shape} and dtype {rounds.dtype}, expected a "
            "non-empty 1-D integer array (one round per client, -1 = never seen)"
        )
    k = check_count(k, "k")
    server_round = check_round(server_round)
    pool = np.sort(check_client_ids(available, rounds.size))
    if pool.size <= k:
        return pool.tolist()
    tie_rank = numpy_rng(seed, "fedlaavg-ties", server_round).permutation(pool.size)
    order = np.lexsort((tie_rank, rounds[pool]))  # primary key: last round, then tie rank
    return sorted(int(c) for c in pool[order[:k]])
