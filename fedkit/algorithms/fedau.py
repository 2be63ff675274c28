"""FedAU (Wang & Ji, "A Lightweight Method for Tackling Unknown Participation Statistics in
Federated Averaging", ICLR 2024) as a Flower strategy.

FedAvg in which client n's update Delta_n = x_local - x is weighted by omega_n, an online
estimate of 1/p_n from its observed participation intervals (cut off at ``cutoff``):
x <- x + server_lr (1/N) sum_{n in S_t} omega_n Delta_n (:mod:`fedkit.algorithms.rules.fedau`).
O(N) scalars of server state. K clients are sampled uniformly among the available ones (the
paper lets every available client participate: set ``clients_per_round = num_clients``).
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
from fedkit.algorithms.rules import FedAUState, fedau_init, fedau_observe, fedau_step

__all__ = ["FedAU"]


class FedAU(FedkitStrategy):
    """FedAU: participation-adaptive weights omega_n ~ 1/p_n.

    Args as :class:`~fedkit.algorithms.base.FedkitStrategy` (``num_clients`` required), plus
    ``cutoff`` (the interval estimate's cut-off K) and ``server_lr``.
    """

    name = "fedau"
    fixed_num_clients = ("its step x += server_lr (1/N) sum_n omega_n Delta_n divides by N "
                         "and keeps one participation estimate per client")

    def __init__(self, *, clients_per_round: int | None = None, num_clients: int | None = None,
                 seed: int = 0, cutoff: int = 50, server_lr: float = 1.0,
                 directory: ClientDirectory | None = None, **options: Any) -> None:
        super().__init__(clients_per_round=clients_per_round, num_clients=num_clients,
                         seed=seed, directory=directory, **options)
        self.server_lr = server_lr
        self.model = ServerModel()
        self.state: FedAUState = fedau_init(num_clients, cutoff=cutoff)

    def begin_round(self, server_round: int, arrays: ArrayRecord) -> ArrayRecord:
        return self.model.begin_round(arrays)

    def aggregate(self, server_round: int, accepted: list[TrainReply],
                  rejected: list[Rejection]) -> ArrayRecord | None:
        ids = [r.client_id for r in accepted]
        deltas = stack_rows([flatten(r.arrays) - self.model.sent_vector for r in accepted],
                            self.model.x.size)
        x, state = fedau_step(self.model.x, self.state, ids, deltas, self.server_lr)
        self.state = fedau_observe(state, ids, server_round)
        return self.model.set(x) if accepted else None

    def state_dict(self) -> dict[str, Any]:
        return rule_strategy_state(self.model, self.state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.state = restore_rule_strategy_state(self.model, dict(state), FedAUState, self.state)
