"""Server algorithms as Flower Message-API strategies, with their pure arithmetic in ``rules``.

| strategy | rule | source |
|---|---|---|
| :class:`FedAvg` | weighted mean of local models | McMahan et al., AISTATS 2017 |
| :class:`FedLaAvg` | mean of every client's latest G_i | Yan et al., arXiv 2002.07399 |
| :class:`Mifa` | mean of every device's latest G_i | Gu et al., NeurIPS 2021 |
| :class:`FedAU` | updates weighted by estimated 1/p_n | Wang & Ji, ICLR 2024 |
| :class:`FedVARP` | latest-update table as control variate | Jhunjhunwala et al., UAI 2022 |

Each is a Flower Message-API strategy (``Strategy.start`` runs it) with the constructor
arguments of Flower's ``FedAvg``; a ClientApp that breaks its message contract fails the run
with :class:`ContractError` (docs/flower.md, "Strategies").
"""

from fedkit.algorithms.base import (
    REPLY_GRADIENT_DELTA,
    REPLY_MODEL,
    FedkitStrategy,
    MetricsAggrFn,
)
from fedkit.algorithms.contract import ContractError, Mismatch
from fedkit.algorithms.directory import CLIENT_ID_KEY, CLIENT_ID_QUERY, ClientDirectory
from fedkit.algorithms.fedau import FedAU
from fedkit.algorithms.fedavg import FedAvg, weighted_mean
from fedkit.algorithms.fedlaavg import FedLaAvg
from fedkit.algorithms.fedvarp import FedVARP
from fedkit.algorithms.metrics import weighted_metrics
from fedkit.algorithms.mifa import Mifa
from fedkit.algorithms.participation import Participation, wait_for_nodes
from fedkit.algorithms.replies import (
    Rejection,
    TrainReply,
    validate_evaluate_replies,
    validate_train_replies,
)
from fedkit.algorithms.sampling import sample_uniform

__all__ = [
    "CLIENT_ID_KEY",
    "CLIENT_ID_QUERY",
    "REPLY_GRADIENT_DELTA",
    "REPLY_MODEL",
    "ClientDirectory",
    "ContractError",
    "FedAU",
    "FedAvg",
    "FedLaAvg",
    "FedVARP",
    "FedkitStrategy",
    "MetricsAggrFn",
    "Mifa",
    "Mismatch",
    "Participation",
    "Rejection",
    "TrainReply",
    "sample_uniform",
    "validate_evaluate_replies",
    "validate_train_replies",
    "wait_for_nodes",
    "weighted_mean",
    "weighted_metrics",
]
