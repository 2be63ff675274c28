"""FedVARP: SAGA-style server variance reduction for partial participation.

The server keeps y_i, the latest update of every client (zeros until it first participates),
in a :class:`LatestUpdateTable`. With Delta_i = x - x_local for the participants S of the round:

    v = (1/N) sum_{j=1}^N y_j + (1/|S|) sum_{i in S} (Delta_i - y_i),
    x <- x - eta_g v,                then y_i <- Delta_i for i in S.

The first term is the table mean *before* this round's replacement. A round without
participants leaves x unchanged (v is undefined for |S| = 0; the ``IBM/fedau``
implementation makes a zero update then).

References:
    Jhunjhunwala, Sharma, Nagarkatti, Joshi, "FedVARP: Tackling the Variance Due to Partial
    Client Participation in Federated Learning", UAI 2022, arXiv 2207.14130, Alg. 1
    (the update v^(t)); implementation ``IBM/fedau`` (``-weighting fedvarp``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedkit.algorithms.rules._validate import (
    check_client_ids,
    check_fresh,
    check_lr,
    check_matrix,
    check_round,
    check_vector,
    load_int,
)
from fedkit.algorithms.rules.latest_table import LatestUpdateTable, _replace_rows, table_init

__all__ = ["FedVARPState", "fedvarp_init", "fedvarp_step"]

_TABLE = "table."


@dataclass(frozen=True, eq=False)
class FedVARPState:
    """FedVARP server state.

    Attributes:
        table: y_i, the latest update Delta_i of every client (zeros if never seen).
        server_round: The last round stepped (0 before the first); the table's
            ``last_round`` records when each y_i was set.
    """

    table: LatestUpdateTable
    server_round: int

    def state_dict(self) -> dict[str, Any]:
        """Arrays and scalars for a checkpoint (table entries prefixed ``"table."``)."""
        out: dict[str, Any] = {"server_round": self.server_round}
        out.update({_TABLE + k: v for k, v in self.table.state_dict().items()})
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> FedVARPState:
        """Rebuild the state from :meth:`state_dict` output.

        Raises:
            ValueError: If a key is missing or malformed.
        """
        table = LatestUpdateTable.from_state_dict(
            {k[len(_TABLE):]: v for k, v in state.items() if k.startswith(_TABLE)}
        )
        return cls(table=table, server_round=check_round(load_int(state, "server_round")))


def fedvarp_init(num_clients: int, dim: int) -> FedVARPState:
    """All y_i = 0.

    Raises:
        ValueError: If ``num_clients`` or ``dim`` is not an integer >= 1.
    """
    return FedVARPState(table=table_init(num_clients, dim), server_round=0)


def fedvarp_step(
    x: Any,
    state: FedVARPState,
    client_ids: Iterable[int],
    deltas: Any,
    server_lr: float,
) -> tuple[np.ndarray, FedVARPState]:
    """One FedVARP server update; the round number advances by one.

    Args:
        x: ``(d,)`` current global model.
        state: The current state.
        client_ids: Distinct ids of the participants S (may be empty: x is unchanged).
        deltas: ``(|S|, d)`` finite array, Delta_i = x - x_local.
        server_lr: eta_g > 0.

    Returns:
        ``(x_new, new_state)`` with y_i = Delta_i for i in S.

    Raises:
        ValueError: On bad ids or shapes, non-finite values, or ``server_lr`` <= 0.

    Example:
        >>> s = fedvarp_init(2, 1)
        >>> fedvarp_step(np.array([1.0]), s, [0], [[0.5]], 1.0)[0]
        array([0.5])
    """
    table = state.table
    x = check_vector(x, table.dim, "x")
    ids = check_client_ids(client_ids, table.num_clients)
    deltas = check_matrix(deltas, ids.size, table.dim, "deltas")
    server_lr = check_lr(server_lr, "server_lr")
    server_round = state.server_round + 1
    check_fresh(table.last_round, ids, server_round)
    if ids.size == 0:
        return x, FedVARPState(table=table, server_round=server_round)
    new_table, change = _replace_rows(table, ids, deltas, server_round)
    v = table.mean + change / ids.size
    return x - server_lr * v, FedVARPState(table=new_table, server_round=server_round)
