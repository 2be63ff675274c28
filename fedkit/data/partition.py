"""Partitioners: how a labelled training set is split over clients.

Every partitioner is a pure, seeded function ``labels -> Partition`` that assigns every
sample to exactly one client; its randomness comes from
``fedkit.seeding.numpy_rng(seed, "partition-<name>")`` only. Client ``i`` owns the sorted
sample indices ``partition[i]``.

============  ========================================================================
name          split
============  ========================================================================
iid           uniform random, sizes differ by at most one
dirichlet     per class, proportions over clients ~ Dir(alpha); small alpha = strong skew
shards        sort by label, cut into ``num_clients * classes_per_client`` single-label
              shards, ``classes_per_client`` shards per client (McMahan et al. 2017)
one-class     FedLaAvg: ``num_clients / num_classes`` clients per class, one class each,
              unbalanced sizes with weights ``clip(5 + N(0, 1), 3, 7)`` (Yan et al.)
============  ========================================================================

:func:`partition_report` summarises a partition (sizes, per-client label histograms) and
:func:`label_skew` measures how far clients' label distributions are from the global one.

References:
    H. B. McMahan, E. Moore, D. Ramage, S. Hampson, B. Agüera y Arcas, "Communication-Efficient
    Learning of Deep Networks from Decentralized Data", AISTATS 2017, Sec. 3 (shards).
    M. Yurochkin et al., "Bayesian Nonparametric Federated Learning of Neural Networks",
    ICML 2019; Q. Li, Y. Diao, Q. Chen, B. He, "Federated Learning on Non-IID Data Silos: An
    Experimental Study", ICDE 2022 (per-class Dirichlet split).
    Y. Yan, C. Niu et al., "Distributed Non-Convex Optimization with Sublinear Speedup under
    Intermittent Client Availability", INFORMS Journal on Computing (arXiv:2002.07399); code
    github.com/mikudehuane/FedLaAvg, utils/partition.py.
"""

from __future__ import annotations

import heapq
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedkit.data._partition_types import (
    Partition,
    PartitionReport,
    check_int,
    check_labels,
    check_num_clients,
    label_skew,
    partition_report,
)
from fedkit.seeding import numpy_rng

__all__ = [
    "Partition",
    "PartitionReport",
    "label_skew",
    "partition_dirichlet",
    "partition_iid",
    "partition_one_class",
    "partition_report",
    "partition_shards",
]


def partition_iid(labels: Any, num_clients: int, *, seed: int) -> Partition:
    """Split uniformly at random; client sizes differ by at most one.

    Example:
        >>> partition_iid(np.zeros(10, dtype=int), 3, seed=0).sizes().tolist()
        [4, 3, 3]
    """
    y = check_labels(labels)
    check_num_clients(num_clients, y.size)
    rng = numpy_rng(seed, "partition-iid")
    owner = np.empty(y.size, dtype=np.int64)
    owner[rng.permutation(y.size)] = np.arange(y.size) % num_clients
    return _from_owner(owner, num_clients)


