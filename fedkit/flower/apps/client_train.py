"""One client's train task: parse a train message, train locally, build the reply.

fedkit's ClientApp answers a ``train`` message in three steps, kept apart so that the batched
engine can run the middle one for many clients at once
(:mod:`fedkit.flower.apps.batched_train`) and both paths build identical replies:

1. :func:`prepare_train` reads and checks the message into a :class:`TrainTask`;
2. :func:`train_task` runs local SGD (:func:`fedkit.training.train_local`); the minibatch order
   comes from the stream ``(seed, "local-sgd", round, client_id)``, so a client's reply depends
   only on the seed, the round, its id and the model it received -- not on the runtime;
3. :func:`finish_train` builds the reply content: the local model and the metrics.

FedLaAvg's client-delta replies (ΔG_i, ``state-lost``, recovery) are not made here: the
handler runs inside :func:`~fedkit.flower.apps.client_delta.fedlaavg_mod`, as a user's
ClientApp does, and always replies with its local model.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from flwr.app import ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode

from fedkit.algorithms.base import REPLY_GRADIENT_DELTA, REPLY_MODEL
from fedkit.algorithms.replies import ARRAYS_KEY, METRICS_KEY
from fedkit.config import RunConfig
from fedkit.data import FederatedData
from fedkit.flower.apps.task import (
    arrays_of,
    availability_model,
    client_id_of,
    load_data,
    model_with_arrays,
    node_run_config,
)
from fedkit.seeding import torch_generator
from fedkit.training import LocalSGDConfig, TrainResult, train_local

__all__ = [
    "ClientOffline",
    "offline_reply",
    "TrainTask",
    "finish_train",
    "local_sgd_config",
    "loss_scale",
    "prepare_train",
    "train_task",
]

logger = logging.getLogger(__name__)


def local_sgd_config(cfg: RunConfig, lr: float, *, loss_scale: float = 1.0) -> LocalSGDConfig:
    """Local SGD settings of a round: the run config's, with this round's learning rate."""
    return LocalSGDConfig(
        lr=lr,
        loss_scale=loss_scale,
        batch_size=cfg.batch_size,
        local_steps=cfg.local_steps or None,
        local_epochs=None if cfg.local_steps else cfg.local_epochs,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )


class ClientOffline(RuntimeError):
    """The client's availability scenario says it is offline this round."""


def offline_reply(msg: Message, exc: ClientOffline) -> Message:
    """The reply of a client that declines ``msg`` because its scenario says it is offline.

    Declining is the scenario working, not a failure: the client logs it at INFO and answers
    with a ``NODE_UNAVAILABLE`` error reply (what the server-side availability grid answers
    for an offline node), so Flower's SuperNode logs no exception for it (a raised exception
    shows up there as an ERROR with a traceback and exit code 800 of the ClientApp process).
    """
    logger.info("%s", exc)
    return Message(Error(code=ErrorCode.NODE_UNAVAILABLE, reason=str(exc)), reply_to=msg)


def _train_from(cfg: RunConfig, data, arrays, client_id: int, server_round: int,
                lr: float) -> tuple[torch.nn.Module, TrainResult]:
    """Local SGD from ``arrays``; deterministic in (seed, round, client id)."""
    model = model_with_arrays(cfg, data, arrays)
    indices = data.partition[client_id]
    result = train_local(
        model,
        data.train,
        indices,
        local_sgd_config(cfg, lr, loss_scale=loss_scale(cfg, data, client_id)),
        generator=torch_generator(cfg.seed, "local-sgd", server_round, client_id),
    )
    return model, result


def loss_scale(cfg: RunConfig, data, client_id: int) -> float:
    """1, or N * n_i / n with ``loss_scaling = "data-weighted"`` (FedLaAvg's code)."""
    if cfg.loss_scaling == "none":
        return 1.0
    sizes = data.partition.sizes()
    return float(cfg.num_clients * sizes[client_id] / sizes.sum())


@dataclasses.dataclass(frozen=True)
class TrainTask:
    """One parsed train message: everything local training and the reply need.

    The batched train handler (:mod:`fedkit.flower.apps.batched_train`) runs the training of
    many tasks together and then calls :func:`finish_train` for each, so both paths build
    identical replies.
    """

    cfg: RunConfig
    data: FederatedData
    client_id: int
    server_round: int
    lr: float
    sent: ArrayRecord

    @property
    def generator_keys(self) -> tuple[int, str, int, int]:
        """(seed, purpose, round, client id) of the local-SGD stream."""
        return (self.cfg.seed, "local-sgd", self.server_round, self.client_id)

    @property
    def loss_scale(self) -> float:
        return loss_scale(self.cfg, self.data, self.client_id)


def prepare_train(msg: Message, context: Context) -> TrainTask:
    """Parse and check a train message.

    Raises:
        ClientOffline: If client-side availability enforcement says the client is offline.
        ValueError: On a ``reply`` kind other than ``model`` (a gradient delta is
            ``fedlaavg_mod``'s to make) or a bad node config.
    """
    cfg = node_run_config(context)
    client_id = client_id_of(context, cfg.num_clients)
    config = msg.content["config"]
    server_round = int(config["server-round"])
    lr = float(config["lr"])
    data = load_data(cfg)
    if cfg.availability_enforce == "client" and cfg.availability != "always":
        online = availability_model(cfg, data).available(server_round)
        if not online[client_id]:
            raise ClientOffline(
                f"client {client_id} is offline in round {server_round} according to "
                f"availability scenario {cfg.availability!r}; it declines the work"
            )
    kind = config.get("reply", REPLY_MODEL)
    if kind == REPLY_GRADIENT_DELTA:
        raise ValueError(
            f"config 'reply' = {kind!r} (FedLaAvg's client-delta mode) reached fedkit's train "
            "handler: add fedkit.flower.mods.fedlaavg_mod to its mods, after secagg_mod")
    if kind != REPLY_MODEL:
        raise ValueError(f"config 'reply' = {kind!r}, expected {REPLY_MODEL!r} or "
                         f"{REPLY_GRADIENT_DELTA!r}")
    return TrainTask(cfg=cfg, data=data, client_id=client_id, server_round=server_round,
                     lr=lr, sent=msg.content[ARRAYS_KEY])


def train_task(task: TrainTask) -> tuple[ArrayRecord, TrainResult]:
    """Local SGD of one task, one message at a time: the local model and the result."""
    model, result = _train_from(task.cfg, task.data, task.sent, task.client_id,
                                task.server_round, task.lr)
    return arrays_of(model), result


def finish_train(task: TrainTask, local: ArrayRecord, result: TrainResult) -> RecordDict:
    """The reply content for a trained task: the local model and the metrics."""
    metrics = MetricRecord({
        "num-examples": result.num_examples,
        "train-loss": result.mean_loss,
        "num-steps": result.num_steps,
    })
    return RecordDict({ARRAYS_KEY: local, METRICS_KEY: metrics})
