"""Datasets and partitioners: what each client trains on.

:func:`load_federated_data` is the one entry point the apps use: it loads (or generates) a
dataset, splits its training set over ``num_clients`` clients and returns a
:class:`FederatedData`. Results are cached per process on the full argument tuple, because a
Flower ClientApp calls it once per message; the cached tensors and index arrays are shared, so
treat them as read-only.

=============  ==============================================================================
dataset        what
=============  ==============================================================================
synthetic      Synthetic(alpha, beta) of FedProx, generated in-process (60 float features,
               10 classes); its ``natural`` partition is the generator's own clients
cifar10        CIFAR-10 from ``<data_dir>/cifar-10-batches-py/`` (uint8 images)
=============  ==============================================================================

Partitions: ``iid``, ``dirichlet`` (``dirichlet_alpha``), ``shards`` (``classes_per_client``),
``one-class`` (FedLaAvg), ``natural`` (synthetic only). See :mod:`fedkit.data.partition`.

Example:
    >>> data = load_federated_data(dataset="synthetic", num_clients=30, partition="natural",
    ...                            seed=0)
    >>> data.partition.num_clients, data.train.num_classes
    (30, 10)
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from fedkit.data._split import IMAGE_MEAN, IMAGE_STD, Split, normalise_images
from fedkit.data.cifar10 import (
    CIFAR10_CLASSES,
    DatasetNotFoundError,
    default_data_dir,
    load_cifar10,
)
from fedkit.data.partition import (
    Partition,
    PartitionReport,
    label_skew,
    partition_dirichlet,
    partition_iid,
    partition_one_class,
    partition_report,
    partition_shards,
)
from fedkit.data.synthetic import SyntheticData, make_synthetic

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "PARTITIONS",
    "DatasetNotFoundError",
    "FederatedData",
    "Partition",
    "PartitionReport",
    "Split",
    "SyntheticData",
    "default_data_dir",
    "label_skew",
    "load_cifar10",
    "load_federated_data",
    "make_synthetic",
    "normalise_images",
    "partition_dirichlet",
    "partition_iid",
    "partition_one_class",
    "partition_report",
    "partition_shards",
]

DATASETS = ("synthetic", "cifar10")
"""Valid values of ``dataset``."""
PARTITIONS = ("iid", "dirichlet", "shards", "one-class", "natural")
"""Valid values of ``partition`` (``natural`` needs ``dataset="synthetic"``)."""


@dataclass(frozen=True, eq=False)
class FederatedData:
    """A dataset split over clients.

    Attributes:
        name: Dataset name (``"synthetic"`` or ``"cifar10"``).
        train: The whole training set; client ``i`` trains on ``train`` at ``partition[i]``.
        test: The central test set.
        partition: The clients' training samples (indices into ``train``).
    """

    name: str
    train: Split
    test: Split
    partition: Partition


def load_federated_data(
    *,
    dataset: str,
    num_clients: int,
    partition: str,
    seed: int,
    data_dir: str | os.PathLike[str] | None = None,
    dirichlet_alpha: float = 0.5,
    classes_per_client: int = 2,
    synthetic_alpha: float = 1.0,
    synthetic_beta: float = 1.0,
) -> FederatedData:
    """Load a dataset and split its training set over ``num_clients`` clients (cached).

    Args:
        dataset: One of :data:`DATASETS`.
        num_clients: Number of clients.
        partition: One of :data:`PARTITIONS`.
        seed: Root seed (the synthetic generator and the partitioners derive their streams).
        data_dir: Folder holding ``cifar-10-batches-py/``; ``None`` or ``""`` means
            :func:`default_data_dir` (``$FEDKIT_DATA`` or the user cache folder).
        dirichlet_alpha: Concentration of the ``dirichlet`` partition.
        classes_per_client: Shards (labels) per client of the ``shards`` partition.
        synthetic_alpha, synthetic_beta: Heterogeneity of Synthetic(alpha, beta).

    Returns:
        The :class:`FederatedData`. For ``synthetic`` with a partition other than
        ``natural``, the generator still makes ``num_clients`` clients; their pooled training
        samples are then re-split by the chosen partitioner.

    Raises:
        ValueError: If ``dataset`` or ``partition`` is unknown, ``natural`` is asked of a
            dataset other than ``synthetic``, or a partitioner rejects its arguments.
        DatasetNotFoundError: If CIFAR-10 is not found and cannot be downloaded.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset = {dataset!r}, expected one of {list(DATASETS)}")
    if partition not in PARTITIONS:
        raise ValueError(f"partition = {partition!r}, expected one of {list(PARTITIONS)}")
    if partition == "natural" and dataset != "synthetic":
        valid = [p for p in PARTITIONS if p != "natural"]
        raise ValueError(
            f"partition = 'natural' is only defined for dataset 'synthetic', got dataset = "
            f"{dataset!r}; expected one of {valid}"
        )
    root = str(Path(data_dir) if data_dir else default_data_dir()) if dataset == "cifar10" else ""
    return _load_cached(
        dataset, num_clients, partition, seed, root, dirichlet_alpha, classes_per_client,
        synthetic_alpha, synthetic_beta,
    )


@functools.lru_cache(maxsize=8)
def _load_cached(
    dataset: str,
    num_clients: int,
    partition: str,
    seed: int,
    root: str,
    dirichlet_alpha: float,
    classes_per_client: int,
    synthetic_alpha: float,
    synthetic_beta: float,
) -> FederatedData:
    if dataset == "synthetic":
        generated = make_synthetic(
            num_clients, alpha=synthetic_alpha, beta=synthetic_beta, seed=seed
        )
        train, test = generated.train, generated.test
        if partition == "natural":
            return FederatedData(dataset, train, test, generated.partition)
    else:
        train, test = load_cifar10(root)
    labels = train.y.numpy()
    if partition == "iid":
        split = partition_iid(labels, num_clients, seed=seed)
    elif partition == "dirichlet":
        split = partition_dirichlet(labels, num_clients, alpha=dirichlet_alpha, seed=seed)
    elif partition == "shards":
        split = partition_shards(
            labels, num_clients, classes_per_client=classes_per_client, seed=seed
        )
    else:
        split = partition_one_class(labels, num_clients, seed=seed)
    return FederatedData(dataset, train, test, split)