def partition_dirichlet(
    labels: Any,
    num_clients: int,
    *,
    alpha: float,
    seed: int,
    min_size: int = 1,
    max_attempts: int = 1000,
) -> Partition:
    """Per class, split its samples over clients in proportions ``q_c ~ Dir(alpha * 1)``.

    Small ``alpha`` (0.1) gives each client few classes; large ``alpha`` (100) approaches
    IID. The whole draw is repeated until every client has at least ``min_size`` samples.

    Args:
        labels: 1-D integer labels.
        num_clients: Number of clients, ``1 <= num_clients <= len(labels)``.
        alpha: Dirichlet concentration, > 0.
        seed: Root seed.
        min_size: Fewest samples a client may get (>= 0).
        max_attempts: Draws tried before giving up.

    Raises:
        ValueError: For invalid arguments, if ``min_size * num_clients > len(labels)``, or if
            no draw within ``max_attempts`` meets ``min_size``.

    References:
        M. Yurochkin et al., ICML 2019; Q. Li et al., ICDE 2022 (NIID-Bench).
    """
    y = check_labels(labels)
    check_num_clients(num_clients, y.size)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not (
        math.isfinite(alpha) and alpha > 0
    ):
        raise ValueError(f"dirichlet alpha = {alpha!r}, expected a finite number > 0")
    check_int("min_size", min_size, 0)
    check_int("max_attempts", max_attempts, 1)
    if min_size * num_clients > y.size:
        raise ValueError(
            f"min_size = {min_size} for {num_clients} clients needs {min_size * num_clients} "
            f"samples, but there are only {y.size}: lower min_size or num_clients"
        )
    rng = numpy_rng(seed, "partition-dirichlet")
    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    owner = np.empty(y.size, dtype=np.int64)
    clients = np.arange(num_clients, dtype=np.int64)
    for _ in range(max_attempts):
        for indices in by_class:
            shuffled = rng.permutation(indices)
            shares = rng.dirichlet(np.full(num_clients, float(alpha)))
            cuts = np.clip((np.cumsum(shares) * indices.size).astype(np.int64), 0, indices.size)
            cuts[-1] = indices.size
            owner[shuffled] = np.repeat(clients, np.diff(cuts, prepend=0))
        if np.bincount(owner, minlength=num_clients).min() >= min_size:
            return _from_owner(owner, num_clients)
    raise ValueError(
        f"dirichlet partition: no draw in {max_attempts} attempts gave every one of "
        f"{num_clients} clients >= min_size = {min_size} samples at alpha = {alpha}; raise "
        "alpha, lower min_size or num_clients"
    )


def partition_shards(
    labels: Any, num_clients: int, *, classes_per_client: int, seed: int
) -> Partition:
    """Sort by label, cut into single-label shards, deal ``classes_per_client`` to each client.

    There are ``num_clients * classes_per_client`` shards. Shards never straddle two labels:
    each class is cut into a number of shards proportional to its size (at least one), so a
    client holds at most ``classes_per_client`` labels. With balanced classes and a shard
    count divisible by the number of classes this is exactly McMahan et al.'s split
    (CIFAR-10, 100 clients, 2 classes each: 200 shards of 250 images).

    Raises:
        ValueError: If ``classes_per_client`` is not in ``[1, number of labels present]``, or
            there are fewer shards than labels or more shards than samples.

    References:
        H. B. McMahan et al., AISTATS 2017, Sec. 3 ("pathological non-IID").
    """
    y = check_labels(labels)
    check_num_clients(num_clients, y.size)
    classes = np.unique(y)
    check_int("classes_per_client", classes_per_client, 1)
    if classes_per_client > classes.size:
        raise ValueError(
            f"classes_per_client = {classes_per_client}, expected an integer in "
            f"[1, {classes.size}] (the number of labels present)"
        )
    num_shards = num_clients * classes_per_client
    if not classes.size <= num_shards <= y.size:
        raise ValueError(
            f"shards partition: num_clients * classes_per_client = {num_shards} shards, "
            f"expected between the number of labels ({classes.size}) and of samples ({y.size})"
        )
    by_class = [np.flatnonzero(y == c) for c in classes]
    shards_per_class = _allocate_shards([ix.size for ix in by_class], num_shards)
    rng = numpy_rng(seed, "partition-shards")
    shard_owner = np.empty(num_shards, dtype=np.int64)
    shard_owner[rng.permutation(num_shards)] = np.arange(num_shards) // classes_per_client
    owner = np.empty(y.size, dtype=np.int64)
    shard = 0
    for indices, count in zip(by_class, shards_per_class, strict=True):
        for piece in np.array_split(rng.permutation(indices), count):
            owner[piece] = shard_owner[shard]
            shard += 1
    return _from_owner(owner, num_clients)


