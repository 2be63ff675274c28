"""The server side of secure aggregation on Flower: four stages over ``grid.send_and_receive``.

:class:`SecureAggregation` replaces the plain "send the train messages, collect the replies"
step of a round. Given the strategy's train messages it runs SecAgg/SecAgg+
(:mod:`fedkit.privacy.secagg`) with those clients:

1. advertise keys -- a small ``train`` message with the :data:`SECAGG_RECORD` to each client;
2. share keys -- the roster to every client that advertised;
3. masked input -- each client's routed shares *plus the strategy's train content*; the
   client trains, masks its update (:class:`~fedkit.algorithms.secure_sum.VectorSpec`) and
   replies with the masked vector only;
4. unmask -- the alive/dropped lists; the server removes the masks.

A client that fails, times out or sends an invalid reply at any stage is dropped (logged
with the reason); the protocol recovers its masks as long as every stage keeps at least the
threshold. Below it the round aborts: the returned :class:`SecureSum` says why and the
caller leaves the model unchanged -- an explicit, logged outcome, never a silent skip.
A reply whose protocol message names another client id than the node it came from is
rejected (one node cannot speak for another).

References:
    Bonawitz et al., CCS 2017; Bell et al., CCS 2020; Flower's ``SecAggPlusWorkflow`` is the
    legacy-API counterpart (shared/reference/secagg.md §5).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from fedkit.algorithms.base import FedkitStrategy
from fedkit.algorithms.replies import METRICS_KEY, STATE_LOST_KEY
from fedkit.algorithms.secure_sum import SecureSum, VectorSpec
from fedkit.flower.secagg.records import SECAGG_RECORD, read_reply, request_record
from fedkit.privacy.graph import neighbourhood_size
from fedkit.privacy.secagg import (
    SecAggAbort,
    SecAggConfig,
    SecAggError,
    SecAggServer,
    Stage,
    decode_message,
)

__all__ = ["SecureAggregation", "SecureAggregationSettings", "secure_train_fn"]

logger = logging.getLogger(__name__)

_RUN_ID_MASK = (1 << 63) - 1


@dataclasses.dataclass(frozen=True)
class SecureAggregationSettings:
    """The run-level settings of secure aggregation (``secagg_*`` keys of the run config).

    Args:
        num_neighbours: Graph degree k of SecAgg+; 0 = the complete graph (SecAgg).
        threshold: Shamir threshold as a fraction of each neighbourhood (the client
            included): ``t = floor(threshold * (degree + 1)) + 1``, at least 2.
        clip: Each element of a client's vector is clipped to ``[-clip, clip]``.
        bits: Ring Z_{2^bits}: 32 or 64.
        max_weight: Upper bound of a client's weight (its example count under
            ``num-examples`` weighting).
    """

    num_neighbours: int = 0
    threshold: float = 0.5
    clip: float = 1.0
    bits: int = 32
    max_weight: float = 1_000.0

    def __post_init__(self) -> None:
        if self.num_neighbours < 0:
            raise ValueError(f"secagg num_neighbours = {self.num_neighbours}, expected >= 0 "
                             "(0 = complete graph)")
        if not 0 < self.threshold < 1:
            raise ValueError(f"secagg threshold = {self.threshold}, expected a fraction in (0, 1)")

    @classmethod
    def from_run_config(cls, cfg: Any) -> SecureAggregationSettings:
        """The settings from a :class:`~fedkit.config.RunConfig`."""
        return cls(num_neighbours=cfg.secagg_neighbours, threshold=cfg.secagg_threshold,
                   clip=cfg.secagg_clip, bits=cfg.secagg_bits, max_weight=cfg.secagg_max_weight)

    def protocol_config(self, num_clients: int, vector_length: int, *, round_id: int,
                        run_id: int, weighted: bool = True) -> SecAggConfig:
        """The :class:`SecAggConfig` of one round with ``num_clients`` selected clients.

        Unweighted rounds (every weight 1) use ``max_weight = 1``: values are scaled by
        ``weight / max_weight`` before quantisation, so a larger bound would only cost
        precision.
        """
        neighbours = self.num_neighbours or None
        degree = neighbourhood_size(num_clients, neighbours)
        threshold = min(degree + 1, max(2, math.floor(self.threshold * (degree + 1)) + 1))
        return SecAggConfig(num_clients=num_clients, vector_length=vector_length,
                            threshold=threshold, num_neighbours=neighbours, clip=self.clip,
                            bits=self.bits, max_weight=self.max_weight if weighted else 1.0,
                            round_id=round_id,
                            run_id=run_id & _RUN_ID_MASK)


class _Stages:
    """Book-keeping of one round: who is still in, who failed and why, time and bytes."""

    def __init__(self, grid: Grid, nodes: Mapping[int, int], server_round: int,
                 timeout: float | None) -> None:
        self.grid, self.nodes, self.round, self.timeout = grid, dict(nodes), server_round, timeout
        self.failed: dict[int, str] = {}
        self.seconds: dict[str, float] = {}
        self.up: dict[str, int] = {}
        self.down: dict[str, int] = {}

    def fail(self, client_id: int, stage: Stage, reason: str) -> None:
        self.failed[client_id] = f"{stage.value}: {reason}"
        logger.warning("secure aggregation round %s: client %s dropped at %s: %s", self.round,
                       client_id, stage.value, reason)

    def exchange(self, stage: Stage, contents: Mapping[int, RecordDict]) -> dict[int, Message]:
        """Send one message per client; return the replies by client id (errors dropped)."""
        start = time.perf_counter()
        sent: dict[int, Message] = {}
        for cid, content in contents.items():
            sent[cid] = Message(content, self.nodes[cid], "train", group_id=str(self.round))
        self.down[stage.value] = sum(
            len(c.config_records[SECAGG_RECORD]["payload"]) for c in contents.values())
        replies = list(self.grid.send_and_receive(list(sent.values()), timeout=self.timeout))
        by_id = {msg.metadata.message_id: cid for cid, msg in sent.items()}
        out: dict[int, Message] = {}
        for reply in replies:
            cid = by_id.get(reply.metadata.reply_to_message_id)
            if cid is None or cid in out:
                logger.warning("secure aggregation round %s: ignored an unexpected or duplicate "
                               "reply at %s", self.round, stage.value)
                continue
            if reply.metadata.src_node_id != self.nodes[cid]:
                self.fail(cid, stage, f"reply came from node {reply.metadata.src_node_id}, "
                                      f"expected node {self.nodes[cid]}")
                continue
            if reply.has_error():
                self.fail(cid, stage, f"client error: {reply.error.reason}")
                continue
            out[cid] = reply
        for cid in set(sent) - set(out) - set(self.failed):
            self.fail(cid, stage, "no reply (timed out or node unavailable)")
        self.seconds[stage.value] = time.perf_counter() - start
        return out

    def accept(self, stage: Stage, server: SecAggServer, replies: Mapping[int, Message]
               ) -> None:
        """Hand each reply's protocol message to the server; drop the invalid ones."""
        start = time.perf_counter()
        received = 0
        for cid, reply in sorted(replies.items()):
            try:
                payload = read_reply(reply, stage)
                received += len(payload)
                message = decode_message(payload)
                if message.client_id != cid:
                    raise SecAggError(f"protocol message names client {message.client_id}; "
                                      "one node cannot speak for another")
                server.receive(message)
            except SecAggError as exc:
                self.fail(cid, stage, str(exc))
        self.up[stage.value] = received
        self.seconds[stage.value] += time.perf_counter() - start


