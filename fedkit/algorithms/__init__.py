"""Server algorithms as Flower Message-API strategies, with their pure arithmetic in ``rules``.

| strategy | rule | source |
|---|---|---|
| :class:`FedAvg` | weighted mean of local models | McMahan et al., AISTATS 2017 |
| :class:`FedLaAvg` | mean of every client's latest G_i | Yan et al., arXiv 2002.07399 |
| :class:`Mifa` | mean of every device's latest G_i | Gu et al., NeurIPS 2021 |
| :class:`FedAU` | updates weighted by estimated 1/p_n | Wang & Ji, ICLR 2024 |
| :class:`FedVARP` | latest-update table as control variate | Jhunjhunwala et al., UAI 2022 |
"""

from fedkit.algorithms.base import REPLY_GRADIENT_DELTA, REPLY_MODEL, FedkitStrategy
from fedkit.algorithms.directory import CLIENT_ID_KEY, CLIENT_ID_QUERY, ClientDirectory
from fedkit.algorithms.fedau import FedAU
from fedkit.algorithms.fedavg import FedAvg, weighted_mean
from fedkit.algorithms.fedlaavg import FedLaAvg
from fedkit.algorithms.fedvarp import FedVARP
from fedkit.algorithms.mifa import Mifa
from fedkit.algorithms.replies import Rejection, TrainReply, validate_train_replies
from fedkit.algorithms.sampling import sample_uniform

__all__ = [
    "CLIENT_ID_KEY",
    "CLIENT_ID_QUERY",
    "REPLY_GRADIENT_DELTA",
    "REPLY_MODEL",
    "ClientDirectory",
    "FedAU",
    "FedAvg",
    "FedLaAvg",
    "FedVARP",
    "FedkitStrategy",
    "Mifa",
    "Rejection",
    "TrainReply",
    "sample_uniform",
    "validate_train_replies",
    "weighted_mean",
]
