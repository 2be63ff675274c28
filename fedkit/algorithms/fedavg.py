"""FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017) as a Flower Message-API strategy.

Rule (Algorithm 1 of the paper): the server sends the global model x to K clients sampled
uniformly among the available ones; each runs local SGD and returns its local model x_i; the
new global model is the weighted mean

    x <- sum_i w_i x_i / sum_i w_i,    w_i = n_i (examples) or 1 (``weighting="uniform"``).

The uniform variant is the FedAvg baseline of Yan et al. (FedLaAvg paper, code
``mikudehuane/FedLaAvg``): x <- x - lr * (1/K) sum_i G_i, which equals the plain mean of the
local models. The arithmetic is :func:`weighted_mean` (numpy, float64 accumulation); the
strategy only samples (seeded, by stable client id), validates replies and converts records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedkit.algorithms.directory import ClientDirectory
from fedkit.algorithms.replies import ARRAYS_KEY, validate_train_replies
from fedkit.algorithms.sampling import sample_uniform

__all__ = ["FedAvg", "weighted_mean"]

logger = logging.getLogger(__name__)

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


class FedAvg(Strategy):
    """FedAvg with seeded sampling by stable client id and validated replies.

    Args:
        clients_per_round: K; all available clients are used when fewer are online.
        num_clients: N, the size of the federation (valid client ids are 0..N-1).
        seed: Root seed of the sampling streams.
        weighting: ``"num-examples"`` (McMahan et al.) or ``"uniform"`` (Yan et al.'s baseline).
        directory: Node-id to client-id map; a new one is made if omitted.
    """

    def __init__(
        self,
        *,
        clients_per_round: int,
        num_clients: int,
        seed: int = 0,
        weighting: str = "num-examples",
        directory: ClientDirectory | None = None,
    ) -> None:
        if weighting not in _WEIGHTINGS:
            raise ValueError(f"weighting = {weighting!r}, expected one of {list(_WEIGHTINGS)}")
        if not 1 <= clients_per_round <= num_clients:
            raise ValueError(
                f"clients_per_round = {clients_per_round}, expected 1..num_clients "
                f"({num_clients})"
            )
        self.clients_per_round = clients_per_round
        self.num_clients = num_clients
        self.seed = seed
        self.weighting = weighting
        self.directory = directory or ClientDirectory(num_clients)
        self._pending: list[tuple[Message, int]] = []
        self._reference: ArrayRecord | None = None

    def select_clients(self, server_round: int, online: Iterable[int]) -> list[int]:
        """The clients to train this round (override point for other selection rules)."""
        return sample_uniform(online, self.clients_per_round, seed=self.seed,
                              server_round=server_round)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample K online clients (seeded) and send each the model and the round's config."""
        online = self.directory.online(grid)
        chosen = self.select_clients(server_round, online)
        config = ConfigRecord({**config, "server-round": server_round})
        content = RecordDict({ARRAYS_KEY: arrays, "config": config})
        messages = [
            Message(content, online[c], "train", group_id=str(server_round)) for c in chosen
        ]
        self._reference = arrays
        self._pending = list(zip(messages, chosen, strict=True))
        return messages

    def _sent_this_round(self) -> dict[str, tuple[int, int]]:
        """Message id -> (node id, client id); ids exist once the grid has pushed them."""
        return {
            msg.metadata.message_id: (msg.metadata.dst_node_id, client_id)
            for msg, client_id in self._pending
            if msg.metadata.message_id
        }

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Average the accepted local models; rejected replies are logged and left out."""
        if self._reference is None:
            raise RuntimeError("aggregate_train called before configure_train")
        accepted, rejected = validate_train_replies(
            replies, sent=self._sent_this_round(), reference=self._reference
        )
        metrics = MetricRecord({
            "num-replies": len(accepted),
            "num-rejected": len(rejected),
            "clients": [r.client_id for r in accepted],
            "rejected-clients": [r.client_id for r in rejected if r.client_id is not None],
        })
        if not accepted:
            logger.warning("round %s: no valid reply; the global model is unchanged",
                           server_round)
            return None, metrics
        weights = [
            r.num_examples if self.weighting == "num-examples" else 1.0 for r in accepted
        ]
        new_arrays = weighted_mean([r.arrays for r in accepted], weights)
        losses = [r.metrics.get("train-loss") for r in accepted]
        if all(loss is not None for loss in losses):
            metrics["train-loss"] = float(np.average(losses, weights=weights))
        record = ArrayRecord(
            {name: Array(a) for name, a in zip(self._reference.keys(), new_arrays, strict=True)}
        )
        return record, metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """No federated evaluation: fedkit evaluates centrally on the test set."""
        return []

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Nothing to aggregate (see :meth:`configure_evaluate`)."""
        return None

    def summary(self) -> None:
        """Log the strategy's settings."""
        logger.info(
            "FedAvg: K=%s of N=%s clients per round, weighting=%s, seed=%s",
            self.clients_per_round, self.num_clients, self.weighting, self.seed,
        )
