"""fedkit's in-process grid: the real ServerApp and ClientApp in one process, no Ray, no network.

:class:`InProcessGrid` implements Flower's ``Grid`` by calling the ClientApp object directly
for every pushed message, with one persistent ``Context`` per node (``node_config`` holds
``partition-id`` and ``num-partitions``, as under Flower's Simulation Engine; ``state``
persists across messages, as in every Flower runtime). Messages are deep-copied on delivery
(a strategy may send one RecordDict object to many nodes). An exception in the ClientApp
becomes an error reply (``CLIENT_APP_RAISED_EXCEPTION``), as in Flower.

It relies on Flower internals (the message-id attribute, written by
:func:`assign_message_id`, and ``TaskIdentity``; see ``docs/design.md``, "Runtimes"), which is
why flwr is pinned to 1.42.x. :func:`~fedkit.flower.runtime.engines.run_inprocess` runs the
apps on this grid or on the batched one.

References:
    Flower 1.42 ``flwr.superlink.grid.InMemoryGrid`` (the interface it mirrors).
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from fedkit.seeding import numpy_rng

__all__ = ["InProcessGrid", "RUN_ID", "SERVER_NODE_ID", "assign_message_id"]

logger = logging.getLogger(__name__)

SERVER_NODE_ID = 1
RUN_ID = 1


def assign_message_id(msg: Message, message_id: str | None = None) -> str:
    """Give ``msg`` a message id (a fresh random one unless given), as a SuperLink does.

    Flower's ``Metadata.message_id`` is read-only outside Flower; this writes the attribute
    behind it (Flower 1.42 internals, hence the pin).

    Returns:
        The id.
    """
    message_id = uuid.uuid4().hex if message_id is None else message_id
    msg.metadata.__dict__["_message_id"] = message_id
    return message_id


class InProcessGrid(Grid):
    """A Grid whose nodes are ClientApp calls in this process.

    Args:
        client_app: The ClientApp (or any ``(Message, Context) -> Message`` callable).
        num_nodes: Number of virtual nodes; node i has ``partition-id`` i.
        run_config: The run config every node's Context carries.
        seed: Seeds the (random-looking, 63-bit) node ids, which -- as in Flower -- are not
            the partition ids.
    """

    runtime_name = "inprocess"

    def __init__(
        self,
        client_app: Callable[[Message, Context], Message],
        *,
        num_nodes: int,
        run_config: Mapping[str, Any],
        seed: int = 0,
    ) -> None:
        if num_nodes < 1:
            raise ValueError(f"num_nodes = {num_nodes}, expected >= 1")
        self.client_app = client_app
        # This process is the server: Flower stamps run and node ids from TaskIdentity on
        # every Message it builds.
        TaskIdentity.task_id = 1
        TaskIdentity.run_id = RUN_ID
        TaskIdentity.node_id = SERVER_NODE_ID
        rng = numpy_rng(seed, "inprocess-node-ids")
        ids: list[int] = []
        while len(ids) < num_nodes:
            candidate = int(rng.integers(2, 2**63 - 1))
            if candidate not in ids:
                ids.append(candidate)
        self.contexts: dict[int, Context] = {
            node_id: Context(
                run_id=RUN_ID,
                node_id=node_id,
                node_config={"partition-id": i, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config=dict(run_config),
            )
            for i, node_id in enumerate(ids)
        }
        self._replies: dict[str, Message] = {}
        self._run = Run.create_empty(RUN_ID)

    # -- Grid interface -------------------------------------------------------------------
    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg_id = assign_message_id(msg)
            ids.append(msg_id)
            self._replies[msg_id] = self._deliver(msg)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(m) for m in message_ids if m in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))

    # -- delivery -------------------------------------------------------------------------
    def _deliver(self, msg: Message) -> Message:
        node_id = msg.metadata.dst_node_id
        context = self.contexts.get(node_id)
        if context is None:
            return self._error(msg, ErrorCode.NODE_UNAVAILABLE, f"node {node_id} does not exist")
        delivered = copy.deepcopy(msg)
        try:
            reply = self.client_app(delivered, context)
        except Exception as exc:  # noqa: BLE001 - a client failure is a reply, as in Flower
            logger.debug("ClientApp on node %s raised", node_id, exc_info=True)
            return self._error(msg, ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                               f"{type(exc).__name__}: {exc}")
        assign_message_id(reply)
        return reply

    @staticmethod
    def _error(msg: Message, code: int, reason: str) -> Message:
        reply = Message(Error(code=code, reason=reason), reply_to=msg)
        assign_message_id(reply)
        return reply
