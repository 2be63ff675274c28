"""FedAU: FedAvg with adaptive weights that estimate 1/p_n online.

Client n's update Delta_n = x_local - x is weighted by omega_n, the mean of its observed
participation intervals, an online estimate of 1/p_n for participation probability p_n:

    x <- x + gamma_g (1/N) sum_{n in S_t} omega_n Delta_n.

Interval rule (FedAU's Alg. 2; ``IBM/fedau`` ``main.py``, ``weighting_method == 'adaptive'``):
each client has a counter S_n, initially 0. At the end of every round t, S_n <- S_n + 1 for
every client; then if client n participated in round t, or S_n = K (the ``cutoff``), the
interval S_n is recorded and S_n <- 0. So a client participating every 3 rounds records
intervals of 3 (its first interval counts from round 1); one absent for a long time records
an interval of K every K rounds and restarts counting; no interval exceeds K; K = 1 gives
omega = 1 always (plain FedAvg over all N). omega_n = (sum of recorded intervals) / (number
recorded), and omega_n = 1 until the first interval is recorded. The state holds integer
sums and counts, so omega_n equals the mean of the interval list exactly.

Weights lag one round: the update of round t uses omega_n computed from participation in
rounds < t (Alg. 1 computes omega_t^n from I_0^n..I_{t-1}^n, so that the weight does not
depend on the current participation; in the code the interval is appended after use,
"interval used in the next round"). Per round, call :func:`fedau_step` first, then
:func:`fedau_observe` with the clients that participated -- also in rounds where none did.

References:
    Wang & Ji, "A Lightweight Method for Tackling Unknown Participation Statistics in
    Federated Averaging", ICLR 2024, arXiv 2306.03401, Alg. 1 (aggregation
    x_{t+1} = x_t + gamma (1/N) sum_n omega_t^n I_t^n Delta_t^n) and Alg. 2 (online weights);
    code ``IBM/fedau``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedkit.algorithms.rules._validate import (
    check_client_ids,
    check_count,
    check_lr,
    check_matrix,
    check_model,
    check_round,
    frozen,
    load_array,
    load_int,
)

__all__ = ["FedAUState", "fedau_init", "fedau_observe", "fedau_step", "fedau_weights"]


@dataclass(frozen=True, eq=False)
class FedAUState:
    """FedAU's O(N) per-client counters.

    Attributes:
        counters: ``(N,)`` int64, S_n: rounds since client n's last recorded interval.
        interval_sums: ``(N,)`` int64, sum of client n's recorded intervals.
        num_intervals: ``(N,)`` int64, how many intervals client n recorded.
        cutoff: K >= 1, the longest interval recorded.
        server_round: The last observed round (0 before the first).
    """

    counters: np.ndarray
    interval_sums: np.ndarray
    num_intervals: np.ndarray
    cutoff: int
    server_round: int

    @property
    def num_clients(self) -> int:
        """N."""
        return int(self.counters.size)

    def state_dict(self) -> dict[str, Any]:
        """Arrays and scalars for a checkpoint."""
        return {
            "counters": np.array(self.counters),
            "interval_sums": np.array(self.interval_sums),
            "num_intervals": np.array(self.num_intervals),
            "cutoff": self.cutoff,
            "server_round": self.server_round,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> FedAUState:
        """Rebuild the state from :meth:`state_dict` output.

        Raises:
            ValueError: If a key is missing or shapes disagree.
        """
        counters = load_array(state, "counters", np.int64, (-1,))
        n = counters.size
        return cls(
            counters=counters,
            interval_sums=load_array(state, "interval_sums", np.int64, (n,)),
            num_intervals=load_array(state, "num_intervals", np.int64, (n,)),
            cutoff=check_count(load_int(state, "cutoff"), "cutoff"),
            server_round=check_round(load_int(state, "server_round")),
        )


def fedau_init(num_clients: int, *, cutoff: int) -> FedAUState:
    """No interval recorded; the first :func:`fedau_observe` must be for round 1.

    Args:
        num_clients: N >= 1.
        cutoff: K >= 1, the longest interval recorded (FedAU's K).

    Raises:
        ValueError: If ``num_clients`` or ``cutoff`` is not an integer >= 1.
    """
    num_clients = check_count(num_clients, "num_clients")
    zeros = frozen(np.zeros(num_clients), np.int64)
    return FedAUState(counters=zeros, interval_sums=zeros, num_intervals=zeros,
                      cutoff=check_count(cutoff, "cutoff"), server_round=0)


def fedau_weights(state: FedAUState) -> np.ndarray:
    """omega_n: the mean recorded interval of each client, 1.0 if none yet (``(N,)`` float64).

    Example:
        >>> fedau_weights(fedau_init(2, cutoff=5))
        array([1., 1.])
    """
    count = state.num_intervals
    return np.where(count > 0, state.interval_sums / np.maximum(count, 1), 1.0)


def fedau_observe(
    state: FedAUState, participated_ids: Iterable[int], server_round: int
) -> FedAUState:
    """Advance every client's counter by one round and record the intervals that end.

    Args:
        state: The current state.
        participated_ids: Distinct ids of the clients whose updates were aggregated in
            ``server_round`` (may be empty).
        server_round: Must be ``state.server_round + 1`` (call once per round, in order).

    Returns:
        The new state.

    Raises:
        ValueError: On bad ids, or a round that skips or repeats one.
    """
    server_round = check_round(server_round)
    if server_round != state.server_round + 1:
        raise ValueError(
            f"server_round = {server_round}, expected {state.server_round + 1}: fedau_observe "
            "must be called once per round, in order, also in rounds without participants"
        )
    ids = check_client_ids(participated_ids, state.num_clients)
    counters = state.counters + 1
    ends = counters >= state.cutoff
    ends[ids] = True
    sums = state.interval_sums + np.where(ends, counters, 0)
    return FedAUState(
        counters=frozen(np.where(ends, 0, counters), np.int64),
        interval_sums=frozen(sums, np.int64),
        num_intervals=frozen(state.num_intervals + ends, np.int64),
        cutoff=state.cutoff,
        server_round=server_round,
    )


def fedau_step(
    x: Any, state: FedAUState, client_ids: Iterable[int], deltas: Any, server_lr: float
) -> tuple[np.ndarray, FedAUState]:
    """x <- x + server_lr (1/N) sum_n omega_n Delta_n, with the weights of ``state``.

    Call before :func:`fedau_observe` of the same round (weights from earlier rounds only).

    Args:
        x: ``(d,)`` current global model.
        state: The state after observing every earlier round.
        client_ids: Distinct ids of the participating clients (may be empty).
        deltas: ``(len(client_ids), d)`` finite array, Delta_n = x_local - x.
        server_lr: gamma_g > 0.

    Returns:
        ``(x_new, state)``; the state is returned unchanged.

    Raises:
        ValueError: On bad ids or shapes, non-finite values, or ``server_lr`` <= 0.
    """
    x = check_model(x, "x")
    ids = check_client_ids(client_ids, state.num_clients)
    deltas = check_matrix(deltas, ids.size, x.size, "deltas")
    server_lr = check_lr(server_lr, "server_lr")
    weighted = (fedau_weights(state)[ids, None] * deltas).sum(axis=0)
    return x + server_lr * weighted / state.num_clients, state
