"""Server algorithms as Flower Message-API strategies, with their pure arithmetic."""

from fedkit.algorithms.directory import CLIENT_ID_KEY, CLIENT_ID_QUERY, ClientDirectory
from fedkit.algorithms.fedavg import FedAvg, weighted_mean
from fedkit.algorithms.replies import Rejection, TrainReply, validate_train_replies
from fedkit.algorithms.sampling import sample_uniform

__all__ = [
    "CLIENT_ID_KEY",
    "CLIENT_ID_QUERY",
    "ClientDirectory",
    "FedAvg",
    "Rejection",
    "TrainReply",
    "sample_uniform",
    "validate_train_replies",
    "weighted_mean",
]
