"""One exchange over ``grid.send_and_receive``: send, collect, drop, account.

:class:`Exchange` is the only place where fedkit's staged workflows (secure training rounds,
the private set union, the submodel upload and the submodel task's other phases) talk to the
grid. It sends one message per client of a round, matches each reply to the message it
answers, and drops a client -- for the rest of the round, with a logged reason -- that does
not reply, replies with an error, or replies from another node than the one it was sent to. It
records, per phase, the wall time and the bytes each client received and sent, as Flower
serialises them (:func:`~fedkit.flower.secagg.records.content_bytes`).

:class:`FlowerStages` carries the stages of one secure-aggregation instance
(:func:`fedkit.privacy.secagg.run_stages`) over an :class:`Exchange`: it wraps each protocol
message in the exchange record (:mod:`fedkit.flower.secagg.records`), with the instance's
parameters in its opening request only, adds what the caller's :class:`StageHooks` add to a
stage, and reads the protocol bytes out of each reply.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from fedkit.flower.secagg.records import (
    EXCHANGE_RECORD,
    content_bytes,
    reply_payload,
    request_record,
)
from fedkit.privacy.secagg import SecAggConfig, SecAggProtocolError, Stage

__all__ = ["Exchange", "FlowerStages", "StageHooks"]

logger = logging.getLogger(__name__)


def _label(phase: str | enum.Enum) -> str:
    return phase.value if isinstance(phase, enum.Enum) else str(phase)


class Exchange:
    """The exchanges of one round with the clients ``nodes`` (``{client id: node id}``).

    Args:
        grid: The grid.
        nodes: Client id -> node id of every client of the round.
        server_round: The round (the messages' group id).
        timeout: Timeout of each ``send_and_receive``.
        purpose: Named in log lines (e.g. ``"secure aggregation"``).
        measure_bytes: Record the serialised size of every content (one protobuf encoding
            of each message, ~1.4 ms per 400 kB on a 2-core CPU); off, the byte counters
            stay zero.
    """

    def __init__(self, grid: Grid, nodes: Mapping[int, int], server_round: int,
                 timeout: float | None, *, purpose: str = "exchange",
                 measure_bytes: bool = True) -> None:
        self.grid, self.nodes = grid, dict(nodes)
        self.round, self.timeout, self.purpose = server_round, timeout, purpose
        self.measure_bytes = measure_bytes
        self.failed: dict[int, str] = {}
        self.seconds: dict[str, float] = {}
        self.bytes_down: dict[int, int] = dict.fromkeys(self.nodes, 0)
        self.bytes_up: dict[int, int] = dict.fromkeys(self.nodes, 0)
        self.phase_down: dict[str, int] = {}
        self.phase_up: dict[str, int] = {}
        self.count = 0  # round trips

    def fail(self, client_id: int, phase: str | enum.Enum, reason: str) -> None:
        """Drop ``client_id`` from the round, logging why (the first reason is kept)."""
        name = _label(phase)
        self.failed.setdefault(client_id, f"{name}: {reason}")
        logger.warning("%s round %s: client %s dropped at %s: %s", self.purpose, self.round,
                       client_id, name, reason)

    def alive(self, client_ids) -> list[int]:
        """The ids among ``client_ids`` not dropped, sorted."""
        return sorted(c for c in client_ids if c not in self.failed)

    def send(self, phase: str | enum.Enum, contents: Mapping[int, RecordDict],
             message_type: str = "train") -> dict[int, Message]:
        """Send ``contents[cid]`` to each client; return the good replies by client id.

        A reply that answers no message of this call, or a second reply to one, is ignored
        with a warning; a reply from another node than the addressee, an error reply and a
        missing reply drop that client.
        """
        name = _label(phase)
        start = time.perf_counter()
        self.count += 1
        sent: dict[int, Message] = {}
        for cid, content in contents.items():
            size = content_bytes(content) if self.measure_bytes else 0
            self.bytes_down[cid] += size
            self.phase_down[name] = self.phase_down.get(name, 0) + size
            sent[cid] = Message(content, self.nodes[cid], message_type, group_id=str(self.round))
        replies = list(self.grid.send_and_receive(list(sent.values()), timeout=self.timeout))
        by_id = {msg.metadata.message_id: cid for cid, msg in sent.items()}
        out: dict[int, Message] = {}
        for reply in replies:
            cid = by_id.get(reply.metadata.reply_to_message_id)
            if cid is None or cid in out:
                logger.warning("%s round %s: ignored an unexpected or duplicate reply at %s",
                               self.purpose, self.round, name)
                continue
            if reply.metadata.src_node_id != self.nodes[cid]:
                self.fail(cid, name, f"reply came from node {reply.metadata.src_node_id}, "
                                     f"expected node {self.nodes[cid]}")
                continue
            if reply.has_error():
                self.fail(cid, name, f"client error: {reply.error.reason}")
                continue
            size = content_bytes(reply.content) if self.measure_bytes else 0
            self.bytes_up[cid] += size
            self.phase_up[name] = self.phase_up.get(name, 0) + size
            out[cid] = reply
        for cid in sorted(set(sent) - set(out) - set(self.failed)):
            self.fail(cid, name, "no reply (timed out or node unavailable)")
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        return out

    def mean_bytes(self) -> tuple[float, float, dict[str, float], dict[str, float]]:
        """Bytes per client that was sent at least one message, averaged over those clients:
        ``(down, up, down by phase, up by phase)``."""
        reached = [c for c, b in self.bytes_down.items() if b]
        if not reached:
            return 0.0, 0.0, {}, {}
        n = len(reached)
        return (sum(self.bytes_down[c] for c in reached) / n,
                sum(self.bytes_up[c] for c in reached) / n,
                {k: v / n for k, v in self.phase_down.items()},
                {k: v / n for k, v in self.phase_up.items()})


@dataclasses.dataclass(frozen=True)
class StageHooks:
    """What a workflow adds to the stages of one instance (every hook optional).

    Attributes:
        fields: ``(stage, client id) -> {name: value}``, extra entries of the exchange record.
        records: ``(stage, client id) -> {name: record}``, extra records of the content
            (e.g. the round's model in the masked-input stage).
        on_reply: ``(stage, client id, reply) -> bool``, sees each reply before its protocol
            message is read; False withholds it (the hook drops the client with
            :meth:`Exchange.fail`).
    """

    fields: Callable[[Stage, int], Mapping[str, Any]] | None = None
    records: Callable[[Stage, int], Mapping[str, Any]] | None = None
    on_reply: Callable[[Stage, int, Message], bool] | None = None


class FlowerStages:
    """A :class:`~fedkit.privacy.secagg.StageTransport` over an :class:`Exchange`.

    Args:
        exchange: The round's exchange.
        config: The instance's parameters (sent with the advertise-keys request).
        phases: The exchange label of each stage (e.g. ``psu-share-keys``).
        hooks: What the workflow adds to the stages.
        message_type: Flower message type of every request.
    """

    def __init__(self, exchange: Exchange, config: SecAggConfig, *,
                 phases: Mapping[Stage, str] | None = None, hooks: StageHooks = StageHooks(),
                 message_type: str = "train") -> None:
        self.round_exchange, self.config, self.hooks = exchange, config, hooks
        self.phases = dict(phases) if phases else {s: s.value for s in Stage}
        self.message_type = message_type
        self.payload_down: dict[str, int] = {}
        self.payload_up: dict[str, int] = {}
        self._sent: dict[Stage, tuple[int, ...]] = {}
        self.seconds: dict[str, float] = {}  # per phase: building, sending, reading replies

    def sent_to(self, stage: Stage) -> tuple[int, ...]:
        """The clients that were sent ``stage``'s request, sorted."""
        return self._sent.get(stage, ())

    def _content(self, stage: Stage, cid: int, message: object | None) -> RecordDict:
        payload = b"" if message is None else message.to_bytes()
        phase = self.phases[stage]
        self.payload_down[phase] = self.payload_down.get(phase, 0) + len(payload)
        fields = self.hooks.fields(stage, cid) if self.hooks.fields else {}
        record = request_record(phase, self.round_exchange.round, cid, payload,
                                self.config if stage is Stage.ADVERTISE_KEYS else None,
                                **fields)
        extra = self.hooks.records(stage, cid) if self.hooks.records else {}
        return RecordDict({**extra, EXCHANGE_RECORD: record})

    def exchange(self, stage: Stage, requests: Mapping[int, object | None]) -> dict[int, bytes]:
        """Send the stage's requests to the clients still in; return their protocol bytes."""
        phase = self.phases[stage]
        start = time.perf_counter()
        contents = {cid: self._content(stage, cid, message)
                    for cid, message in sorted(requests.items())
                    if cid not in self.round_exchange.failed}
        self._sent[stage] = tuple(sorted(contents))
        replies = self.round_exchange.send(phase, contents, self.message_type)
        out: dict[int, bytes] = {}
        for cid, reply in sorted(replies.items()):
            if self.hooks.on_reply is not None and not self.hooks.on_reply(stage, cid, reply):
                continue
            try:
                out[cid] = reply_payload(reply, phase)
            except SecAggProtocolError as exc:
                self.round_exchange.fail(cid, phase, str(exc))
                continue
            self.payload_up[phase] = self.payload_up.get(phase, 0) + len(out[cid])
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start
        return out

    def reject(self, stage: Stage, client_id: int, reason: str) -> None:
        """The server refused the client's reply: it is out of the round."""
        self.round_exchange.fail(client_id, self.phases[stage], reason)
