"""FedLaAvg server arithmetic: average every client's latest gradient sum.

Each round r the chosen clients run C local SGD steps from x at learning rate gamma_r and
form G_i = (x - x_i^(C)) / gamma_r, the sum of their C stochastic gradients
(:func:`gradient_sum`). The server keeps

    g_bar = (1/N) sum_{i=1}^N G_i^latest        (never-seen clients count as 0)

and steps x <- x - gamma_r g_bar (:func:`apply_update`; no separate server learning rate).
Unavailable clients keep contributing their stale G_i with full weight 1/N.

Two ways to maintain g_bar, with identical results:

* client-delta mode (the paper's, O(d) server memory): each client keeps G_i^old and uploads
  dG_i = G_i^new - G_i^old; :func:`fold_deltas` adds sum_i dG_i / N.
* server-table mode (O(N d) server memory, stateless clients): clients upload G_i^new; the
  server keeps a :class:`LatestUpdateTable` and :func:`fold_latest` forms dG_i itself.

Folding and stepping are separate so that warm-up rounds (``--num_non_update_rounds`` in the
authors' code) can fold without stepping. ``versions[i]`` counts the updates folded for
client i, so the shell can detect a client whose G_i^old no longer matches the server's view
(for instance one that restarted and lost it).

References:
    Yan et al., "Federated Optimization under Intermittent Client Availability",
    arXiv 2002.07399 (INFORMS JoC 2023), Alg. 3 and Eq. (2); code ``mikudehuane/FedLaAvg``
    (algorithm ``lastavg``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedkit.algorithms.rules._validate import (
    check_client_ids,
    check_count,
    check_fresh,
    check_lr,
    check_matrix,
    check_model,
    check_round,
    check_vector,
    frozen,
    load_array,
    load_bool,
    load_int,
)
from fedkit.algorithms.rules.latest_table import LatestUpdateTable, _replace_rows, table_init

__all__ = [
    "FedLaAvgState",
    "apply_update",
    "fedlaavg_init",
    "fold_delta_sum",
    "fold_deltas",
    "fold_latest",
    "gradient_sum",
]

_TABLE = "table."


@dataclass(frozen=True, eq=False)
class FedLaAvgState:
    """FedLaAvg server state.

    Attributes:
        g_bar: ``(d,)`` float64, (1/N) sum_i G_i^latest.
        last_round: ``(N,)`` int64, each client's latest folded round (-1 = never seen); the
            input of :func:`fedkit.algorithms.rules.longest_waiting`.
        versions: ``(N,)`` int64, number of updates folded per client.
        table: The latest G_i per client (server-table mode) or None (client-delta mode).
        num_clients: N.
    """

    g_bar: np.ndarray
    last_round: np.ndarray
    versions: np.ndarray
    table: LatestUpdateTable | None
    num_clients: int

    def state_dict(self) -> dict[str, Any]:
        """Arrays and scalars for a checkpoint (table entries prefixed ``"table."``)."""
        out: dict[str, Any] = {
            "g_bar": np.array(self.g_bar),
            "last_round": np.array(self.last_round),
            "versions": np.array(self.versions),
            "num_clients": self.num_clients,
            "server_table": self.table is not None,
        }
        if self.table is not None:
            out.update({_TABLE + k: v for k, v in self.table.state_dict().items()})
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> FedLaAvgState:
        """Rebuild the state from :meth:`state_dict` output.

        Raises:
            ValueError: If a key is missing or shapes disagree with ``num_clients``.
        """
        num_clients = load_int(state, "num_clients")
        g_bar = load_array(state, "g_bar", np.float64, (-1,))
        table = None
        if load_bool(state, "server_table"):
            table = LatestUpdateTable.from_state_dict(
                {k[len(_TABLE):]: v for k, v in state.items() if k.startswith(_TABLE)}
            )
            if (table.num_clients, table.dim) != (num_clients, g_bar.size):
                raise ValueError(
                    f"state dict table is ({table.num_clients}, {table.dim}), expected "
                    f"({num_clients}, {g_bar.size}) from num_clients and g_bar"
                )
        return cls(
            g_bar=g_bar,
            last_round=load_array(state, "last_round", np.int64, (num_clients,)),
            versions=load_array(state, "versions", np.int64, (num_clients,)),
            table=table,
            num_clients=num_clients,
        )


def fedlaavg_init(num_clients: int, dim: int, *, server_table: bool) -> FedLaAvgState:
    """The initial state: g_bar = 0, nobody seen.

    Args:
        num_clients: N >= 1.
        dim: d >= 1, the flattened model size.
        server_table: True keeps every client's latest G_i on the server (use
            :func:`fold_latest`); False expects client deltas (use :func:`fold_deltas`).

    Raises:
        ValueError: If ``num_clients`` or ``dim`` is not an integer >= 1.
    """
    num_clients = check_count(num_clients, "num_clients")
    dim = check_count(dim, "dim")
    return FedLaAvgState(
        g_bar=frozen(np.zeros(dim), np.float64),
        last_round=frozen(np.full(num_clients, -1), np.int64),
        versions=frozen(np.zeros(num_clients), np.int64),
        table=table_init(num_clients, dim) if server_table else None,
        num_clients=num_clients,
    )


def _checked(state: FedLaAvgState, client_ids: Iterable[int], rows: Any, name: str,
             server_round: int) -> tuple[np.ndarray, np.ndarray, int]:
    ids = check_client_ids(client_ids, state.num_clients)
    values = check_matrix(rows, ids.size, state.g_bar.size, name)
    server_round = check_round(server_round)
    check_fresh(state.last_round, ids, server_round)
    return ids, values, server_round


def _advance(state: FedLaAvgState, ids: np.ndarray, change: np.ndarray, server_round: int,
             table: LatestUpdateTable | None) -> FedLaAvgState:
    last_round = np.array(state.last_round)
    last_round[ids] = server_round
    versions = np.array(state.versions)
    versions[ids] += 1
    return FedLaAvgState(
        g_bar=frozen(state.g_bar + change / state.num_clients, np.float64),
        last_round=frozen(last_round, np.int64),
        versions=frozen(versions, np.int64),
        table=table,
        num_clients=state.num_clients,
    )


def fold_deltas(
    state: FedLaAvgState, client_ids: Iterable[int], deltas: Any, server_round: int
) -> FedLaAvgState:
    """Client-delta mode: g_bar <- g_bar + (1/N) sum_i dG_i, dG_i = G_i^new - G_i^old.

    Args:
        state: A client-delta-mode state (``server_table=False``).
        client_ids: Distinct ids of the clients whose deltas arrived (may be empty).
        deltas: ``(len(client_ids), d)`` finite array, row j from ``client_ids[j]``.
        server_round: The current round; later than each client's last folded round.

    Returns:
        The new state (``last_round[i] = server_round``, ``versions[i] += 1``).

    Raises:
        ValueError: On a server-table state, bad ids or shapes, non-finite deltas, or a round
            not later than a client's last round.

    References:
        Yan et al., arXiv 2002.07399, Alg. 3 (server: g_bar <- g_bar + sum dG_i / N).
    """
    if state.table is not None:
        raise ValueError("fold_deltas got a server-table state, expected fold_latest for it")
    ids, deltas, server_round = _checked(state, client_ids, deltas, "deltas", server_round)
    return _advance(state, ids, deltas.sum(axis=0), server_round, None)


def fold_delta_sum(
    state: FedLaAvgState, client_ids: Iterable[int], delta_sum: Any, server_round: int
) -> FedLaAvgState:
    """Client-delta mode from the sum alone: g_bar <- g_bar + (1/N) sum_i dG_i.

    What secure aggregation gives the server: ``delta_sum = sum_i dG_i`` over ``client_ids``
    without the individual rows. Equals :func:`fold_deltas` on rows with that sum.

    Raises:
        ValueError: As :func:`fold_deltas`; also a ``delta_sum`` of the wrong shape.
    """
    if state.table is not None:
        raise ValueError("fold_delta_sum got a server-table state, which needs each G_i")
    ids = check_client_ids(client_ids, state.num_clients)
    total = check_matrix(np.asarray(delta_sum, dtype=np.float64).reshape(1, -1), 1,
                         state.g_bar.size, "delta_sum")[0]
    server_round = check_round(server_round)
    check_fresh(state.last_round, ids, server_round)
    return _advance(state, ids, total, server_round, None)


def fold_latest(
    state: FedLaAvgState, client_ids: Iterable[int], g_new: Any, server_round: int
) -> FedLaAvgState:
    """Server-table mode: store G_i^new and fold dG_i = G_i^new - (stored G_i) into g_bar.

    Args:
        state: A server-table-mode state (``server_table=True``).
        client_ids: Distinct ids of the clients that reported (may be empty).
        g_new: ``(len(client_ids), d)`` finite array of new gradient sums.
        server_round: The current round; later than each client's last folded round.

    Returns:
        The new state; ``g_bar`` is bit-for-bit what client-delta mode gives.

    Raises:
        ValueError: On a client-delta state, bad ids or shapes, non-finite values, or a round
            not later than a client's last round.
    """
    if state.table is None:
        raise ValueError("fold_latest got a client-delta state, expected fold_deltas for it")
    ids, g_new, server_round = _checked(state, client_ids, g_new, "g_new", server_round)
    table, change = _replace_rows(state.table, ids, g_new, server_round)
    return _advance(state, ids, change, server_round, table)


def apply_update(x: Any, state: FedLaAvgState, lr: float) -> np.ndarray:
    """x - lr * g_bar (a new array).

    Raises:
        ValueError: If ``x`` is not a finite ``(d,)`` vector or ``lr`` is not > 0.

    Example:
        >>> s = fold_deltas(fedlaavg_init(2, 1, server_table=False), [0], [[4.0]], 1)
        >>> apply_update(np.array([1.0]), s, 0.5)
        array([0.])
    """
    x = check_vector(x, state.g_bar.size, "x")
    return x - check_lr(lr) * state.g_bar


def gradient_sum(x_global: Any, x_local: Any, lr: float) -> np.ndarray:
    """G = (x_global - x_local) / lr, the sum of the local stochastic gradients.

    Raises:
        ValueError: If the vectors differ in shape, are not 1-D and finite, or ``lr`` <= 0.

    Example:
        >>> gradient_sum(np.array([1.0]), np.array([0.5]), 0.25)
        array([2.])
    """
    x_global = check_model(x_global, "x_global")
    x_local = check_vector(x_local, x_global.size, "x_local")
    return (x_global - x_local) / check_lr(lr)
