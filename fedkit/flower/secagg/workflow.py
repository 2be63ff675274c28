"""The server side of secure aggregation on Flower: one training round under SecAgg/SecAgg+.

:class:`SecureAggregation` replaces the plain "send the train messages, collect the replies"
step of a round. Given the strategy's train messages it runs the stages of
:func:`fedkit.privacy.secagg.run_stages` (four; one more each with ``committed_graph`` and
``consistency_check``) with those
clients over one :class:`~fedkit.flower.secagg.exchange.Exchange`; the masked-input request
also carries the strategy's train content and the
:class:`~fedkit.algorithms.secure_sum.VectorSpec`, and the client
(:func:`~fedkit.flower.secagg.mod.secagg_mod`) trains, masks its update and replies with the
masked vector only.

A client that fails, times out or sends an invalid reply at any stage is dropped (logged
with the reason); the protocol recovers its masks as long as every stage keeps at least the
threshold. Below it the round aborts: the returned :class:`SecureSum` says why and the
caller leaves the model unchanged -- an explicit, logged outcome, never a silent skip.
See ``docs/secagg.md`` ("On Flower").

References:
    Bonawitz et al., CCS 2017; Bell et al., CCS 2020 (SecAgg+). Flower's
    ``SecAggPlusWorkflow`` is the legacy-API counterpart.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flwr.app import Message
from flwr.serverapp import Grid

from fedkit.algorithms.replies import METRICS_KEY, STATE_LOST_KEY
from fedkit.algorithms.secure_sum import SecureSum, VectorSpec
from fedkit.flower.secagg.exchange import Exchange, FlowerStages, StageHooks
from fedkit.flower.secagg.mod import vector_spec_fields
from fedkit.flower.secagg.records import EXCHANGE_RECORD
from fedkit.privacy.graph import neighbourhood_size
from fedkit.privacy.secagg import (
    KeyList,
    SecAggAbort,
    SecAggConfig,
    SecAggServer,
    Stage,
    run_stages,
)

__all__ = ["SecureAggregation", "SecureAggregationSettings"]

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
        committed_graph: Fix the SecAgg+ graph by commit-reveal (one more round trip, the
            reveal-nonce stage), so that colluding clients cannot choose it
            (``docs/secagg.md``, "Committed graph").
        consistency_check: Signed keys and the consistency round (one more round trip)
            against a server that shows clients different views of who dropped
            (``docs/secagg.md``, "Consistency round"); each client signs with its node's own
            key (:mod:`fedkit.flower.secagg.identity`).
        key_list: The server's copy of the operator's (public) key list, used only with
            ``consistency_check``: the server then refuses advertised keys outside the list
            or without a valid signature, so that one bad node is dropped instead of making
            every honest node refuse the roster (:class:`~fedkit.privacy.secagg.SecAggServer`).
            Robustness only: each node still checks every entry against its own list.
            ``None``: the server relays every entry.
    """

    num_neighbours: int = 0
    threshold: float = 0.5
    clip: float = 1.0
    bits: int = 32
    max_weight: float = 1_000.0
    committed_graph: bool = False
    consistency_check: bool = False
    key_list: KeyList | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.num_neighbours < 0:
            raise ValueError(f"secagg num_neighbours = {self.num_neighbours}, expected >= 0 "
                             "(0 = complete graph)")
        if not 0 < self.threshold < 1:
            raise ValueError(f"secagg threshold = {self.threshold}, expected a fraction in (0, 1)")

    @classmethod
    def from_run_config(cls, cfg: Any) -> SecureAggregationSettings:
        """The settings from a :class:`~fedkit.config.RunConfig`; reads the key list file
        ``secagg_key_list`` when it is set.

        Raises:
            SecAggConfigError: An unreadable or invalid key list file (named).
        """
        key_list = KeyList.load(cfg.secagg_key_list) if cfg.secagg_key_list else None
        return cls(num_neighbours=cfg.secagg_neighbours, threshold=cfg.secagg_threshold,
                   clip=cfg.secagg_clip, bits=cfg.secagg_bits, max_weight=cfg.secagg_max_weight,
                   committed_graph=cfg.secagg_committed_graph,
                   consistency_check=cfg.secagg_consistency_check, key_list=key_list)

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
                            run_id=run_id & _RUN_ID_MASK,
                            committed_graph=self.committed_graph,
                            consistency_check=self.consistency_check)


