"""The result types of partitioning: :class:`Partition` and :class:`PartitionReport`.

A :class:`Partition` says which sample indices each client owns; a :class:`PartitionReport`
counts each client's samples per class, and :func:`label_skew` condenses that into one number
(mean total-variation distance to the global label distribution). The partitioners that
produce partitions live in :mod:`fedkit.data.partition`, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Partition", "PartitionReport", "label_skew", "partition_report"]


@dataclass(frozen=True, eq=False)
class Partition:
    """Which samples each client owns.

    Attributes:
        client_indices: One ``int64`` array of sample indices per client, sorted; no index
            appears twice (within or across clients). Any sequence of integer arrays is
            accepted and copied. The arrays are left writeable (torch warns when it wraps a
            read-only array) but are shared by every caller of a cached partition: never
            modify them.

    Example:
        >>> part = Partition((np.array([3, 0]), np.array([1, 2])))
        >>> part.num_clients, part[0].tolist(), part.sizes().tolist()
        (2, [0, 3], [2, 2])
    """

    client_indices: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        raw = self.client_indices
        if isinstance(raw, np.ndarray | str | bytes) or not isinstance(raw, Sequence) or not raw:
            raise ValueError(
                f"Partition.client_indices must be a non-empty sequence of index arrays (one "
                f"per client), got {type(raw).__name__}"
            )
        arrays = []
        for client_id, indices in enumerate(raw):
            array = np.asarray(indices)
            if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
                raise ValueError(
                    f"Partition: client {client_id} has indices of dtype {array.dtype} and "
                    f"shape {array.shape}, expected a 1-D integer array"
                )
            array = np.sort(array.astype(np.int64))
            if array.size and array[0] < 0:
                raise ValueError(
                    f"Partition: client {client_id} has negative sample index {array[0]}, "
                    "expected indices >= 0"
                )
            arrays.append(array)
        every = np.concatenate(arrays)
        unique, counts = np.unique(every, return_counts=True)
        if unique.size != every.size:
            raise ValueError(
                f"Partition: sample index {int(unique[np.argmax(counts > 1)])} is assigned "
                "more than once, expected each sample in at most one client"
            )
        object.__setattr__(self, "client_indices", tuple(arrays))

    @property
    def num_clients(self) -> int:
        """Number of clients."""
        return len(self.client_indices)

    @property
    def num_samples(self) -> int:
        """Number of samples assigned, over all clients."""
        return int(sum(a.size for a in self.client_indices))

    def sizes(self) -> np.ndarray:
        """Return the number of samples of each client (``int64`` ``[num_clients]``)."""
        return np.array([a.size for a in self.client_indices], dtype=np.int64)

    def __len__(self) -> int:
        return self.num_clients

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.client_indices)

    def __getitem__(self, client_id: int) -> np.ndarray:
        """Return the sorted sample indices of ``client_id`` (shared: do not modify)."""
        if isinstance(client_id, bool) or not isinstance(client_id, int | np.integer) or not (
            0 <= client_id < self.num_clients
        ):
            raise IndexError(
                f"client_id = {client_id!r}, expected an integer in [0, {self.num_clients - 1}]"
            )
        return self.client_indices[int(client_id)]


@dataclass(frozen=True, eq=False)
class PartitionReport:
    """Sizes and label histograms of a partition.

    Attributes:
        sizes: Samples per client, ``int64`` ``[num_clients]``.
        label_histograms: ``label_histograms[i, c]`` is the number of samples of class ``c``
            held by client ``i`` (``int64`` ``[num_clients, num_classes]``).
    """

    sizes: np.ndarray
    label_histograms: np.ndarray

    def __post_init__(self) -> None:
        sizes = np.array(self.sizes, dtype=np.int64)
        hist = np.array(self.label_histograms, dtype=np.int64)
        if sizes.ndim != 1 or hist.ndim != 2 or hist.shape[0] != sizes.shape[0]:
            raise ValueError(
                f"PartitionReport: sizes has shape {sizes.shape} and label_histograms "
                f"{hist.shape}, expected [num_clients] and [num_clients, num_classes]"
            )
        if not np.array_equal(hist.sum(axis=1), sizes):
            raise ValueError("PartitionReport: label_histograms rows must sum to sizes")
        sizes.flags.writeable = False
        hist.flags.writeable = False
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "label_histograms", hist)

    def classes_per_client(self) -> np.ndarray:
        """Return the number of distinct labels each client holds."""
        return np.count_nonzero(self.label_histograms, axis=1)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (plain ints, floats and lists)."""
        return {
            "num_clients": int(self.sizes.size),
            "num_classes": int(self.label_histograms.shape[1]),
            "num_samples": int(self.sizes.sum()),
            "size_min": int(self.sizes.min()),
            "size_mean": float(self.sizes.mean()),
            "size_max": int(self.sizes.max()),
            "mean_classes_per_client": float(self.classes_per_client().mean()),
            "label_skew": label_skew(self),
            "sizes": self.sizes.tolist(),
            "label_histograms": self.label_histograms.tolist(),
        }

    def summary(self) -> str:
        """Return a one-line human-readable summary."""
        d = self.to_dict()
        return (
            f"{d['num_clients']} clients, {d['num_samples']} samples; size min/mean/max "
            f"{d['size_min']}/{d['size_mean']:.1f}/{d['size_max']}; classes per client "
            f"{d['mean_classes_per_client']:.2f} (of {d['num_classes']}); label skew "
            f"{d['label_skew']:.3f}"
        )


