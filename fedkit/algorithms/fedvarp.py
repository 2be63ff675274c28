"""FedVARP (Jhunjhunwala, Sharma, Nagarkatti, Joshi, "FedVARP: Tackling the Variance Due to
Partial Client Participation in Federated Learning", UAI 2022) as a Flower strategy.

SAGA-style server variance reduction with a table y_i of every client's latest update
Delta_i = x - x_local: v = (1/N) sum_j y_j + (1/|S|) sum_{i in S} (Delta_i - y_i),
x <- x - server_lr v, then y_i <- Delta_i (:mod:`fedkit.algorithms.rules.fedvarp`).
K clients are sampled uniformly among the available ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flwr.app import ArrayRecord

from fedkit.algorithms._model_state import (
    ServerModel,
    restore_rule_strategy_state,
    rule_strategy_state,
)
from fedkit.algorithms.arrays import flatten
from fedkit.algorithms.base import FedkitStrategy
from fedkit.algorithms.directory import ClientDirectory
from fedkit.algorithms.replies import Rejection, TrainReply
from fedkit.algorithms.rules import FedVARPState, fedvarp_init, fedvarp_step

__all__ = ["FedVARP"]


class FedVARP(FedkitStrategy):
    """FedVARP: a latest-update table as a control variate for the sampled clients.

    Args as :class:`~fedkit.algorithms.base.FedkitStrategy` (``num_clients`` required), plus
    ``server_lr``.
    """

    name = "fedvarp"
    fixed_num_clients = ("its control variate (1/N) sum_j y_j averages a table with one row "
                         "per client")

    def __init__(self, *, clients_per_round: int | None = None, num_clients: int | None = None,
                 seed: int = 0, server_lr: float = 1.0,
                 directory: ClientDirectory | None = None, **options: Any) -> None:
        super().__init__(clients_per_round=clients_per_round, num_clients=num_clients,
                         seed=seed, directory=directory, **options)
        self.server_lr = server_lr
        self.model = ServerModel()
        self.state: FedVARPState | None = None

    def begin_round(self, server_round: int, arrays: ArrayRecord) -> ArrayRecord:
        sent = self.model.begin_round(arrays)
        if self.state is None:
            self.state = fedvarp_init(self.num_clients, self.model.x.size)
        return sent

    def aggregate(self, server_round: int, accepted: list[TrainReply],
                  rejected: list[Rejection]) -> ArrayRecord | None:
        if not accepted:
            return None
        deltas = np.stack([self.model.sent_vector - flatten(r.arrays) for r in accepted])
        x, self.state = fedvarp_step(self.model.x, self.state, [r.client_id for r in accepted],
                                     deltas, self.server_lr)
        return self.model.set(x)

    def state_dict(self) -> dict[str, Any]:
        return rule_strategy_state(self.model, self.state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.state = restore_rule_strategy_state(self.model, dict(state), FedVARPState, self.state)
