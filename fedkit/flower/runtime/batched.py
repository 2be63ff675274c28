"""The batched in-process grid: the messages a ClientApp declares batchable run together.

:class:`BatchedInProcessGrid` is :class:`~fedkit.flower.runtime.inprocess.InProcessGrid` with one
change: for the messages pushed together it asks the ClientApp, per message type, for its batch
handler (:func:`~fedkit.flower.runtime.batching.batch_handler`, the handler wrapped in the
app's mods). The messages that handler ``accepts`` are executed in one ``handler.run`` call on
the grid's ``device``; every other message goes through the ClientApp one at a time, as on the
sequential grid. The grid knows nothing of the messages' meaning: what can be batched, and how
each reply is built, is the app's (and its mods') business. fedkit's ClientApp batches its
train messages (:mod:`fedkit.flower.apps.batched_train`), secure aggregation included
(:mod:`fedkit.flower.secagg.batching`).

Rules of delivery:

* A push in which some node receives more than one message runs one message at a time: a
  node's messages must see each other's effects on its ``context.state`` in order.
* Messages a handler declines run first, through the ClientApp, then each message type's
  batch, in the order of the types' first messages; nodes are independent, so this order is
  not observable.
* A ``run`` that raises, instead of answering a failed item with an error reply, makes every
  item of that batch an error reply (``CLIENT_APP_RAISED_EXCEPTION``); it is not retried one
  at a time, since it may already have changed some nodes' state.

Why a message type runs one at a time (no handler registered, a mod declines, a node with
several messages) is logged once per grid at INFO.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flwr.app import Context, Message

from fedkit.flower.runtime.batching import BatchHandler, BatchItem, batch_handler, error_reply
from fedkit.flower.runtime.inprocess import InProcessGrid, assign_message_id

__all__ = ["BatchedInProcessGrid"]

logger = logging.getLogger(__name__)


class BatchedInProcessGrid(InProcessGrid):
    """An in-process grid that executes batchable messages together.

    Args:
        client_app: The ClientApp; its batch handlers (if any) decide what is batched.
        num_nodes: Number of virtual nodes.
        run_config: The run config of every node.
        seed: Seeds the node ids.
        device: Where batched computations run (``"cpu"``, ``"cuda"``, ...); passed to every
            handler's ``run``.
    """

    runtime_name = "inprocess-batched"

    def __init__(self, client_app: Callable[[Message, Context], Message], *, num_nodes: int,
                 run_config: Mapping[str, Any], seed: int = 0, device: str = "cpu") -> None:
        super().__init__(client_app, num_nodes=num_nodes, run_config=run_config, seed=seed)
        self.device = device
        self._handlers: dict[str, BatchHandler | None] = {}
        self._logged: set[tuple[str, str]] = set()

    def _log_once(self, message_type: str, reason: str) -> None:
        if (message_type, reason) not in self._logged:
            self._logged.add((message_type, reason))
            logger.info("batched engine: running %r messages one at a time (%s)",
                        message_type, reason)

    def _handler(self, message_type: str) -> BatchHandler | None:
        if message_type not in self._handlers:
            handler, reason = batch_handler(self.client_app, message_type)
            if handler is None:
                self._log_once(message_type, reason)
            self._handlers[message_type] = handler
        return self._handlers[message_type]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        ids = [assign_message_id(msg) for msg in messages]
        nodes = [msg.metadata.dst_node_id for msg in messages]
        if len(set(nodes)) < len(nodes):
            for msg in messages:
                self._log_once(msg.metadata.message_type,
                               "a node receives several messages in one push")
            for msg_id, msg in zip(ids, messages, strict=True):
                self._replies[msg_id] = self._deliver(msg)
            return ids
        batches: dict[str, tuple[BatchHandler, list[str], list[BatchItem]]] = {}
        for msg_id, msg in zip(ids, messages, strict=True):
            message_type = msg.metadata.message_type
            context = self.contexts.get(msg.metadata.dst_node_id)
            handler = None if context is None else self._handler(message_type)
            if handler is not None and handler.accepts(msg, context):
                _, batch_ids, items = batches.setdefault(message_type, (handler, [], []))
                batch_ids.append(msg_id)
                items.append((msg, context))
            else:
                self._replies[msg_id] = self._deliver(msg)
        for message_type, (handler, batch_ids, items) in batches.items():
            replies = self._run_batch(message_type, handler, items)
            for msg_id, reply in zip(batch_ids, replies, strict=True):
                assign_message_id(reply)
                self._replies[msg_id] = reply
        return ids

    def _run_batch(self, message_type: str, handler: BatchHandler,
                   items: list[BatchItem]) -> list[Message]:
        try:
            replies = list(handler.run(items, self.device))
        except Exception as exc:  # noqa: BLE001 - a client failure is a reply, as in Flower
            logger.warning("batched engine: the batch handler of %r raised on %d messages; "
                           "each gets an error reply", message_type, len(items), exc_info=True)
            return [error_reply(msg, exc) for msg, _ in items]
        if len(replies) != len(items):
            raise RuntimeError(f"the batch handler of {message_type!r} returned "
                               f"{len(replies)} replies for {len(items)} messages, expected "
                               "one per message; the round cannot continue")
        return replies