def partition_report(partition: Partition, labels: Any, num_classes: int) -> PartitionReport:
    """Count each client's samples per class.

    Args:
        partition: The partition to describe.
        labels: 1-D integer labels of the dataset the partition indexes.
        num_classes: Number of classes (> every label).

    Returns:
        The :class:`PartitionReport`.

    Raises:
        ValueError: If labels are invalid, a label is >= ``num_classes`` or the partition
            indexes past the end of ``labels``.
    """
    y = check_labels(labels)
    check_int("num_classes", num_classes, 1)
    if y.max() >= num_classes:
        raise ValueError(f"labels go up to {int(y.max())}, expected < num_classes = {num_classes}")
    sizes = partition.sizes()
    every = np.concatenate(partition.client_indices)
    if every.size and every.max() >= y.size:
        raise ValueError(
            f"partition holds sample index {int(every.max())}, expected < len(labels) = {y.size}"
        )
    owner = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
    flat = np.bincount(owner * num_classes + y[every], minlength=sizes.size * num_classes)
    return PartitionReport(sizes, flat.reshape(sizes.size, num_classes))


def label_skew(report: PartitionReport) -> float:
    """Mean total-variation distance between client and global label distributions.

    ``mean_i 0.5 * sum_c |p_i(c) - p(c)|`` over clients with at least one sample: 0 when
    every client sees the global label mix, ``1 - p(c)`` for a client holding only class c
    (0.9 for one class of CIFAR-10's ten balanced ones).
    """
    hist = report.label_histograms.astype(np.float64)
    sizes = hist.sum(axis=1)
    if sizes.sum() == 0:
        raise ValueError("label_skew: the partition holds no samples")
    global_dist = hist.sum(axis=0) / sizes.sum()
    nonempty = sizes > 0
    client_dist = hist[nonempty] / sizes[nonempty, None]
    return float(0.5 * np.abs(client_dist - global_dist).sum(axis=1).mean())


def check_labels(labels: Any) -> np.ndarray:
    """Return ``labels`` as a 1-D ``int64`` array, or raise a ValueError saying what is wrong."""
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"labels have dtype {y.dtype} and shape {y.shape}, expected a non-empty 1-D "
            "integer array"
        )
    if y.min() < 0:
        raise ValueError(f"labels contain {int(y.min())}, expected labels >= 0")
    return y.astype(np.int64, copy=False)


def check_int(name: str, value: Any, minimum: int) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} = {value!r}, expected an integer >= {minimum}")


def check_num_clients(num_clients: Any, num_samples: int) -> None:
    """Raise a ValueError unless ``1 <= num_clients <= num_samples``."""
    if isinstance(num_clients, bool) or not isinstance(num_clients, int | np.integer) or not (
        1 <= num_clients <= num_samples
    ):
        raise ValueError(
            f"num_clients = {num_clients!r}, expected an integer in [1, {num_samples}] "
            "(at most the number of samples)"
        )
