"""What the submodel task trains: its data, initial model and local training, from the run config.

Shared by the submodel server (:mod:`fedkit.flower.submodel.server`) and client
(:mod:`fedkit.flower.submodel.client`) so both agree on the vocabulary, the model shapes and
each client's data. The model (:mod:`fedkit.models.recommender`) has three parts: the item
table ``[V, dim + 1]`` (the submodel: rows are downloaded and uploaded by id), the dense part
``{"w": [dim, dim], "c": [1]}`` (always downloaded) and each client's user vector (kept in its
``context.state``, never sent). Local training is :func:`fedkit.training.recsys.train_user`
with ``lr`` (decayed per round), ``local_epochs``, ``batch_size`` and ``weight_decay`` (as the
L2 penalty) of the run config; minibatch order from ``(seed, "submodel-train", round, client)``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from fedkit.config import ConfigError, RunConfig
from fedkit.data.movielens import Interactions, RecData, load_movielens, movielens_federated
from fedkit.data.synthetic_rec import synthetic_interactions
from fedkit.models.recommender import init_dense, init_item_rows
from fedkit.seeding import numpy_rng, torch_generator
from fedkit.training.recsys import RecTrainConfig, train_user

__all__ = [
    "DENSE_KEYS",
    "LocalUpdate",
    "dense_vector",
    "initial_model",
    "load_rec_data",
    "local_update",
    "real_set",
    "train_config",
]

DENSE_KEYS = ("w", "c")


def load_rec_data(cfg: RunConfig) -> RecData:
    """The run's federated recommendation data (cached per process).

    ``movielens``: the first ``num_clients`` users of MovieLens-100k (all 943 by default in
    ``simulations/submodel_movielens.toml``), vocabulary 1682; ``synthetic-rec``:
    :func:`~fedkit.data.synthetic_rec.synthetic_interactions` with ``num_clients`` users and
    ``num_items`` items. Both split by time with ``negatives_per_positive`` sampled negatives.

    Raises:
        ConfigError: If the task is not ``submodel`` or MovieLens has fewer users than
            ``num_clients``.
        fedkit.data.DatasetNotFoundError: If MovieLens' ``u.data`` cannot be found.
    """
    if cfg.task != "submodel":
        raise ConfigError(f"config key 'task' = {cfg.task!r}: recommendation data needs "
                          "task 'submodel'")
    return _load(cfg.dataset, cfg.data_dir, cfg.num_clients, cfg.num_items,
                 cfg.negatives_per_positive, cfg.seed)


@functools.lru_cache(maxsize=4)
def _load(dataset: str, data_dir: str, num_clients: int, num_items: int, negatives: int,
          seed: int) -> RecData:
    if dataset == "movielens":
        raw = load_movielens(data_dir or None)
        if num_clients > raw.num_users:
            raise ConfigError(f"config key 'num_clients' = {num_clients} exceeds MovieLens' "
                              f"{raw.num_users} users (one client per user)")
        raw = _first_users(raw, num_clients)
    else:
        raw = synthetic_interactions(num_clients, num_items, seed=seed)
    return movielens_federated(raw, negatives_per_positive=negatives, seed=seed)


def _first_users(raw: Interactions, num_users: int) -> Interactions:
    if num_users == raw.num_users:
        return raw
    keep = raw.users < num_users
    return Interactions(users=raw.users[keep], items=raw.items[keep],
                        ratings=raw.ratings[keep], timestamps=raw.timestamps[keep],
                        num_users=num_users, num_items=raw.num_items)


def real_set(cfg: RunConfig, data: RecData, client_id: int) -> np.ndarray:
    """The client's private index set S: the rows its own data decides it needs.

    ``submodel_negatives = "fixed"``: its training positives and fixed negatives
    (``RecData.index_set``); ``"downloaded"``: its training positives only -- its negatives are
    then picked each round among rows it holds anyway (:func:`round_negatives`).
    """
    if cfg.submodel_negatives == "downloaded":
        return data.positives[client_id]
    return data.index_set(client_id)


def round_negatives(cfg: RunConfig, data: RecData, client_id: int, server_round: int,
                    held: np.ndarray, num_positives: int) -> np.ndarray:
    """``downloaded`` negatives of one round: held rows the client never interacted with.

    At most ``negatives_per_positive * num_positives`` of them, drawn without replacement by
    ``(seed, "submodel-negatives", round, client)``; all of them when there are fewer. Under
    ``secure`` the held rows are S'', so the candidates are the randomized-response fakes
    (minus any held-out item): which fakes a client trains is hidden by secure aggregation
    like the rest of its update.
    """
    candidates = np.setdiff1d(np.asarray(held, np.int64), data.seen(client_id))
    count = min(candidates.size, cfg.negatives_per_positive * num_positives)
    rng = numpy_rng(cfg.seed, "submodel-negatives", server_round, client_id)
    return np.sort(rng.choice(candidates, size=count, replace=False))


def initial_model(cfg: RunConfig, num_items: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The seeded initial item table and dense part."""
    return init_item_rows(num_items, cfg.embedding_dim, cfg.seed), init_dense(cfg.embedding_dim,
                                                                              cfg.seed)


