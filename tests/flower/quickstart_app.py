"""A quickstart-style Flower ClientApp with no fedkit code: numpy softmax regression.

What a Flower user brings: ``@app.train`` trains locally from the received ``arrays`` with
the ``lr`` of the received ``config`` and replies with its model and ``metrics``
(``num-examples``, ``train_loss``); ``@app.evaluate`` replies with the loss and accuracy.
Each partition's data and each round's minibatches come from ``(seed, partition, round)``, so
training is deterministic in (seed, round, client) -- what FedLaAvg's recovery needs.
:func:`make_app` adds the ``mods`` (and, optionally, the ``query.client_id`` route) a test
asks for; nothing else in this file knows about fedkit.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

NUM_FEATURES, NUM_CLASSES = 6, 3
SEED = 7
LOCAL_STEPS, BATCH_SIZE = 4, 8


def initial_arrays() -> ArrayRecord:
    rng = np.random.default_rng([SEED, 0])
    return ArrayRecord({
        "w": Array((0.1 * rng.standard_normal((NUM_FEATURES, NUM_CLASSES))).astype(np.float32)),
        "b": Array(np.zeros(NUM_CLASSES, dtype=np.float32)),
    })


def partition(pid: int) -> tuple[np.ndarray, np.ndarray]:
    """Client ``pid``'s examples (sizes differ between clients)."""
    rng = np.random.default_rng([SEED, 1, pid])
    n = 20 + 5 * (pid % 4)
    x = rng.standard_normal((n, NUM_FEATURES)).astype(np.float32)
    true_w = np.random.default_rng([SEED, 2]).standard_normal((NUM_FEATURES, NUM_CLASSES))
    y = np.argmax(x @ true_w + 0.5 * rng.standard_normal((n, NUM_CLASSES)), axis=1)
    return x, y


def _loss_and_grads(w, b, x, y):
    logits = x @ w + b
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    return loss, x.T @ p, p.sum(axis=0)


def train(msg: Message, context: Context) -> Message:
    pid = int(context.node_config["partition-id"])
    config = msg.content["config"]
    lr, server_round = float(config["lr"]), int(config["server-round"])
    arrays = msg.content["arrays"]
    w, b = arrays["w"].numpy().copy(), arrays["b"].numpy().copy()
    x, y = partition(pid)
    rng = np.random.default_rng([SEED, 3, server_round, pid])
    losses = []
    for _ in range(LOCAL_STEPS):
        idx = rng.choice(len(y), size=BATCH_SIZE, replace=False)
        loss, gw, gb = _loss_and_grads(w, b, x[idx], y[idx])
        w -= np.float32(lr) * gw.astype(np.float32)
        b -= np.float32(lr) * gb.astype(np.float32)
        losses.append(loss)
    model = ArrayRecord({"w": Array(w), "b": Array(b)})
    metrics = MetricRecord({"num-examples": len(y), "train_loss": float(np.mean(losses))})
    return Message(RecordDict({"arrays": model, "metrics": metrics}), reply_to=msg)


def evaluate(msg: Message, context: Context) -> Message:
    x, y = partition(int(context.node_config["partition-id"]))
    arrays = msg.content["arrays"]
    loss, _, _ = _loss_and_grads(arrays["w"].numpy(), arrays["b"].numpy(), x, y)
    accuracy = float(np.mean(np.argmax(x @ arrays["w"].numpy() + arrays["b"].numpy(), 1) == y))
    metrics = MetricRecord({"num-examples": len(y), "eval_loss": loss, "eval_acc": accuracy})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


def make_app(mods=(), route=None) -> ClientApp:
    """The quickstart ClientApp with app-level ``mods``; ``route(app)`` registers extra
    handlers (e.g. fedkit's ``register_client_id_query``)."""
    app = ClientApp(mods=list(mods))
    app.train()(train)
    app.evaluate()(evaluate)
    if route is not None:
        route(app)
    return app