def partition_one_class(
    labels: Any,
    num_clients: int,
    *,
    seed: int,
    size_mean: float = 5.0,
    size_std: float = 1.0,
    size_min: float = 3.0,
    size_max: float = 7.0,
    max_attempts: int = 100,
) -> Partition:
    """FedLaAvg's split: one class per client, ``num_clients / num_classes`` clients per class.

    Clients ``k*m .. (k+1)*m - 1`` (``m = num_clients / num_classes``) hold the ``k``-th
    smallest label. Within a class the shuffled samples are cut in proportion to weights
    ``w = clip(size_mean + size_std * N(0, 1), size_min, size_max)`` (cumulative rounding, so
    every sample is assigned); a draw leaving a client empty is redrawn. CIFAR-10 with 1000
    clients gives 50 images per client on average, between about 30 and 70.

    Raises:
        ValueError: If ``num_clients`` is not a multiple of the number of labels present, a
            class has fewer samples than ``m``, or the size parameters are inconsistent.

    References:
        Y. Yan, C. Niu et al., arXiv:2002.07399 (FedLaAvg); code mikudehuane/FedLaAvg,
        ``utils/partition.py`` (``num_samples_base`` 5, clamp threshold 2).
    """
    y = check_labels(labels)
    check_num_clients(num_clients, y.size)
    params = {"size_mean": size_mean, "size_std": size_std, "size_min": size_min,
              "size_max": size_max}
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(
            value
        ):
            raise ValueError(f"one-class {name} = {value!r}, expected a finite number")
    if not (size_std >= 0 and 0 < size_min <= size_mean <= size_max):
        raise ValueError(
            f"one-class sizes: size_min = {size_min}, size_mean = {size_mean}, size_max = "
            f"{size_max}, size_std = {size_std}; expected 0 < size_min <= size_mean <= "
            "size_max and size_std >= 0"
        )
    check_int("max_attempts", max_attempts, 1)
    classes = np.unique(y)
    if num_clients % classes.size:
        nearest = classes.size * max(1, num_clients // classes.size)
        raise ValueError(
            f"one-class partition: num_clients = {num_clients} is not a multiple of the number "
            f"of classes ({classes.size}); use e.g. {nearest}"
        )
    per_class = num_clients // classes.size
    rng = numpy_rng(seed, "partition-one-class")
    owner = np.empty(y.size, dtype=np.int64)
    for k, c in enumerate(classes):
        indices = rng.permutation(np.flatnonzero(y == c))
        if indices.size < per_class:
            raise ValueError(
                f"one-class partition: class {int(c)} has {indices.size} samples for "
                f"{per_class} clients, expected at least one sample per client"
            )
        for _ in range(max_attempts):
            weights = np.clip(size_mean + size_std * rng.standard_normal(per_class),
                              size_min, size_max)
            bounds = np.round(np.cumsum(weights) / weights.sum() * indices.size).astype(np.int64)
            bounds[-1] = indices.size
            counts = np.diff(bounds, prepend=0)
            if counts.min() >= 1:
                break
        else:
            raise ValueError(
                f"one-class partition: class {int(c)} ({indices.size} samples) could not give "
                f"each of {per_class} clients a sample in {max_attempts} attempts"
            )
        owner[indices] = k * per_class + np.repeat(np.arange(per_class), counts)
    return _from_owner(owner, num_clients)


def _from_owner(owner: np.ndarray, num_clients: int) -> Partition:
    """Build a partition from each sample's client id (indices come out sorted)."""
    order = np.argsort(owner, kind="stable")
    bounds = np.cumsum(np.bincount(owner, minlength=num_clients))[:-1]
    return Partition(tuple(np.split(order, bounds)))


def _allocate_shards(sizes: Sequence[int], num_seats: int) -> list[int]:
    """Give each class one shard, then each further one to the class whose shards are largest.

    Never gives a class more shards than samples; ``len(sizes) <= num_seats <= sum(sizes)``.
    """
    seats = [1] * len(sizes)
    heap = [(-size, k) for k, size in enumerate(sizes) if size > 1]
    heapq.heapify(heap)
    for _ in range(num_seats - len(sizes)):
        _, k = heapq.heappop(heap)
        seats[k] += 1
        if seats[k] < sizes[k]:
            heapq.heappush(heap, (-sizes[k] / seats[k], k))
    return seats
