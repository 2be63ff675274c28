"""The learning task: softmax regression in numpy on synthetic, per-client data.

Everything here is ordinary user code: no fedkit import. Each client's data and each round's
minibatches come from ``(seed, client, round)``, so local training is deterministic -- what
FedLaAvg's state recovery relies on.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

NUM_FEATURES, NUM_CLASSES = 8, 3
LOCAL_STEPS, BATCH_SIZE = 5, 8


def initial_arrays(seed: int) -> ArrayRecord:
    rng = np.random.default_rng([seed, 0])
    return ArrayRecord({
        "w": Array((0.1 * rng.standard_normal((NUM_FEATURES, NUM_CLASSES))).astype(np.float32)),
        "b": Array(np.zeros(NUM_CLASSES, dtype=np.float32)),
    })


def client_data(seed: int, client: int) -> tuple[np.ndarray, np.ndarray]:
    """Client ``client``'s examples: shared labelling rule, client-specific features."""
    rng = np.random.default_rng([seed, 1, client])
    n = 30 + 10 * (client % 3)
    x = (rng.standard_normal((n, NUM_FEATURES)) + 0.3 * (client % 4)).astype(np.float32)
    true_w = np.random.default_rng([seed, 2]).standard_normal((NUM_FEATURES, NUM_CLASSES))
    y = np.argmax(x @ true_w + 0.3 * rng.standard_normal((n, NUM_CLASSES)), axis=1)
    return x, y


def loss_and_grads(w, b, x, y):
    logits = x @ w + b
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    loss = float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    return loss, x.T @ p, p.sum(axis=0)


def train(arrays: ArrayRecord, x, y, lr: float, rng) -> tuple[ArrayRecord, float]:
    w, b = arrays["w"].numpy().copy(), arrays["b"].numpy().copy()
    losses = []
    for _ in range(LOCAL_STEPS):
        idx = rng.choice(len(y), size=BATCH_SIZE, replace=False)
        loss, gw, gb = loss_and_grads(w, b, x[idx], y[idx])
        w -= np.float32(lr) * gw.astype(np.float32)
        b -= np.float32(lr) * gb.astype(np.float32)
        losses.append(loss)
    return ArrayRecord({"w": Array(w), "b": Array(b)}), float(np.mean(losses))


def accuracy(arrays: ArrayRecord, x, y) -> tuple[float, float]:
    w, b = arrays["w"].numpy(), arrays["b"].numpy()
    loss, _, _ = loss_and_grads(w, b, x, y)
    return loss, float(np.mean(np.argmax(x @ w + b, axis=1) == y))