class SecureAggregation:
    """Runs one round's training under secure aggregation (see the module docstring)."""

    def __init__(self, settings: SecureAggregationSettings) -> None:
        self.settings = settings

    def run(self, grid: Grid, messages: Sequence[tuple[Message, int]], *, spec: VectorSpec,
            vector_length: int, server_round: int, timeout: float | None = None) -> SecureSum:
        """Run the stages with the clients of ``messages``; return the unmasked sum.

        Args:
            grid: The grid.
            messages: The strategy's train messages, each with its client id.
            spec: How clients form their vectors.
            vector_length: Number of values in a client's vector (the model size).
            server_round: The round (bound into every key as the protocol's round id).
            timeout: Per-stage timeout of ``send_and_receive``.
        """
        spec = dataclasses.replace(spec, count_clipped=True)  # a cut range is never silent
        nodes = {cid: msg.metadata.dst_node_id for msg, cid in messages}
        content = {cid: msg.content for msg, cid in messages}
        # the outcome reports protocol bytes (the transport counts them), not whole contents
        exchange = Exchange(grid, nodes, server_round, timeout, purpose="secure aggregation",
                            measure_bytes=False)
        state_lost: list[int] = []

        def on_reply(stage: Stage, cid: int, reply: Message) -> bool:
            if stage is not Stage.MASKED_INPUT or EXCHANGE_RECORD in reply.content:
                return True
            metrics = reply.content.metric_records.get(METRICS_KEY, {})
            if int(metrics.get(STATE_LOST_KEY, 0)):
                state_lost.append(cid)
                exchange.fail(cid, stage.value, "client lost its state (state-lost)")
                return False
            return True  # read as a protocol reply: refused with a clear reason

        hooks = StageHooks(
            fields=lambda stage, cid: (vector_spec_fields(spec)
                                       if stage is Stage.MASKED_INPUT else {}),
            records=lambda stage, cid: (dict(content[cid].items())
                                        if stage is Stage.MASKED_INPUT else {}),
            on_reply=on_reply)

        def outcome(total: np.ndarray | None, weight: float, contributors,
                    aborted: str | None, transport: FlowerStages | None = None,
                    server_seconds: Mapping[Stage, float] | None = None,
                    clipped: float | None = None) -> SecureSum:
            if transport is None:
                return SecureSum(total, weight, (), (), dict(exchange.failed), (), aborted,
                                 {}, {}, {})
            seconds = {stage.value: transport.seconds.get(stage.value, 0.0)
                       + (server_seconds or {}).get(stage, 0.0)
                       for stage in transport.config.stages}
            return SecureSum(total, weight, tuple(sorted(contributors)),
                             transport.sent_to(Stage.MASKED_INPUT), dict(exchange.failed),
                             tuple(sorted(state_lost)), aborted, seconds,
                             dict(transport.payload_up), dict(transport.payload_down), clipped)

        if len(nodes) < 2:
            reason = (f"secure aggregation needs at least 2 clients in a round, "
                      f"{len(nodes)} selected")
            logger.error("round %s aborted: %s", server_round, reason)
            return outcome(None, 0.0, (), reason)
        config = self.settings.protocol_config(len(nodes), vector_length + 1,  # + clip count
                                               round_id=server_round,
                                               run_id=int(getattr(grid.run, "run_id", 0) or 0),
                                               weighted=spec.weighting != "uniform")
        transport = FlowerStages(exchange, config, hooks=hooks)
        try:
            server = SecAggServer(config, client_ids=nodes, key_list=self.settings.key_list)
            run = run_stages(server, nodes, transport)
        except SecAggAbort as exc:
            logger.error("secure aggregation round %s aborted: %s", server_round, exc)
            return outcome(None, 0.0, (), str(exc), transport)
        total, weight = run.result.weighted_sum, run.result.total_weight
        clipped = float(total[-1] / (config.clip * weight)) if weight else 0.0
        if clipped > 0:
            logger.warning("secure aggregation round %s: %.3g%% of the values were cut to the "
                           "clipping range [-%g, %g] (weighted mean over %s clients); raise "
                           "secagg_clip if the updates are legitimately larger", server_round,
                           100 * clipped, config.clip, config.clip, len(run.result.survivors))
        return outcome(total[:-1] / spec.prescale, weight, run.result.survivors, None,
                       transport, run.server_seconds, clipped)
