"""fedkit's in-process grid: the real ServerApp and ClientApp in one process, no Ray, no network.

:class:`InProcessGrid` implements Flower's ``Grid`` by calling the ClientApp object directly
for every pushed message, with one persistent ``Context`` per node (``node_config`` holds
``partition-id`` and ``num-partitions``, as under Flower's Simulation Engine; ``state``
persists across messages, as in every Flower runtime). Messages are deep-copied on delivery
(a strategy may send one RecordDict object to many nodes). An exception in the ClientApp
becomes an error reply (``CLIENT_APP_RAISED_EXCEPTION``), as in Flower.

It relies on Flower internals -- the ``_message_id`` metadata attribute Flower's grids set,
and ``flwr.supercore.task_identity.TaskIdentity``, without which constructing a Message
raises ``TaskIdentity.run_id is not set`` -- which is why flwr is pinned to 1.42.x.

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
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from fedkit.seeding import numpy_rng

__all__ = ["ENGINES", "InProcessGrid", "run_inprocess", "SERVER_NODE_ID"]

logger = logging.getLogger(__name__)

SERVER_NODE_ID = 1
ENGINES = ("sequential", "batched")
_RUN_ID = 1


def _message_id(msg: Message) -> str:
    new_id = uuid.uuid4().hex
    msg.metadata.__dict__["_message_id"] = new_id
    return new_id


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
        TaskIdentity.run_id = _RUN_ID
        TaskIdentity.node_id = SERVER_NODE_ID
        rng = numpy_rng(seed, "inprocess-node-ids")
        ids: list[int] = []
        while len(ids) < num_nodes:
            candidate = int(rng.integers(2, 2**63 - 1))
            if candidate not in ids:
                ids.append(candidate)
        self.contexts: dict[int, Context] = {
            node_id: Context(
                run_id=_RUN_ID,
                node_id=node_id,
                node_config={"partition-id": i, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config=dict(run_config),
            )
            for i, node_id in enumerate(ids)
        }
        self._replies: dict[str, Message] = {}
        self._run = Run.create_empty(_RUN_ID)

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
            msg_id = _message_id(msg)
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
        _message_id(reply)
        return reply

    @staticmethod
    def _error(msg: Message, code: int, reason: str) -> Message:
        reply = Message(Error(code=code, reason=reason), reply_to=msg)
        _message_id(reply)
        return reply


def run_inprocess(
    run_config: Mapping[str, Any],
    *,
    num_nodes: int,
    server_app: ServerApp | None = None,
    client_app: ClientApp | None = None,
    seed: int = 0,
    engine: str = "batched",
    device: str = "cpu",
) -> InProcessGrid:
    """Run ``server_app`` against ``num_nodes`` in-process ClientApps; return the grid.

    Defaults to fedkit's own ServerApp and ClientApp. ``engine = "batched"`` trains each
    round's clients together (:mod:`fedkit.flower.runtime.batched`) on ``device``.

    Raises:
        ValueError: On an unknown engine.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine = {engine!r}, expected one of {list(ENGINES)}")
    if server_app is None:
        from fedkit.flower.apps.server_app import app as server_app
    if client_app is None:
        from fedkit.flower.apps.client_app import app as client_app
    if engine == "batched":
        from fedkit.flower.runtime.batched import BatchedInProcessGrid

        grid: InProcessGrid = BatchedInProcessGrid(
            client_app, num_nodes=num_nodes, run_config=run_config, seed=seed, device=device)
    else:
        grid = InProcessGrid(client_app, num_nodes=num_nodes, run_config=run_config, seed=seed)
    server_context = Context(run_id=_RUN_ID, node_id=SERVER_NODE_ID, node_config={},
                             state=RecordDict(), run_config=dict(run_config))
    server_app(grid, server_context)
    return grid
