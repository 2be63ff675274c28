"""FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017) as a Flower Message-API strategy.

Rule (Algorithm 1 of the paper): the server sends the global model x to K clients sampled
uniformly among the available ones; each runs local SGD and returns its local model x_i; the
new global model is the weighted mean

    x <- sum_i w_i x_i / sum_i w_i,    w_i = n_i (examples) or 1 (``weighting="uniform"``).

The uniform variant is the FedAvg baseline of Yan et al. (FedLaAvg paper, code
``mikudehuane/FedLaAvg``): x <- x - lr * (1/K) sum_i G_i, which equals the plain mean of the
local models. The arithmetic is :func:`weighted_mean` (numpy, float64 accumulation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord

from fedkit.algorithms.arrays import flatten, unflatten
from fedkit.algorithms.base import FedkitStrategy
from fedkit.algorithms.directory import ClientDirectory
from fedkit.algorithms.replies import Rejection, TrainReply
from fedkit.algorithms.secure_sum import SecureSum, VectorSpec

__all__ = ["FedAvg", "weighted_mean"]

_WEIGHTINGS = ("num-examples", "uniform")


def weighted_mean(
    arrays: Sequence[Sequence[np.ndarray]], weights: Sequence[float]
) -> list[np.ndarray]:
    """Return sum_i w_i * arrays[i] / sum_i w_i, layer by layer, in each layer's dtype.

    Args:
        arrays: One list of layers per client; all clients have the same layer shapes.
        weights: One non-negative weight per client, with a positive sum.

    Raises:
        ValueError: On an empty input, mismatched lengths, or weights that do not sum to > 0.

    Example:
        >>> weighted_mean([[np.array([0.0])], [np.array([3.0])]], [2, 1])[0]
        array([1.])
    """
    if not arrays or len(arrays) != len(weights):
        raise ValueError(
            f"got {len(arrays)} clients' arrays and {len(weights)} weights, expected equal, >= 1"
        )
    w = np.asarray(weights, dtype=np.float64)
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights {w.tolist()} must be >= 0 with a positive sum")
    w = w / w.sum()
    out = []
    for layer in zip(*arrays, strict=True):
        acc = np.zeros(layer[0].shape, dtype=np.float64)
        for wi, a in zip(w, layer, strict=True):
            acc += wi * a
        out.append(acc.astype(layer[0].dtype, copy=False))
    return out


class FedAvg(FedkitStrategy):
    """FedAvg with seeded sampling by stable client id and validated replies.

    ``FedAvg()`` with no arguments behaves like Flower's ``FedAvg()``: every online node
    trains and evaluates (at least 2, waiting for 2), N is learned from the grid, replies are
    weighted by ``num-examples`` -- but sampling is seeded and replies are validated.

    Args:
        clients_per_round: K; all available clients are used when fewer are online. None:
            Flower's ``fraction_train``/``min_train_nodes``.
        num_clients: N, the size of the federation (valid client ids are 0..N-1); None:
            learned (FedAvg's rule does not use N).
        seed: Root seed of the sampling streams.
        weighting: ``"num-examples"`` (McMahan et al.; the weight is the reply's
            ``weighted_by_key`` metric) or ``"uniform"`` (Yan et al.'s baseline).
        directory: Node-id to client-id map; a new one is made if omitted.
        **options: Flower's ``FedAvg`` arguments (``fraction_train``, ``fraction_evaluate``,
            ``min_train_nodes``, ``min_evaluate_nodes``, ``min_available_nodes``,
            ``weighted_by_key``, ``arrayrecord_key``, ``configrecord_key``,
            ``train_metrics_aggr_fn``, ``evaluate_metrics_aggr_fn``): see
            :class:`~fedkit.algorithms.base.FedkitStrategy`.
    """

    name = "fedavg"
    supports_secure_aggregation = True

    def __init__(self, *, clients_per_round: int | None = None, num_clients: int | None = None,
                 seed: int = 0, weighting: str = "num-examples",
                 directory: ClientDirectory | None = None, **options: Any) -> None:
        if weighting not in _WEIGHTINGS:
            raise ValueError(f"weighting = {weighting!r}, expected one of {list(_WEIGHTINGS)}")
        super().__init__(clients_per_round=clients_per_round, num_clients=num_clients,
                         seed=seed, directory=directory, **options)
        self.weighting = weighting

    def aggregate(self, server_round: int, accepted: list[TrainReply],
                  rejected: list[Rejection]) -> ArrayRecord | None:
        """The weighted mean of the accepted local models."""
        if not accepted or self._reference is None:
            return None
        weights = [r.num_examples if self.weighting == "num-examples" else 1.0
                   for r in accepted]
        new_arrays = weighted_mean([r.arrays for r in accepted], weights)
        return ArrayRecord(
            {name: Array(a) for name, a in zip(self._reference.keys(), new_arrays, strict=True)}
        )

    def secure_vector_spec(self, server_round: int) -> VectorSpec:
        """Clients mask their update x_i - x, weighted as configured."""
        return VectorSpec(offset=True, prescale=1.0, weighting=self.weighting)

    def fold_secure_sum(self, server_round: int, outcome: SecureSum) -> ArrayRecord | None:
        """x + sum_i w_i (x_i - x) / sum_i w_i: the weighted mean of the local models."""
        if outcome.weighted_sum is None or outcome.total_weight <= 0 or self._reference is None:
            return None
        x = flatten(self._reference) + outcome.weighted_sum / outcome.total_weight
        return unflatten(x, self._reference)
