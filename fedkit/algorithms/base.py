"""The shell every fedkit strategy shares: a Flower Message-API strategy around pure rules.

A fedkit strategy is one subclass of :class:`FedkitStrategy` that fills in four hooks:

* :meth:`~FedkitStrategy.select_clients` -- which online clients train this round (default:
  K uniformly at random, seeded by round, over stable client ids);
* :meth:`~FedkitStrategy.client_instructions` -- extra per-client config and records;
* :meth:`~FedkitStrategy.aggregate` -- fold the validated replies into the algorithm's state
  (pure functions in :mod:`fedkit.algorithms.rules`) and return the new global arrays;
* :meth:`~FedkitStrategy.state_dict` / :meth:`~FedkitStrategy.load_state_dict` -- checkpoints.

Everything else -- the node-id to client-id directory, message construction, reply validation
(:mod:`fedkit.algorithms.replies`), metrics -- lives here once, so a strategy is one level of
subclassing that holds only the algorithm's glue, and validation happens once, at the boundary.

Strategies that can work from the sum of the clients' updates alone set
``supports_secure_aggregation`` and fill in :meth:`~FedkitStrategy.secure_vector_spec` and
:meth:`~FedkitStrategy.fold_secure_sum`; :mod:`fedkit.flower.secagg.workflow` then runs the
round's training under secure aggregation and hands the unmasked sum to
:meth:`~FedkitStrategy.aggregate_secure`.
Replies of kind ``model`` carry the client's local model; ``gradient-delta`` carries FedLaAvg's
ΔG_i (client-delta mode).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedkit.algorithms.directory import ClientDirectory
from fedkit.algorithms.replies import ARRAYS_KEY, Rejection, TrainReply, validate_train_replies
from fedkit.algorithms.sampling import sample_uniform
from fedkit.algorithms.secure_sum import SecureSum, VectorSpec, read_secure_sum

__all__ = ["FedkitStrategy", "REPLY_MODEL", "REPLY_GRADIENT_DELTA"]

logger = logging.getLogger(__name__)

REPLY_MODEL = "model"
REPLY_GRADIENT_DELTA = "gradient-delta"


class FedkitStrategy(Strategy):
    """Base of fedkit's strategies (see the module docstring for the hooks).

    Args:
        clients_per_round: K; all online clients train when fewer are online.
        num_clients: N, the size of the federation (client ids 0..N-1).
        seed: Root seed of the selection streams.
        directory: Node-id to client-id map (shared with an availability grid, if any).
    """

    name = "base"
    reply_kind = REPLY_MODEL
    supports_secure_aggregation = False

    def __init__(self, *, clients_per_round: int, num_clients: int, seed: int = 0,
                 directory: ClientDirectory | None = None) -> None:
        if not 1 <= clients_per_round <= num_clients:
            raise ValueError(
                f"clients_per_round = {clients_per_round}, expected 1..num_clients "
                f"({num_clients})"
            )
        self.clients_per_round = clients_per_round
        self.num_clients = num_clients
        self.seed = seed
        self.directory = directory or ClientDirectory(num_clients)
        self._pending: list[tuple[Message, int]] = []
        self._reference: ArrayRecord | None = None
        self._round_config: dict[str, Any] = {}
        self.secure_clip: float | None = None

    # -- hooks ------------------------------------------------------------------------------
    def select_clients(self, server_round: int, online: Iterable[int]) -> list[int]:
        """The clients that train this round: K uniformly at random among the online ones."""
        return sample_uniform(online, self.clients_per_round, seed=self.seed,
                              server_round=server_round)

    def client_instructions(
        self, server_round: int, client_id: int
    ) -> tuple[dict[str, Any], dict[str, ArrayRecord]]:
        """Extra config entries and extra ArrayRecords for one client (none by default)."""
        return {}, {}

    def begin_round(self, server_round: int, arrays: ArrayRecord) -> ArrayRecord:
        """Called first in :meth:`configure_train`; returns the arrays to send."""
        return arrays

    def reply_reference(self, arrays: ArrayRecord) -> ArrayRecord:
        """Names, shapes and dtypes a valid reply must have (default: those of the model)."""
        return arrays

    def aggregate(self, server_round: int, accepted: list[TrainReply],
                  rejected: list[Rejection]) -> ArrayRecord | None:
        """Fold this round's accepted replies; return the new global arrays (None: keep)."""
        raise NotImplementedError

    def secure_vector_spec(self, server_round: int) -> VectorSpec:
        """Under secure aggregation: how clients form the vector they mask."""
        raise NotImplementedError(f"{self.name} does not support secure aggregation")

    def fold_secure_sum(self, server_round: int, outcome: SecureSum) -> ArrayRecord | None:
        """Under secure aggregation: fold the unmasked sum; return the new global arrays."""
        raise NotImplementedError(f"{self.name} does not support secure aggregation")

    def state_dict(self) -> dict[str, Any]:
        """The strategy's state for a checkpoint (numpy arrays and scalars)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""

    # -- secure aggregation -----------------------------------------------------------------
    def enable_secure_aggregation(self, clip: float) -> None:
        """Declare that rounds run under secure aggregation with clipping range ``clip``.

        Raises:
            ValueError: If this strategy needs individual client updates.
        """
        if not self.supports_secure_aggregation:
            raise ValueError(
                f"algorithm {self.name!r} cannot run under secure aggregation: its server "
                "needs each client's update, not only their sum (use fedavg, or fedlaavg "
                "with fedlaavg_mode = 'client-delta')"
            )
        self.secure_clip = float(clip)

    def sent_messages(self) -> list[tuple[Message, int]]:
        """This round's train messages, each with its client id."""
        return list(self._pending)

    @property
    def vector_length(self) -> int:
        """Number of values in one client's update this round."""
        if self._reference is None:
            raise RuntimeError("vector_length read before configure_train")
        return sum(int(np.prod(a.shape)) for a in self._reference.values())

    def aggregate_secure(self, server_round: int, outcome: SecureSum
                         ) -> tuple[ArrayRecord | None, MetricRecord]:
        """Fold a securely aggregated round and report what happened."""
        metrics = MetricRecord({
            "num-replies": len(outcome.contributors),
            "num-rejected": len(outcome.failed),
            "clients": list(outcome.contributors),
            "rejected-clients": sorted(outcome.failed),
            "secagg-aborted": int(outcome.aborted is not None),
            "secagg-seconds": float(sum(outcome.stage_seconds.values())),
            "secagg-bytes-up": int(sum(outcome.bytes_up.values())),
            "secagg-bytes-down": int(sum(outcome.bytes_down.values())),
        })
        if outcome.clipped_fraction is not None:
            metrics["secagg-clipped-fraction"] = float(outcome.clipped_fraction)
        new_arrays = self.fold_secure_sum(server_round, outcome)
        if new_arrays is None:
            level = logging.WARNING if outcome.weighted_sum is None else logging.INFO
            logger.log(level, "round %s: the global model is unchanged (%s)", server_round,
                       outcome.aborted or f"{len(outcome.contributors)} inputs summed")
        return new_arrays, metrics

    # -- Flower Strategy ------------------------------------------------------------------
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Select clients among the online ones and send each the model and its config."""
        arrays = self.begin_round(server_round, arrays)
        online = self.directory.online(grid)
        chosen = self.select_clients(server_round, online)
        self._round_config = dict(config)
        base = {**config, "server-round": server_round, "reply": self.reply_kind}
        messages = []
        for client_id in chosen:
            extra_config, extra_records = self.client_instructions(server_round, client_id)
            content = RecordDict({
                ARRAYS_KEY: arrays,
                "config": ConfigRecord({**base, **extra_config}),
                **extra_records,
            })
            messages.append(Message(content, online[client_id], "train",
                                    group_id=str(server_round)))
        self._reference = self.reply_reference(arrays)
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
        """Validate the replies, fold the accepted ones, and report what happened.

        Under secure aggregation the grid answers with the round's unmasked sum instead of the
        clients' replies (:class:`fedkit.flower.secagg.grid.SecureAggregationGrid`); it is
        folded by :meth:`aggregate_secure`.
        """
        if self._reference is None:
            raise RuntimeError("aggregate_train called before configure_train")
        replies = list(replies)
        outcome = read_secure_sum(replies)
        if outcome is not None:
            return self.aggregate_secure(server_round, outcome)
        accepted, rejected = validate_train_replies(
            replies, sent=self._sent_this_round(), reference=self._reference
        )
        metrics = MetricRecord({
            "num-replies": len(accepted),
            "num-rejected": len(rejected),
            "clients": [r.client_id for r in accepted],
            "rejected-clients": [r.client_id for r in rejected if r.client_id is not None],
        })
        losses = [r.metrics.get("train-loss") for r in accepted]
        if accepted and all(loss is not None for loss in losses):
            weights = [r.num_examples for r in accepted]
            weighted = sum(w * float(loss) for w, loss in zip(weights, losses, strict=True))
            metrics["train-loss"] = weighted / sum(weights)
        new_arrays = self.aggregate(server_round, accepted, rejected)
        if new_arrays is None:
            # Without valid replies that is news; with them it is the algorithm's choice
            # (a warm-up round, MIFA waiting for every client).
            level = logging.WARNING if not accepted else logging.INFO
            logger.log(level, "round %s: the global model is unchanged (%s valid replies)",
                       server_round, len(accepted))
        return new_arrays, metrics

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
        logger.info("%s: K=%s of N=%s clients per round, seed=%s", self.name,
                    self.clients_per_round, self.num_clients, self.seed)
