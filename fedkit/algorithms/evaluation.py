"""Federated evaluation: the global model, evaluated by a sample of the online clients.

What a fedkit strategy's ``configure_evaluate``/``aggregate_evaluate`` do, as Flower's
``FedAvg`` does them, but seeded and validated:

1. wait until enough nodes are online (:mod:`fedkit.algorithms.participation`), then pick
   ``max(int(n * fraction_evaluate), min_evaluate_nodes)`` of the n online clients uniformly
   at random from the stream ``(seed, "sample-evaluate", round)`` over stable client ids;
2. send each an ``evaluate`` message: the global arrays under ``arrayrecord_key`` and the
   evaluate config plus ``server-round`` under ``configrecord_key``;
3. keep the replies that answer those messages and hold a MetricRecord ``metrics`` with a
   positive ``weighted_by_key`` (:func:`~fedkit.algorithms.replies.validate_evaluate_replies`)
   and aggregate them with ``evaluate_metrics_aggr_fn`` (default: the weighted mean of every
   numeric metric, :func:`~fedkit.algorithms.metrics.weighted_metrics`).

Evaluation is optional, so a ClientApp without an ``evaluate`` handler is not a broken
contract: its error replies are skipped with one warning naming the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid

from fedkit.algorithms.contract import Mismatch, mismatch_fix
from fedkit.algorithms.directory import ClientDirectory
from fedkit.algorithms.participation import Participation, wait_for_nodes
from fedkit.algorithms.replies import validate_evaluate_replies
from fedkit.algorithms.sampling import sample_uniform

__all__ = ["FederatedEvaluation", "MetricsAggrFn", "sent_by_id"]

logger = logging.getLogger(__name__)

MetricsAggrFn = Callable[[list[RecordDict], str], MetricRecord]
"""Flower's metric-aggregation signature: ``(reply contents, weighted_by_key) -> metrics``."""


def sent_by_id(pending: list[tuple[Message, int]]) -> dict[str, tuple[int, int]]:
    """Message id -> (node id, client id) of sent messages (ids exist once pushed)."""
    return {
        msg.metadata.message_id: (msg.metadata.dst_node_id, client_id)
        for msg, client_id in pending
        if msg.metadata.message_id
    }


class FederatedEvaluation:
    """One strategy's federated evaluation (see the module docstring).

    Args:
        participation: Sample sizes and waits.
        directory: Node-id to client-id map.
        seed: Root seed of the sampling stream.
        aggregate_fn: ``evaluate_metrics_aggr_fn``.
        weighted_by_key: The weight metric.
        arrayrecord_key: Name of the ArrayRecord sent.
        configrecord_key: Name of the ConfigRecord sent.
    """

    def __init__(self, participation: Participation, directory: ClientDirectory, *, seed: int,
                 aggregate_fn: MetricsAggrFn, weighted_by_key: str, arrayrecord_key: str,
                 configrecord_key: str) -> None:
        self.participation = participation
        self.directory = directory
        self.seed = seed
        self.aggregate_fn = aggregate_fn
        self.weighted_by_key = weighted_by_key
        self.arrayrecord_key = arrayrecord_key
        self.configrecord_key = configrecord_key
        self._pending: list[tuple[Message, int]] = []
        self._warned_no_handler = False

    def configure(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                  grid: Grid) -> list[Message]:
        """This round's evaluate messages (none when ``fraction_evaluate = 0``)."""
        self._pending = []
        if not self.participation.evaluates:
            return []
        wait_for_nodes(grid, self.participation.nodes_to_wait_for("evaluate"))
        online = self.directory.online(grid, server_round=server_round)
        size = self.participation.evaluate_sample_size(len(online))
        if not size:
            return []
        chosen = sample_uniform(online, size, seed=self.seed, server_round=server_round,
                                purpose="sample-evaluate")
        content = RecordDict({
            self.arrayrecord_key: arrays,
            self.configrecord_key: ConfigRecord({**config, "server-round": server_round}),
        })
        messages = [Message(content, online[c], "evaluate", group_id=str(server_round))
                    for c in chosen]
        self._pending = list(zip(messages, chosen, strict=True))
        return messages

    def aggregate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """The aggregated metrics of the valid replies (None: no valid reply)."""
        accepted, rejected = validate_evaluate_replies(
            replies, sent=sent_by_id(self._pending), weighted_by_key=self.weighted_by_key)
        missing = [r for r in rejected if r.mismatch is Mismatch.NO_EVALUATE_HANDLER]
        if missing and not self._warned_no_handler:
            self._warned_no_handler = True
            logger.warning("round %s: %s of %s clients could not evaluate: %s (said once)",
                           server_round, len(missing), len(rejected) + len(accepted),
                           mismatch_fix(Mismatch.NO_EVALUATE_HANDLER))
        if not accepted:
            return None
        return self.aggregate_fn([content for _, content in accepted], self.weighted_by_key)
