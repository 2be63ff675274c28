"""Availability at the grid boundary (docs/design.md, "Principles"; docs/availability.md).

:class:`AvailabilityGrid` wraps any Flower ``Grid`` so that in round r ``get_node_ids()``
returns only the nodes whose stable client id the availability model says is online. A
strategy therefore cannot tell a simulated scenario from reality, and every strategy and every
runtime (fedkit's in-process grid, Flower's Simulation Engine) sees the same online set. A
message addressed to an offline node is not delivered; it is answered with a
``NODE_UNAVAILABLE`` error reply, as Flower answers for a node that went away.

**Which round.** A loop that knows the round says so: fedkit's loop calls :meth:`set_round`
before the strategy configures round r (``before_round``), and from the first call on the
grid follows only :meth:`set_round` (explicit beats inferred). Under any other loop -- Flower's
``Strategy.start`` with a fedkit strategy or one of Flower's own -- the grid learns the round
from what passes through it, in the order ``Strategy.start`` calls it (configure_train ->
``get_node_ids`` -> train exchange -> configure_evaluate -> ``get_node_ids`` -> evaluate
exchange, which it makes even with no messages):

1. It starts in round 1.
2. A message that carries a later round r -- ``group_id = str(r)`` (fedkit's strategies and
   exchanges) or an integer ``server-round`` in a ConfigRecord (Flower's strategies leave
   ``group_id`` empty and set ``config["server-round"]``) -- makes r current before delivery.
3. A round's training is its exchanges of ``train`` messages (several under secure
   aggregation; an empty exchange stands for a round with nobody to train). The first
   exchange after them of ``evaluate`` messages, or with no messages, closes the round: from
   then on ``get_node_ids`` answers for r + 1, so configure_train of the next round samples
   the next round's online clients before its messages exist. Federated evaluation of round
   r sees round r's clients. Messages of other kinds (``query.*``) change nothing.

A loop that neither calls :meth:`set_round` nor makes the evaluate exchange still delivers
only to the clients online in each message's round (rule 2), but selects each round's
clients from the previous round's online set; call :meth:`set_round` there.
Node ids are resolved to client ids through a :class:`ClientDirectory` (``query.client_id``:
the ClientApp needs :func:`fedkit.flower.mods.client_id_mod`), shared with a fedkit strategy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import Error, Message
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from fedkit.algorithms.directory import ClientDirectory
from fedkit.availability import AvailabilityModel
from fedkit.flower.runtime.inprocess import assign_message_id
from fedkit.flower.runtime.wrapper import GridWrapper

__all__ = ["AvailabilityGrid", "message_round"]


class AvailabilityGrid(GridWrapper):
    """A grid that exposes only the clients online in the current round.

    Args:
        inner: The grid that reaches every node.
        model: The availability model (keyed by stable client id).
        directory: Node-id to client-id map, shared with a fedkit strategy (default: a
            directory of its own for ``model.num_clients`` clients).

    Example::

        grid = AvailabilityGrid(grid, availability_model)
        FedAvg().start(grid=grid, initial_arrays=arrays, num_rounds=10)
    """

    def __init__(self, inner: Grid, model: AvailabilityModel,
                 directory: ClientDirectory | None = None) -> None:
        super().__init__(inner)
        self.model = model
        self.directory = directory if directory is not None else ClientDirectory(
            model.num_clients)
        self.server_round = 1
        self._explicit = False  # set_round was called: infer nothing
        self._trained = False  # the current round's training exchange has been made
        self._undelivered: dict[str, Message] = {}

    def set_round(self, server_round: int) -> None:
        """Make ``server_round``'s availability current (and stop inferring the round)."""
        self.server_round = server_round
        self._explicit = True

    # -- the round, inferred from the traffic (module docstring) ---------------------------
    def _before_exchange(self, messages: list[Message]) -> bool:
        """Learn from ``messages`` before delivery; True if the exchange closes the round."""
        if self._explicit:
            return False
        rounds = [r for r in map(message_round, messages) if r is not None]
        if rounds and max(rounds) > self.server_round:
            self.server_round, self._trained = max(rounds), False
        kinds = {m.metadata.message_type.split(".")[0] for m in messages}
        if "train" in kinds or (not messages and not self._trained):
            self._trained = True
            return False
        return self._trained and (not messages or "evaluate" in kinds)

    def _close_round(self) -> None:
        self.server_round += 1
        self._trained = False

    def online_clients(self) -> np.ndarray:
        """(N,) bool: the clients online in the current round."""
        return np.asarray(self.model.available(self.server_round), dtype=bool)

    def _online_nodes(self) -> set[int]:
        online = self.online_clients()
        return {node for client, node in self.directory.online(self.inner).items()
                if online[client]}

    # -- Grid interface (the rest passes through) -----------------------------------------
    def get_node_ids(self) -> Iterable[int]:
        online = self._online_nodes()
        return [n for n in self.inner.get_node_ids() if n in online]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        closes = self._before_exchange(messages)
        ids = self._push(messages)
        if closes:
            self._close_round()
        return ids

    def _push(self, messages: list[Message]) -> list[str]:
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
        closes = self._before_exchange(messages)
        online = self._online_nodes()
        deliver = [m for m in messages if m.metadata.dst_node_id in online]
        offline = [m for m in messages if m.metadata.dst_node_id not in online]
        replies = list(self.inner.send_and_receive(deliver, timeout=timeout)) if deliver else []
        if offline:
            replies.extend(self.pull_messages(self._push(offline)))
        if closes:
            self._close_round()
        return replies


def message_round(msg: Message) -> int | None:
    """The server round a message belongs to, if it says: its ``group_id`` when that is a
    positive integer, else an integer ``server-round`` in one of its ConfigRecords."""
    group = msg.metadata.group_id
    if group.isdecimal() and int(group) > 0:
        return int(group)
    if not msg.has_content():
        return None
    for record in msg.content.config_records.values():
        value = record.get("server-round")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
