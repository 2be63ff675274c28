"""Availability at the grid boundary (docs/design.md, "Principles"; docs/availability.md).

:class:`AvailabilityGrid` wraps any Flower ``Grid`` so that in round r ``get_node_ids()``
returns only the nodes whose stable client id the availability model says is online. A
strategy therefore cannot tell a simulated scenario from reality, and every strategy and every
runtime (fedkit's in-process grid, Flower's Simulation Engine) sees the same online set. A
message addressed to an offline node is not delivered; it is answered with a
``NODE_UNAVAILABLE`` error reply, as Flower answers for a node that went away.

The round is set by the server loop (``before_round``) before the strategy configures it.
Node ids are resolved to client ids through the shared :class:`ClientDirectory`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from fedkit.algorithms.directory import ClientDirectory
from fedkit.availability import AvailabilityModel
from fedkit.flower.runtime.inprocess import assign_message_id

__all__ = ["AvailabilityGrid"]


class AvailabilityGrid(Grid):
    """A grid that exposes only the clients online in the current round.

    Args:
        inner: The grid that reaches every node.
        model: The availability model (keyed by stable client id).
        directory: Node-id to client-id map, shared with the strategy.
    """

    def __init__(self, inner: Grid, model: AvailabilityModel,
                 directory: ClientDirectory) -> None:
        self.inner = inner
        self.model = model
        self.directory = directory
        self.server_round = 1
        self._undelivered: dict[str, Message] = {}
        self.runtime_name = getattr(inner, "runtime_name", "flower")

    def set_round(self, server_round: int) -> None:
        """Make ``server_round``'s availability current."""
        self.server_round = server_round

    def online_clients(self) -> np.ndarray:
        """(N,) bool: the clients online in the current round."""
        return np.asarray(self.model.available(self.server_round), dtype=bool)

    def _online_nodes(self) -> set[int]:
        online = self.online_clients()
        return {node for client, node in self.directory.online(self.inner).items()
                if online[client]}

    # -- Grid interface -------------------------------------------------------------------
    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        online = self._online_nodes()
        return [n for n in self.inner.get_node_ids() if n in online]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        online = self._online_nodes()
        deliver = [m for m in messages if m.metadata.dst_node_id in online]
        ids = list(self.inner.push_messages(deliver))
        for msg in messages:
            if msg.metadata.dst_node_id in online:
                continue
            msg_id = f"offline-{len(self._undelivered)}-{self.server_round}-{id(msg)}"
            assign_message_id(msg, msg_id)
            reply = Message(Error(code=ErrorCode.NODE_UNAVAILABLE,
                                  reason=f"node {msg.metadata.dst_node_id} is offline in round "
                                         f"{self.server_round} (availability scenario)"),
                            reply_to=msg)
            self._undelivered[msg_id] = reply
            ids.append(msg_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        message_ids = list(message_ids)
        local = [self._undelivered.pop(m) for m in message_ids if m in self._undelivered]
        remote = [m for m in message_ids if not m.startswith("offline-")]
        return [*local, *(self.inner.pull_messages(remote) if remote else [])]

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        online = self._online_nodes()
        deliver = [m for m in messages if m.metadata.dst_node_id in online]
        offline = [m for m in messages if m.metadata.dst_node_id not in online]
        replies = list(self.inner.send_and_receive(deliver, timeout=timeout)) if deliver else []
        if offline:
            replies.extend(self.pull_messages(self.push_messages(offline)))
        return replies
