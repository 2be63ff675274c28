"""One exchange of the submodel task over ``grid.send_and_receive``, with its book-keeping.

:class:`Exchanges` sends one message per client of a round, collects the replies by stable
client id and records, per phase, the wall time and the bytes each client received and sent
(:func:`~fedkit.flower.submodel.records.content_bytes`). A client that fails, times out,
answers from another node or with an error is dropped for the rest of the round with a logged
reason (as :mod:`fedkit.flower.secagg.workflow` does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from fedkit.flower.submodel.records import TRAIN_TYPE, Phase, content_bytes

__all__ = ["Exchanges"]

logger = logging.getLogger(__name__)


class Exchanges:
    """The exchanges of one round with the clients ``nodes`` (``{client id: node id}``)."""

    def __init__(self, grid: Grid, nodes: Mapping[int, int], server_round: int,
                 timeout: float | None) -> None:
        self.grid, self.nodes = grid, dict(nodes)
        self.round, self.timeout = server_round, timeout
        self.failed: dict[int, str] = {}
        self.seconds: dict[str, float] = {}
        self.bytes_down: dict[int, int] = dict.fromkeys(self.nodes, 0)
        self.bytes_up: dict[int, int] = dict.fromkeys(self.nodes, 0)
        self.phase_down: dict[str, int] = {}
        self.phase_up: dict[str, int] = {}
        self.count = 0  # round trips

    def fail(self, client_id: int, phase: Phase | str, reason: str) -> None:
        """Drop ``client_id`` from the round, logging why."""
        name = phase.value if isinstance(phase, Phase) else phase
        self.failed.setdefault(client_id, f"{name}: {reason}")
        logger.warning("submodel round %s: client %s dropped at %s: %s", self.round,
                       client_id, name, reason)

    def send(self, phase: Phase, contents: Mapping[int, RecordDict],
             message_type: str = TRAIN_TYPE) -> dict[int, Message]:
        """Send ``contents[cid]`` to each client; return the good replies by client id."""
        start = time.perf_counter()
        self.count += 1
        sent: dict[int, Message] = {}
        for cid, content in contents.items():
            size = content_bytes(content)
            self.bytes_down[cid] += size
            self.phase_down[phase.value] = self.phase_down.get(phase.value, 0) + size
            sent[cid] = Message(content, self.nodes[cid], message_type, group_id=str(self.round))
        replies = list(self.grid.send_and_receive(list(sent.values()), timeout=self.timeout))
        by_id = {msg.metadata.message_id: cid for cid, msg in sent.items()}
        out: dict[int, Message] = {}
        for reply in replies:
            cid = by_id.get(reply.metadata.reply_to_message_id)
            if cid is None or cid in out:
                logger.warning("submodel round %s: ignored an unexpected or duplicate reply at "
                               "%s", self.round, phase.value)
                continue
            if reply.metadata.src_node_id != self.nodes[cid]:
                self.fail(cid, phase, f"reply came from node {reply.metadata.src_node_id}, "
                                      f"expected node {self.nodes[cid]}")
                continue
            if reply.has_error():
                self.fail(cid, phase, f"client error: {reply.error.reason}")
                continue
            size = content_bytes(reply.content)
            self.bytes_up[cid] += size
            self.phase_up[phase.value] = self.phase_up.get(phase.value, 0) + size
            out[cid] = reply
        for cid in set(sent) - set(out):
            if cid not in self.failed:
                self.fail(cid, phase, "no reply (timed out or node unavailable)")
        self.seconds[phase.value] = self.seconds.get(phase.value, 0.0) + (
            time.perf_counter() - start)
        return out

    def alive(self, client_ids) -> list[int]:
        """The ids among ``client_ids`` not dropped, sorted."""
        return sorted(c for c in client_ids if c not in self.failed)

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
