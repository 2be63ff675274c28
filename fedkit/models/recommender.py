"""The recommendation model of the submodel task: shared item rows, a small dense part and a
user vector that never leaves its client.

    score(u, i) = p_u^T W e_i + b_i + c

* item table ``[num_items, dim + 1]``: row i is ``[e_i, b_i]`` -- the **submodel** part: a
  client needs only the rows of the items its data touches;
* dense part ``{"w": [dim, dim], "c": [1]}``: shared by every client, always downloaded;
* user vector ``p_u`` ``[dim]``: client-specific, kept in the client's state, never uploaded.

This is bilinear matrix factorisation with a shared interaction matrix W (W = I gives plain
MF, as in federated collaborative filtering, Ammad-ud-din et al., arXiv 1901.09888). All
initial values derive from ``(seed, purpose, ...)`` streams, so every party can rebuild them.
"""

from __future__ import annotations

import numpy as np

from fedkit.seeding import numpy_rng

__all__ = ["init_dense", "init_item_rows", "init_user_vector", "score_items"]

INIT_STD = 0.1


def init_item_rows(num_items: int, dim: int, seed: int) -> np.ndarray:
    """Initial item table ``[num_items, dim + 1]``: N(0, 0.1^2) embeddings, zero biases."""
    rows = np.zeros((num_items, dim + 1), dtype=np.float32)
    rows[:, :dim] = numpy_rng(seed, "recommender-items").normal(0.0, INIT_STD, (num_items, dim))
    return rows


def init_dense(dim: int, seed: int) -> dict[str, np.ndarray]:
    """Initial dense part: W = I + N(0, 0.01^2), c = 0."""
    noise = numpy_rng(seed, "recommender-dense").normal(0.0, 0.01, (dim, dim))
    return {"w": (np.eye(dim) + noise).astype(np.float32), "c": np.zeros(1, dtype=np.float32)}


def init_user_vector(dim: int, seed: int, user: int) -> np.ndarray:
    """Initial user vector of ``user``: N(0, 0.1^2), from its own stream."""
    return numpy_rng(seed, "recommender-user", user).normal(0.0, INIT_STD, dim).astype(np.float32)


def score_items(user_vectors: np.ndarray, rows: np.ndarray, dense: dict[str, np.ndarray]
                ) -> np.ndarray:
    """Scores ``[num_users, num_rows]`` of every (user, row) pair (``user_vectors [U, dim]``)."""
    dim = rows.shape[1] - 1
    projected = np.asarray(user_vectors, dtype=np.float64) @ dense["w"].astype(np.float64)
    return projected @ rows[:, :dim].T.astype(np.float64) + rows[:, dim] + float(dense["c"][0])
