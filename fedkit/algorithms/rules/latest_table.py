"""The latest-update table: every client's most recent update and their running mean.

FedLaAvg (server-table mode), MIFA and FedVARP all keep, per client i, the latest vector it
reported (a gradient sum G_i or a model update y_i; zeros until it first reports) and use the
mean over *all* N clients, stale rows included:

    mean = (1/N) sum_{i=1}^N values_i.

The mean is maintained incrementally (for the k rows replaced in one call,
``mean += sum_j (new_j - old_j) / N``), so a round costs O(k d), not O(N d).

Immutability without copying N x d floats per round: the rows are stored as a tuple of N
read-only ``(d,)`` arrays (rows never reported share one zero row). An update builds a new
tuple that shares every untouched row with the old table, so the old table stays valid
(functional update) and a round copies only the k new rows. ``values`` assembles the dense
``(N, d)`` matrix on demand (tests, checkpoints).

References:
    Yan et al., "Federated Optimization under Intermittent Client Availability",
    arXiv 2002.07399, Alg. 3 (the server's running average of latest gradient sums).
    Gu et al., "Fast Federated Learning in the Presence of Arbitrary Device Unavailability",
    NeurIPS 2021, Alg. 1 (the update array of MIFA).
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
    check_matrix,
    check_round,
    frozen,
    load_array,
)

__all__ = ["LatestUpdateTable", "table_init", "table_update"]


@dataclass(frozen=True, eq=False)
class LatestUpdateTable:
    """Latest update per client and their mean over all clients.

    Build one with :func:`table_init`; change it only with :func:`table_update`.

    Attributes:
        rows: N read-only ``(d,)`` float64 arrays, client i's latest update (zeros if never
            seen). ``values`` stacks them into ``(N, d)``.
        seen: ``(N,)`` bool, whether client i ever reported.
        mean: ``(d,)`` float64, (1/N) sum_i values_i, maintained incrementally.
        last_round: ``(N,)`` int64, the round of client i's latest update (-1 = never).
    """

    rows: tuple[np.ndarray, ...]
    seen: np.ndarray
    mean: np.ndarray
    last_round: np.ndarray

    @property
    def num_clients(self) -> int:
        """N, the number of rows."""
        return len(self.rows)

    @property
    def dim(self) -> int:
        """d, the length of each row."""
        return int(self.mean.shape[0])

    @property
    def values(self) -> np.ndarray:
        """The dense ``(N, d)`` float64 table (a new array)."""
        return np.stack(self.rows)

    def state_dict(self) -> dict[str, Any]:
        """Arrays for a checkpoint (``values``, ``seen``, ``mean``, ``last_round``)."""
        return {
            "values": self.values,
            "seen": np.array(self.seen),
            "mean": np.array(self.mean),
            "last_round": np.array(self.last_round),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> LatestUpdateTable:
        """Rebuild a table from :meth:`state_dict` output (the mean is restored, not recomputed,
        so a resumed run continues bit for bit).

        Raises:
            ValueError: If a key is missing or the shapes disagree.
        """
        values = load_array(state, "values", np.float64, (-1, -1))
        num_clients, dim = values.shape
        if num_clients < 1 or dim < 1:
            raise ValueError(
                f"state dict entry 'values' has shape {values.shape}, expected (N >= 1, d >= 1)"
            )
        seen = load_array(state, "seen", np.bool_, (num_clients,))
        mean = load_array(state, "mean", np.float64, (dim,))
        last_round = load_array(state, "last_round", np.int64, (num_clients,))
        if not np.array_equal(seen, last_round >= 0):
            raise ValueError(
                "state dict entries 'seen' and 'last_round' disagree, expected seen <=> round >= 0"
            )
        return cls(rows=tuple(frozen(row, np.float64) for row in values), seen=seen,
                   mean=mean, last_round=last_round)


def table_init(num_clients: int, dim: int) -> LatestUpdateTable:
    """An empty table: all rows zero, nobody seen, mean zero.

    Args:
        num_clients: N >= 1; client ids are 0..N-1.
        dim: d >= 1, the length of a flattened update.

    Raises:
        ValueError: If ``num_clients`` or ``dim`` is not an integer >= 1.

    Example:
        >>> table_init(3, 2).values.shape
        (3, 2)
    """
    num_clients = check_count(num_clients, "num_clients")
    dim = check_count(dim, "dim")
    zero = frozen(np.zeros(dim), np.float64)
    return LatestUpdateTable(
        rows=(zero,) * num_clients,
        seen=frozen(np.zeros(num_clients), np.bool_),
        mean=zero,
        last_round=frozen(np.full(num_clients, -1), np.int64),
    )


def _replace_rows(
    table: LatestUpdateTable, ids: np.ndarray, new: np.ndarray, server_round: int
) -> tuple[LatestUpdateTable, np.ndarray]:
    """Unchecked core of :func:`table_update`; also returns sum_j (new_j - old_j) (``(d,)``).

    ``ids`` and ``new`` must already be validated (distinct in-range ids, finite ``(k, d)``).
    """
    if ids.size == 0:
        return table, np.zeros(table.dim)
    old = np.stack([table.rows[i] for i in ids])
    change = (new - old).sum(axis=0)
    rows = list(table.rows)
    for j, i in enumerate(ids):
        rows[i] = frozen(new[j], np.float64)
    seen = np.array(table.seen)
    seen[ids] = True
    last_round = np.array(table.last_round)
    last_round[ids] = server_round
    new_table = LatestUpdateTable(
        rows=tuple(rows),
        seen=frozen(seen, np.bool_),
        mean=frozen(table.mean + change / table.num_clients, np.float64),
        last_round=frozen(last_round, np.int64),
    )
    return new_table, change


def table_update(
    table: LatestUpdateTable,
    client_ids: Iterable[int],
    new_values: Any,
    server_round: int,
) -> LatestUpdateTable:
    """Replace the rows of ``client_ids`` by ``new_values`` and update the mean.

    Args:
        table: The current table (unchanged by this call).
        client_ids: Distinct ids in 0..N-1 (may be empty).
        new_values: ``(len(client_ids), d)`` finite array; row j belongs to ``client_ids[j]``.
        server_round: The round of these updates; must be later than each client's
            ``last_round`` (a client is folded at most once per round).

    Returns:
        A new table; untouched rows are shared with ``table``.

    Raises:
        ValueError: On duplicate or out-of-range ids, a shape mismatch, non-finite values, or a
            round not later than a client's last round.

    Example:
        >>> t = table_update(table_init(2, 1), [1], [[4.0]], server_round=1)
        >>> t.mean, t.last_round
        (array([2.]), array([-1,  1]))
    """
    ids = check_client_ids(client_ids, table.num_clients)
    new = check_matrix(new_values, ids.size, table.dim, "new_values")
    server_round = check_round(server_round)
    check_fresh(table.last_round, ids, server_round)
    return _replace_rows(table, ids, new, server_round)[0]
