"""The batched in-process grid: all train messages of a round trained in one computation.

:class:`BatchedInProcessGrid` is :class:`~fedkit.flower.runtime.inprocess.InProcessGrid` with one
change: when the grid runs fedkit's own ClientApp, the train messages pushed together (one
round) are parsed with the ClientApp's :func:`~fedkit.flower.apps.client_app.prepare_train`, their
local SGD runs together in :func:`fedkit.training.train_local_batched` (``torch.func`` over the
K clients' parameters and minibatches), and each reply is built by the ClientApp's
:func:`~fedkit.flower.apps.client_app.finish_train`. What is computed does not change -- same
minibatch streams, same replies up to float32 tolerance (tested) -- only how.

Under secure aggregation the masked-input stage messages (which carry the round's train
content) are trained together the same way and each reply is then masked by
:func:`~fedkit.flower.secagg.mod.masked_input_content`, as the ClientApp's mod would;
the other stages go through the ClientApp one message at a time.

Falls back to one message at a time, with a log line saying why, when the ClientApp is not
fedkit's, the model cannot be batched, or the batched call fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flwr.app import Context, Message, RecordDict
from flwr.common.constant import ErrorCode

from fedkit.flower.apps import client_app as fedkit_client
from fedkit.flower.apps.task import arrays_from_torch, model_template, torch_state_of
from fedkit.flower.runtime.inprocess import InProcessGrid, assign_message_id
from fedkit.flower.secagg.mod import is_secure_stage, masked_input_content
from fedkit.privacy.secagg import Stage
from fedkit.seeding import torch_generator
from fedkit.training import ClientJob, can_batch, train_local_batched

__all__ = ["BatchedInProcessGrid"]

logger = logging.getLogger(__name__)


class BatchedInProcessGrid(InProcessGrid):
    """An in-process grid that trains each round's clients together.

    Args:
        client_app: The ClientApp; batching applies only to fedkit's own.
        num_nodes: Number of virtual nodes.
        run_config: The run config of every node.
        seed: Seeds the node ids.
        device: Where the batched computation runs (``"cpu"``, ``"cuda"``, ...).
    """

    runtime_name = "inprocess-batched"

    def __init__(self, client_app: Callable[[Message, Context], Message], *, num_nodes: int,
                 run_config: Mapping[str, Any], seed: int = 0, device: str = "cpu") -> None:
        super().__init__(client_app, num_nodes=num_nodes, run_config=run_config, seed=seed)
        self.device = device
        self._warned: set[str] = set()

    def _fallback(self, reason: str) -> None:
        if reason not in self._warned:
            self._warned.add(reason)
            logger.info("batched engine: running messages one at a time (%s)", reason)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        batchable = self.client_app is fedkit_client.app
        if not batchable:
            self._fallback("the ClientApp is not fedkit's")
        ids = []
        tasks = []
        for msg in messages:
            msg_id = assign_message_id(msg)
            ids.append(msg_id)
            context = self.contexts.get(msg.metadata.dst_node_id)
            trains = msg.metadata.message_type == "train" and (
                not is_secure_stage(msg) or is_secure_stage(msg, Stage.MASKED_INPUT))
            if not batchable or not trains or context is None:
                self._replies[msg_id] = self._deliver(msg)
                continue
            # prepare_train and finish_train only read the message, so the batched path skips
            # the per-message deep copy and can share one decoded model between clients.
            try:
                task = fedkit_client.prepare_train(msg, context)
            except Exception as exc:  # noqa: BLE001 - a client failure is a reply
                self._replies[msg_id] = self._error(
                    msg, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(exc).__name__}: {exc}")
                continue
            if isinstance(task, RecordDict):
                self._replies[msg_id] = self._reply(msg, self._secured(msg, context, task))
                continue
            tasks.append((msg_id, msg, context, task))
        if tasks:
            self._train_together(tasks)
        return ids

    @staticmethod
    def _secured(msg: Message, context: Context, content: RecordDict) -> RecordDict:
        """The reply content as the ClientApp's secure-aggregation mod would make it."""
        if is_secure_stage(msg):
            return masked_input_content(msg, context, content)
        return content

    def _reply(self, msg: Message, content: RecordDict) -> Message:
        reply = Message(content, reply_to=msg)
        assign_message_id(reply)
        return reply

    def _train_together(self, tasks: list) -> None:
        first = tasks[0][3]
        cfg, data = first.cfg, first.data
        template = model_template(cfg.model, tuple(data.train.input_shape),
                                   data.train.num_classes)
        ok, why = can_batch(template)
        results = None
        if ok:
            jobs = [ClientJob(indices=data.partition[t.client_id],
                              generator=torch_generator(*t.generator_keys),
                              lr=t.lr, loss_scale=t.loss_scale) for _, _, _, t in tasks]
            decoded: dict[int, dict] = {}
            for _, _, _, t in tasks:
                if id(t.sent) not in decoded:
                    decoded[id(t.sent)] = torch_state_of(t.sent)
            states = [decoded[id(t.sent)] for _, _, _, t in tasks]
            try:
                results = train_local_batched(
                    template, states, data.train, jobs,
                    fedkit_client.local_sgd_config(cfg, first.lr), device=self.device,
                    copy_states=False)  # the replies copy them into their bytes
            except Exception as exc:  # noqa: BLE001 - fall back, never lose the round
                why = f"batched training failed: {type(exc).__name__}: {exc}"
                logger.warning("batched engine: %s; running the round one client at a time",
                               why)
        else:
            self._fallback(why)
        for i, (msg_id, msg, context, task) in enumerate(tasks):
            try:
                if results is not None:
                    state, result = results[i]
                    local = arrays_from_torch(state)
                else:
                    local, result = fedkit_client.train_task(task)
                content = fedkit_client.finish_train(task, context, local, result)
                content = self._secured(msg, context, content)
            except Exception as exc:  # noqa: BLE001 - a client failure is a reply
                self._replies[msg_id] = self._error(
                    msg, ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(exc).__name__}: {exc}")
                continue
            self._replies[msg_id] = self._reply(msg, content)
