"""Local training and evaluation of the recommendation model (:mod:`fedkit.models.recommender`).

:func:`train_user` runs a client's local SGD on the binary cross-entropy of its training
positives (label 1) and sampled negatives (label 0, optionally weighted), over the rows it
holds: its submodel.
The loss of a minibatch is the *sum* over its samples, so a sample moves its item row by
``lr`` times its own gradient whatever the batch size.
:func:`auc_hr` measures ranking quality the usual way for implicit feedback: for each user,
its held-out (latest) items are the positives and every item it never interacted with a
negative.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from fedkit.models.recommender import score_items

__all__ = ["RecTrainConfig", "RecTrainResult", "auc_hr", "train_user"]


@dataclasses.dataclass(frozen=True)
class RecTrainConfig:
    """Local SGD of one client: learning rate, epochs over its samples, batch size, L2."""

    lr: float = 0.05
    epochs: int = 1
    batch_size: int = 32
    l2: float = 1e-4

    def __post_init__(self) -> None:
        if not self.lr > 0 or self.epochs < 1 or self.batch_size < 1 or self.l2 < 0:
            raise ValueError(f"invalid RecTrainConfig {self}: need lr > 0, epochs >= 1, "
                             "batch_size >= 1, l2 >= 0")


@dataclasses.dataclass(frozen=True)
class RecTrainResult:
    """A client's trained submodel: new rows, dense part and user vector, plus statistics."""

    rows: np.ndarray
    dense: dict[str, np.ndarray]
    user_vector: np.ndarray
    mean_loss: float
    num_samples: int


def train_user(rows: np.ndarray, dense: dict[str, np.ndarray], user_vector: np.ndarray,
               positives: np.ndarray, negatives: np.ndarray, config: RecTrainConfig,
               generator: torch.Generator, negative_weights: np.ndarray | None = None
               ) -> RecTrainResult:
    """Local SGD on one client's samples over the rows it holds.

    Args:
        rows: ``[r, dim + 1]`` the client's item rows (its submodel), not modified.
        dense: ``{"w": [dim, dim], "c": [1]}``, not modified.
        user_vector: ``[dim]``, the client's own vector, not modified.
        positives, negatives: Indices **into rows** of the positive and negative samples.
        config: Learning rate, epochs, batch size, L2 on the rows and user vector touched.
        generator: The shuffling stream.
        negative_weights: Per negative, the weight of its loss term (default 1; e.g. the
            sampling-bias correction of :mod:`fedkit.submodel.negatives`). Positives weigh 1.

    Raises:
        ValueError: On indices outside ``rows``, no samples at all, or negative weights of
            the wrong length or not finite and >= 0.
    """
    positives, negatives = np.asarray(positives, np.int64), np.asarray(negatives, np.int64)
    index = np.concatenate([positives, negatives])
    if index.size == 0:
        raise ValueError("train_user got no samples (no positives and no negatives)")
    if index.min() < 0 or index.max() >= rows.shape[0]:
        raise ValueError(f"sample indices must lie in [0, {rows.shape[0]}), got "
                         f"[{index.min()}, {index.max()}]")
    labels = torch.cat([torch.ones(positives.size), torch.zeros(negatives.size)])
    weights = torch.ones(index.size)
    if negative_weights is not None:
        negative_weights = np.asarray(negative_weights, np.float32)
        if negative_weights.shape != negatives.shape:
            raise ValueError(f"negative_weights has shape {negative_weights.shape}, expected "
                             f"one weight per negative {negatives.shape}")
        if not np.all(np.isfinite(negative_weights) & (negative_weights >= 0)):
            raise ValueError("negative_weights must be finite and >= 0")
        weights[positives.size:] = torch.from_numpy(negative_weights)
    samples = torch.from_numpy(index)
    dim = rows.shape[1] - 1
    table = torch.tensor(rows, requires_grad=True)
    w = torch.tensor(dense["w"], requires_grad=True)
    c = torch.tensor(dense["c"], requires_grad=True)
    user = torch.tensor(user_vector, requires_grad=True)
    params = (table, w, c, user)
    total, count = 0.0, 0
    for _ in range(config.epochs):
        order = torch.randperm(samples.numel(), generator=generator)
        for start in range(0, order.numel(), config.batch_size):
            batch = order[start:start + config.batch_size]
            picked = table[samples[batch]]
            logits = (user @ w) @ picked[:, :dim].T + picked[:, dim] + c
            # summed over the batch: each sample moves its own row by lr * its gradient
            loss = F.binary_cross_entropy_with_logits(logits, labels[batch],
                                                      weight=weights[batch], reduction="sum")
            penalty = config.l2 * (picked[:, :dim].pow(2).sum() + user.pow(2).sum())
            grads = torch.autograd.grad(loss + penalty, params)
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p.sub_(config.lr * g)
            total += float(loss.detach())
            count += batch.numel()
    return RecTrainResult(
        rows=table.detach().numpy(),
        dense={"w": w.detach().numpy(), "c": c.detach().numpy()},
        user_vector=user.detach().numpy(),
        mean_loss=total / count,
        num_samples=int(index.size),
    )


def auc_hr(user_vectors: np.ndarray, rows: np.ndarray, dense: dict[str, np.ndarray],
           seen: list[np.ndarray], test: list[np.ndarray], k: int = 10
           ) -> tuple[float, float]:
    """Mean per-user test AUC and HR@k.

    For user u: candidates = every item not among its training positives; positives = its
    test items; negatives = the candidates it never interacted with. AUC = P(score(pos) >
    score(neg)), ties counting 1/2; HR@k = 1 if one of its test items ranks in the top k of
    the candidates. Both are averaged over the users given.

    Args:
        user_vectors: ``[U, dim]`` one row per evaluated user.
        rows, dense: The global model.
        seen: Per user, every item it interacted with (train and test).
        test: Per user, its held-out items.
        k: The cut-off of the hit rate.
    """
    scores = score_items(user_vectors, rows, dense)
    aucs, hits = [], []
    for u in range(scores.shape[0]):
        train_items = np.setdiff1d(seen[u], test[u])
        s = scores[u].copy()
        s[train_items] = -np.inf  # not candidates
        negatives = np.ones(s.size, dtype=bool)
        negatives[seen[u]] = False
        neg = np.sort(s[negatives])
        pos = s[test[u]]
        below = np.searchsorted(neg, pos, side="left")
        ties = np.searchsorted(neg, pos, side="right") - below
        aucs.append(float(np.mean((below + 0.5 * ties) / neg.size)))
        top = np.argpartition(-s, k - 1)[:k]
        hits.append(float(np.isin(test[u], top).any()))
    return float(np.mean(aucs)), float(np.mean(hits))