class SecureAggregation:
    """Runs one round's training under secure aggregation (see the module docstring)."""

    def __init__(self, settings: SecureAggregationSettings) -> None:
        self.settings = settings

    def run(self, grid: Grid, messages: Sequence[tuple[Message, int]], *, spec: VectorSpec,
            vector_length: int, server_round: int, timeout: float | None = None) -> SecureSum:
        """Run the four stages with the clients of ``messages``; return the unmasked sum.

        Args:
            grid: The grid.
            messages: The strategy's train messages, each with its client id.
            spec: How clients form their vectors.
            vector_length: Number of values in a client's vector (the model size).
            server_round: The round (bound into every key as the protocol's round id).
            timeout: Per-stage timeout of ``send_and_receive``.
        """
        nodes = {cid: msg.metadata.dst_node_id for msg, cid in messages}
        content = {cid: msg.content for msg, cid in messages}
        book = _Stages(grid, nodes, server_round, timeout)
        trained: list[int] = []
        state_lost: list[int] = []

        def outcome(total: np.ndarray | None, weight: float, contributors, aborted) -> SecureSum:
            return SecureSum(total, weight, tuple(sorted(contributors)), tuple(sorted(trained)),
                             dict(book.failed), tuple(sorted(state_lost)), aborted,
                             dict(book.seconds), dict(book.up), dict(book.down))

        if len(nodes) < 2:
            reason = (f"secure aggregation needs at least 2 clients in a round, "
                      f"{len(nodes)} selected")
            logger.error("round %s aborted: %s", server_round, reason)
            return outcome(None, 0.0, (), reason)
        config = self.settings.protocol_config(len(nodes), vector_length, round_id=server_round,
                                               run_id=int(getattr(grid.run, "run_id", 0) or 0),
                                               weighted=spec.weighting != "uniform")
        server = SecAggServer(config, client_ids=nodes)

        def request(stage: Stage, cid: int, payload: bytes = b"") -> RecordDict:
            return RecordDict({SECAGG_RECORD: request_record(stage, config, cid, payload)})

        try:
            replies = book.exchange(Stage.ADVERTISE_KEYS,
                                    {cid: request(Stage.ADVERTISE_KEYS, cid) for cid in nodes})
            book.accept(Stage.ADVERTISE_KEYS, server, replies)
            server.broadcast_keys()
            replies = book.exchange(Stage.SHARE_KEYS, {
                cid: request(Stage.SHARE_KEYS, cid, server.keys_for(cid).to_bytes())
                for cid in sorted(replies) if cid not in book.failed})
            book.accept(Stage.SHARE_KEYS, server, replies)
            routed = server.route_shares()
            masked_requests = {}
            for cid, shares in routed.items():
                record = request_record(Stage.MASKED_INPUT, config, cid, shares.to_bytes(), spec)
                masked_requests[cid] = RecordDict({**dict(content[cid].items()),
                                                   SECAGG_RECORD: record})
            trained.extend(masked_requests)
            replies = book.exchange(Stage.MASKED_INPUT, masked_requests)
            for cid in [c for c, r in replies.items() if SECAGG_RECORD not in r.content]:
                metrics = replies.pop(cid).content.metric_records.get(METRICS_KEY, {})
                if int(metrics.get(STATE_LOST_KEY, 0)):
                    state_lost.append(cid)
                    book.fail(cid, Stage.MASKED_INPUT, "client lost its state (state-lost)")
            book.accept(Stage.MASKED_INPUT, server, replies)
            unmask = server.request_unmask()
            payload = unmask.to_bytes()
            replies = book.exchange(Stage.UNMASK, {
                cid: request(Stage.UNMASK, cid, payload) for cid in unmask.alive})
            book.accept(Stage.UNMASK, server, replies)
            start = time.perf_counter()
            result = server.aggregate()
            book.seconds[Stage.UNMASK.value] += time.perf_counter() - start
        except SecAggAbort as exc:
            logger.error("secure aggregation round %s aborted: %s", server_round, exc)
            return outcome(None, 0.0, (), str(exc))
        total = result.weighted_sum / spec.prescale
        return outcome(total, result.total_weight, result.survivors, None)


def secure_train_fn(strategy: FedkitStrategy, grid: Grid, settings: SecureAggregationSettings,
                    timeout: float | None = None):
    """A :data:`~fedkit.flower.apps.loop.TrainFn` that trains each round under secure aggregation.

    Raises:
        ValueError: If ``strategy`` needs individual client updates.
    """
    strategy.enable_secure_aggregation(settings.clip)
    aggregation = SecureAggregation(settings)

    def train(server_round: int, messages: list[Message]):
        outcome = aggregation.run(grid, strategy.sent_messages(),
                                  spec=strategy.secure_vector_spec(server_round),
                                  vector_length=strategy.vector_length,
                                  server_round=server_round, timeout=timeout)
        return strategy.aggregate_secure(server_round, outcome)

    return train
