"""MIFA (Gu, Huang, Zhang, Huang, "Fast Federated Learning in the Presence of Arbitrary Device
Unavailability", NeurIPS 2021) as a Flower strategy.

The server stores every device's latest G_i = (x - x_local)/lr and steps
x <- x - lr * (1/N) sum_{i=1}^N G_i with stale entries for unavailable devices
(:mod:`fedkit.algorithms.rules.mifa`). The paper lets every active device train each round;
fedkit samples K uniformly among the available ones (set ``clients_per_round = num_clients``
for the paper's setting). ``wait_for_all`` (the official code's behaviour) holds the model
until every device has responded once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import ArrayRecord

from fedkit.algorithms._model_state import (
    ServerModel,
    restore_rule_strategy_state,
    rule_strategy_state,
)
from fedkit.algorithms.arrays import flatten, stack_rows
from fedkit.algorithms.base import FedkitStrategy
from fedkit.algorithms.directory import ClientDirectory
from fedkit.algorithms.replies import Rejection, TrainReply
from fedkit.algorithms.rules import MifaState, gradient_sum, mifa_init, mifa_step

__all__ = ["Mifa"]


class Mifa(FedkitStrategy):
    """MIFA: a latest-update table over all N devices, averaged every round.

    Args as :class:`~fedkit.algorithms.base.FedkitStrategy` (``num_clients`` required), plus
    ``wait_for_all``: hold the model until every device has replied once. The train config
    must hold the round's ``lr``.
    """

    name = "mifa"
    needs_lr = True
    fixed_num_clients = ("its step averages the latest update of all N devices, "
                         "(1/N) sum_i G_i, over a table with one row per device")

    def __init__(self, *, clients_per_round: int | None = None, num_clients: int | None = None,
                 seed: int = 0, wait_for_all: bool = True,
                 directory: ClientDirectory | None = None, **options: Any) -> None:
        super().__init__(clients_per_round=clients_per_round, num_clients=num_clients,
                         seed=seed, directory=directory, **options)
        self.wait_for_all = wait_for_all
        self.model = ServerModel()
        self.state: MifaState | None = None

    def begin_round(self, server_round: int, arrays: ArrayRecord) -> ArrayRecord:
        sent = self.model.begin_round(arrays)
        if self.state is None:
            self.state = mifa_init(self.num_clients, self.model.x.size,
                                   wait_for_all=self.wait_for_all)
        return sent

    def aggregate(self, server_round: int, accepted: list[TrainReply],
                  rejected: list[Rejection]) -> ArrayRecord | None:
        lr = float(self._round_config["lr"])
        rows = stack_rows([gradient_sum(self.model.sent_vector, flatten(r.arrays), lr)
                           for r in accepted], self.model.x.size)
        x, self.state = mifa_step(self.model.x, self.state, [r.client_id for r in accepted],
                                  rows, lr, server_round)
        if self.state.waiting:
            return None
        return self.model.set(x)

    def state_dict(self) -> dict[str, Any]:
        return rule_strategy_state(self.model, self.state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.state = restore_rule_strategy_state(self.model, dict(state), MifaState, self.state)