def train_config(cfg: RunConfig, server_round: int) -> RecTrainConfig:
    """Local SGD settings of round ``server_round``."""
    return RecTrainConfig(lr=cfg.lr_at(server_round), epochs=max(1, cfg.local_epochs),
                          batch_size=cfg.batch_size, l2=cfg.weight_decay)


def dense_vector(dense: dict[str, np.ndarray]) -> np.ndarray:
    """The dense part as one float64 vector (``w`` row-major, then ``c``)."""
    return np.concatenate([np.asarray(dense[k], np.float64).reshape(-1) for k in DENSE_KEYS])


@dataclasses.dataclass(frozen=True)
class LocalUpdate:
    """A client's update over the rows it holds.

    Attributes:
        row_values: ``[len(ids), dim + 1]`` new minus old rows (zero for rows not trained).
        row_counts: ``[len(ids)]`` 1 for the rows its trained samples touch (the succinct set
            S ∩ S'', the "involved" count of Niu et al., MobiCom 2020, §5), else 0.
        dense: ``D`` new minus old dense part (``dense_vector`` layout).
        num_samples: Samples trained on (the dense part's weight).
        user_vector: The client's new user vector (stays on the client).
        mean_loss: Mean training loss (nan without samples).
    """

    row_values: np.ndarray
    row_counts: np.ndarray
    dense: np.ndarray
    num_samples: int
    user_vector: np.ndarray
    mean_loss: float


def local_update(cfg: RunConfig, data: RecData, client_id: int, server_round: int,
                 ids: np.ndarray, rows: np.ndarray, dense: dict[str, np.ndarray],
                 user_vector: np.ndarray, trainable: np.ndarray | None = None,
                 row_weights: np.ndarray | None = None) -> LocalUpdate:
    """Train client ``client_id`` on its samples whose items lie in ``trainable``.

    Positives are its training positives in ``trainable``; negatives its fixed negatives in
    ``trainable`` or, with ``submodel_negatives = "downloaded"``, :func:`round_negatives`
    among all of ``ids``.

    Args:
        ids: Sorted row ids the client holds (its download).
        rows: ``[len(ids), dim + 1]`` those rows.
        trainable: Sorted ids it may train (the succinct set S ∩ S''); None = all of ``ids``.
            Must be a subset of ``ids``.
        row_weights: ``[len(ids)]`` loss weight of each held row when it serves as a
            ``downloaded`` negative (:mod:`fedkit.submodel.negatives`); None = all 1.

    Returns:
        The update; without any sample in ``trainable`` every part is zero and the user
        vector unchanged.
    """
    ids = np.asarray(ids, np.int64)
    allowed = ids if trainable is None else np.asarray(trainable, np.int64)
    positives = np.intersect1d(data.positives[client_id], allowed)
    weights = None
    if cfg.submodel_negatives == "downloaded":
        negatives = round_negatives(cfg, data, client_id, server_round, ids, positives.size)
        if row_weights is not None:
            row_weights = np.asarray(row_weights, np.float32)
            if row_weights.shape != ids.shape:
                raise ValueError(f"row_weights has shape {row_weights.shape}, expected one "
                                 f"weight per held row {ids.shape}")
            weights = row_weights[np.searchsorted(ids, negatives)]
    else:
        negatives = np.intersect1d(data.negatives[client_id], allowed)
    zero_dense = np.zeros(dense_vector(dense).size)
    if positives.size + negatives.size == 0:
        return LocalUpdate(np.zeros(rows.shape), np.zeros(ids.size, np.int64), zero_dense, 0,
                           np.asarray(user_vector).copy(), float("nan"))
    result = train_user(rows, dense, user_vector, np.searchsorted(ids, positives),
                        np.searchsorted(ids, negatives), train_config(cfg, server_round),
                        torch_generator(cfg.seed, "submodel-train", server_round, client_id),
                        negative_weights=weights)
    touched = np.isin(ids, np.union1d(positives, negatives))
    delta = (result.rows.astype(np.float64) - rows.astype(np.float64)) * touched[:, None]
    return LocalUpdate(
        row_values=delta,
        row_counts=touched.astype(np.int64),
        dense=dense_vector(result.dense) - dense_vector(dense),
        num_samples=result.num_samples,
        user_vector=result.user_vector,
        mean_loss=result.mean_loss,
    )
