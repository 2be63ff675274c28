"""MIFA: memory-augmented impatient federated averaging.

Every device that responds in round t runs K local steps from x_t at rate eta_t and reports
G_i = (x_t - x_i^(K)) / eta_t (:func:`fedkit.algorithms.rules.gradient_sum`). The server keeps
every device's latest G_i in a :class:`LatestUpdateTable` and steps with all of them, stale
entries for inactive devices included:

    x_{t+1} = x_t - eta_t (1/N) sum_{i=1}^N G_i.

Waiting for all devices (``wait_for_all=True``, the default): the official code makes no model
update until every device has been available once. It then trains all devices at x_0 to fill
the table and starts updating from the next round (``src/trainers/fdu.py``,
``initialize_update_table``). fedkit folds each device's first G_i as it arrives and leaves
the model at x_0 meanwhile, so the table holds exactly the official initial table (every
G_i computed at x_0); the first model update happens in the round in which the last
device's first G_i arrives. ``num_steps`` counts model updates, i.e. the official
``truth_round`` of the schedule eta_t = eta_0 / (t + 1): during the wait pass eta_0.
With ``wait_for_all=False`` the model updates from round one and never-seen devices count
as G_i = 0 (like FedLaAvg and FLGo's port with c = 0).

MIFA is FedLaAvg's averaging rule applied to all active devices instead of K longest-waiting
ones; unlike FedLaAvg it assumes (with ``wait_for_all``) that every device shows up once.

References:
    Gu, Huang, Zhang, Huang, "Fast Federated Learning in the Presence of Arbitrary Device
    Unavailability", NeurIPS 2021, arXiv 2106.04159, Alg. 1 (update x_{t+1} = x_t - eta_t
    (1/N) sum_i G_i); code ``hmgxr128/MIFA_code``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedkit.algorithms.rules._validate import check_lr, check_vector, load_bool, load_int
from fedkit.algorithms.rules.latest_table import LatestUpdateTable, table_init, table_update

__all__ = ["MifaState", "mifa_init", "mifa_step"]

_TABLE = "table."


@dataclass(frozen=True, eq=False)
class MifaState:
    """MIFA server state.

    Attributes:
        table: Latest G_i of every device (zeros for never-seen devices).
        wait_for_all: Make no model update until every device has reported once.
        num_steps: Model updates made so far (t of eta_t = eta_0 / (t + 1)).
    """

    table: LatestUpdateTable
    wait_for_all: bool
    num_steps: int

    @property
    def waiting(self) -> bool:
        """True while ``wait_for_all`` holds the model back (some device never reported)."""
        return self.wait_for_all and not bool(self.table.seen.all())

    def state_dict(self) -> dict[str, Any]:
        """Arrays and scalars for a checkpoint (table entries prefixed ``"table."``)."""
        out: dict[str, Any] = {"wait_for_all": self.wait_for_all, "num_steps": self.num_steps}
        out.update({_TABLE + k: v for k, v in self.table.state_dict().items()})
        return out

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> MifaState:
        """Rebuild the state from :meth:`state_dict` output.

        Raises:
            ValueError: If a key is missing or malformed.
        """
        table = LatestUpdateTable.from_state_dict(
            {k[len(_TABLE):]: v for k, v in state.items() if k.startswith(_TABLE)}
        )
        return cls(table=table, wait_for_all=load_bool(state, "wait_for_all"),
                   num_steps=load_int(state, "num_steps"))


def mifa_init(num_clients: int, dim: int, *, wait_for_all: bool = True) -> MifaState:
    """An empty table, no step made.

    Args:
        num_clients: N >= 1 devices.
        dim: d >= 1, the flattened model size.
        wait_for_all: Hold the model at x_0 until every device has reported once (official
            code); False updates from the first round.

    Raises:
        ValueError: If ``num_clients`` or ``dim`` is not an integer >= 1.
    """
    return MifaState(table=table_init(num_clients, dim), wait_for_all=bool(wait_for_all),
                     num_steps=0)


def mifa_step(
    x: Any,
    state: MifaState,
    client_ids: Iterable[int],
    g_new: Any,
    lr: float,
    server_round: int,
) -> tuple[np.ndarray, MifaState]:
    """Store the responding devices' G_i, then x <- x - lr * (1/N) sum_i G_i (unless waiting).

    Args:
        x: ``(d,)`` current global model.
        state: The current state.
        client_ids: Distinct ids of the devices that responded (may be empty: the step then
            uses the stale table only).
        g_new: ``(len(client_ids), d)`` finite array of their G_i = (x - x_i) / lr.
        lr: eta_t > 0, the rate the devices used this round.
        server_round: The current round; later than each device's last round.

    Returns:
        ``(x_new, new_state)``; ``x_new`` is a copy of ``x`` while waiting.

    Raises:
        ValueError: On bad ids or shapes, non-finite values, ``lr`` <= 0, or a round not later
            than a device's last round.

    Example:
        >>> s = mifa_init(2, 1, wait_for_all=False)
        >>> mifa_step(np.array([1.0]), s, [0], [[4.0]], 0.5, 1)[0]
        array([0.])
    """
    x = check_vector(x, state.table.dim, "x")
    lr = check_lr(lr)
    table = table_update(state.table, client_ids, g_new, server_round)
    new_state = MifaState(table=table, wait_for_all=state.wait_for_all,
                          num_steps=state.num_steps)
    if new_state.waiting:
        return x, new_state
    stepped = MifaState(table=table, wait_for_all=state.wait_for_all,
                        num_steps=state.num_steps + 1)
    return x - lr * table.mean, stepped
