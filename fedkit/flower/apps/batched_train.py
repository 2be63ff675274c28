"""The batch handler of fedkit's ``train`` messages: a round's clients train in one computation.

:data:`train_batch_handler` is what fedkit's ClientApp registers for ``train``
(:func:`~fedkit.flower.runtime.batching.batchable`); a grid that batches
(:class:`~fedkit.flower.runtime.batched.BatchedInProcessGrid`) hands it the round's train
messages together. It computes what the ``train`` handler computes for each message
(:mod:`fedkit.flower.apps.client_train`), only how changes:

1. :func:`~fedkit.flower.apps.client_train.prepare_train` per message (a failure is that
   message's error reply);
2. one :func:`fedkit.training.train_local_batched` call over the K clients (``torch.func``
   over their parameters and minibatches, same minibatch streams), on the grid's device,
   with one decoded model shared by the clients that received the same ArrayRecord;
3. :func:`~fedkit.flower.apps.client_train.finish_train` per reply.

FedLaAvg's client-delta messages reach it through ``fedlaavg_mod``'s batch wrapper
(:func:`fedkit.flower.apps.client_delta.wrap_batch`), as ordinary train messages.

When :func:`fedkit.training.can_batch` says the model cannot be batched, or the batched call
fails, step 2 trains the clients one at a time
(:func:`~fedkit.flower.apps.client_train.train_task`), with a log line saying why. Replies agree
with the sequential ones to float32 tolerance (``docs/design.md``, "Batched engine").
"""

from __future__ import annotations

import functools
import logging

from flwr.app import Context, Message

from fedkit.algorithms.replies import ARRAYS_KEY
from fedkit.flower.apps.client_train import (
    ClientOffline,
    TrainTask,
    finish_train,
    local_sgd_config,
    offline_reply,
    prepare_train,
    train_task,
)
from fedkit.flower.apps.task import arrays_from_torch, model_template, torch_state_of
from fedkit.flower.runtime.batching import BatchHandler, BatchItem, error_reply
from fedkit.seeding import torch_generator
from fedkit.training import ClientJob, TrainResult, can_batch, train_local_batched

__all__ = ["train_batch_handler"]

logger = logging.getLogger(__name__)


@functools.cache
def _log_once(reason: str) -> None:
    logger.info("batched train: training the round's clients one at a time (%s)", reason)


def _accepts(msg: Message, context: Context) -> bool:
    """A train message with the model to train (anything else: the ClientApp answers it)."""
    return (msg.has_content() and "config" in msg.content.config_records
            and ARRAYS_KEY in msg.content.array_records)


def _train_together(tasks: list[TrainTask], device: str) -> list[tuple[dict, TrainResult]] | None:
    """Every task's local torch state and result from one batched call, or None if it cannot."""
    first = tasks[0]
    cfg, data = first.cfg, first.data
    template = model_template(cfg.model, tuple(data.train.input_shape), data.train.num_classes)
    ok, why = can_batch(template)
    if not ok:
        _log_once(why)
        return None
    jobs = [ClientJob(indices=data.partition[t.client_id],
                      generator=torch_generator(*t.generator_keys),
                      lr=t.lr, loss_scale=t.loss_scale) for t in tasks]
    decoded: dict[int, dict] = {}  # one torch state per received ArrayRecord object
    for t in tasks:
        if id(t.sent) not in decoded:
            decoded[id(t.sent)] = torch_state_of(t.sent)
    try:
        results = train_local_batched(
            template, [decoded[id(t.sent)] for t in tasks], data.train, jobs,
            local_sgd_config(cfg, first.lr), device=device,
            copy_states=False)  # the replies copy them into their bytes
    except Exception as exc:  # noqa: BLE001 - fall back, never lose the round
        logger.warning("batched train: batched training failed (%s: %s); training the round's "
                       "clients one at a time", type(exc).__name__, exc)
        return None
    return results


def _run(items: list[BatchItem], device: str) -> list[Message]:
    """The replies of fedkit's ``train`` handler to ``items``, trained together."""
    replies: list[Message | None] = [None] * len(items)
    tasks: list[tuple[int, TrainTask]] = []
    for i, (msg, context) in enumerate(items):
        try:
            tasks.append((i, prepare_train(msg, context)))
        except ClientOffline as exc:
            replies[i] = offline_reply(msg, exc)
        except Exception as exc:  # noqa: BLE001 - a client failure is a reply
            replies[i] = error_reply(msg, exc)
    trained = _train_together([t for _, t in tasks], device) if tasks else None
    for n, (i, task) in enumerate(tasks):
        msg = items[i][0]
        try:
            if trained is None:
                local, result = train_task(task)
            else:
                state, result = trained[n]
                local = arrays_from_torch(state)
            replies[i] = Message(finish_train(task, local, result), reply_to=msg)
        except Exception as exc:  # noqa: BLE001 - a client failure is a reply
            replies[i] = error_reply(msg, exc)
    return [reply for reply in replies if reply is not None]


train_batch_handler = BatchHandler(accepts=_accepts, run=_run)
"""fedkit's ``train`` messages, trained together (see the module docstring)."""
