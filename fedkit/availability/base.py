"""The availability interface: what a model may know, and what it answers.

Every model is a frozen dataclass satisfying :class:`AvailabilityModel`: ``available(r)``
(an ``(N,)`` bool vector for the 1-based round r, a pure function of parameters, seed and r),
``probabilities(r)`` (marginal online probabilities, ``None`` for deterministic schedules)
and ``describe()`` (the JSON spec). Round r of a random model draws from
``numpy_rng(seed, "availability", r)``, client i using the i-th uniform, so appending
clients never changes the others' draws. :class:`ClientInfo` (label histograms and sizes)
is all a model may condition on. See docs/availability.md, "The contract".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fedkit.availability._checks import check_int, check_round
from fedkit.seeding import numpy_rng

__all__ = ["AvailabilityModel", "ClientInfo", "availability_schedule", "bernoulli_draw"]


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class ClientInfo:
    """The per-client facts an availability model may condition on.

    Attributes:
        label_histograms: ``(N, L)`` non-negative ints, examples of class ``c`` held by
            client ``i`` (``PartitionReport.label_histograms``). Copied, read-only.
        sizes: ``(N,)`` ints, examples per client; must equal the row sums.

    The helpers are computed once and read-only. Label helpers (``min_label``, ``max_label``,
    ``dominant_label``) are -1 for a client without examples; models that need labels reject
    such clients. ``dominant_label`` breaks ties towards the smallest class index.

    Example:
        >>> info = ClientInfo.one_class_per_client([0, 9], num_classes=10)
        >>> info.num_clients, info.num_classes, info.min_label.tolist()
        (2, 10, [0, 9])
    """

    label_histograms: np.ndarray
    sizes: np.ndarray

    def __post_init__(self) -> None:
        hist = np.array(self.label_histograms)
        sizes = np.array(self.sizes)
        if hist.ndim != 2 or hist.shape[0] < 1 or hist.shape[1] < 1 or (
            hist.size and not np.issubdtype(hist.dtype, np.integer)
        ):
            raise ValueError(
                f"ClientInfo.label_histograms has dtype {hist.dtype} and shape {hist.shape}, "
                "expected a (num_clients >= 1, num_classes >= 1) integer array"
            )
        if sizes.shape != (hist.shape[0],) or not np.issubdtype(sizes.dtype, np.integer):
            raise ValueError(
                f"ClientInfo.sizes has dtype {sizes.dtype} and shape {sizes.shape}, expected "
                f"({hist.shape[0]},) integers (one per row of label_histograms)"
            )
        if hist.min() < 0:
            raise ValueError(f"ClientInfo.label_histograms holds {int(hist.min())}, expected >= 0")
        if not np.array_equal(hist.sum(axis=1), sizes):
            bad = int(np.flatnonzero(hist.sum(axis=1) != sizes)[0])
            raise ValueError(
                f"ClientInfo.sizes[{bad}] = {int(sizes[bad])}, expected the row sum of "
                f"label_histograms ({int(hist[bad].sum())})"
            )
        hist = hist.astype(np.int64)
        sizes = sizes.astype(np.int64)
        hist.flags.writeable = False
        sizes.flags.writeable = False
        object.__setattr__(self, "label_histograms", hist)
        object.__setattr__(self, "sizes", sizes)

    @classmethod
    def from_report(cls, report: Any) -> ClientInfo:
        """Build from a ``fedkit.data.PartitionReport`` (anything with the two attributes)."""
        return cls(label_histograms=report.label_histograms, sizes=report.sizes)

    @classmethod
    def one_class_per_client(
        cls, labels: Any, *, num_classes: int, size: int = 1
    ) -> ClientInfo:
        """Clients that each hold ``size`` examples of one class ``labels[i]``."""
        y = np.asarray(labels)
        check_int("num_classes", num_classes, 1)
        check_int("size", size, 1)
        if y.ndim != 1 or not y.size or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels = {labels!r}, expected a non-empty 1-D list of integers")
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"labels = {y.tolist()}, expected values in [0, {num_classes - 1}]")
        hist = np.zeros((y.size, num_classes), dtype=np.int64)
        hist[np.arange(y.size), y] = size
        return cls(label_histograms=hist, sizes=hist.sum(axis=1))

    @property
    def num_clients(self) -> int:
        """N, the number of clients."""
        return int(self.label_histograms.shape[0])

    @property
    def num_classes(self) -> int:
        """L, the number of classes."""
        return int(self.label_histograms.shape[1])

    @cached_property
    def min_label(self) -> np.ndarray:
        """``(N,)`` smallest class index present at each client (-1 if it has no examples)."""
        present = self.label_histograms > 0
        return _frozen(np.where(present.any(axis=1), present.argmax(axis=1), -1))

    @cached_property
    def max_label(self) -> np.ndarray:
        """``(N,)`` largest class index present at each client (-1 if it has no examples)."""
        present = self.label_histograms[:, ::-1] > 0
        last = self.num_classes - 1 - present.argmax(axis=1)
        return _frozen(np.where(present.any(axis=1), last, -1))

    @cached_property
    def dominant_label(self) -> np.ndarray:
        """``(N,)`` most frequent class of each client, ties to the smallest (-1 if empty)."""
        return _frozen(np.where(self.sizes > 0, self.label_histograms.argmax(axis=1), -1))

    @cached_property
    def num_labels_present(self) -> np.ndarray:
        """``(N,)`` number of distinct classes each client holds."""
        return _frozen(np.count_nonzero(self.label_histograms, axis=1))

    @cached_property
    def label_distribution(self) -> np.ndarray:
        """``(N, L)`` each client's label frequencies (rows sum to 1; 0 rows for empty clients)."""
        safe = np.maximum(self.sizes, 1)[:, None]
        return _frozen(self.label_histograms / safe)

    def require_labels(self, model: str) -> None:
        """Raise naming ``model`` unless every client holds at least one example."""
        empty = np.flatnonzero(self.sizes == 0)
        if empty.size:
            raise ValueError(
                f"availability model {model!r} conditions on labels, but client "
                f"{int(empty[0])} has no examples (sizes[{int(empty[0])}] = 0); expected "
                "every client to hold at least one example"
            )


@runtime_checkable
class AvailabilityModel(Protocol):
    """Which clients are online in round r (see the module docstring for the contract)."""

    @property
    def num_clients(self) -> int:
        """N, the number of clients the model covers."""
        ...

    def available(self, server_round: int) -> np.ndarray:
        """``(N,)`` bool: client i online in the 1-based round ``server_round``."""
        ...

    def probabilities(self, server_round: int) -> np.ndarray | None:
        """``(N,)`` marginal online probabilities of the round, or None if deterministic."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable model name and parameters."""
        ...


def availability_schedule(model: AvailabilityModel, num_rounds: int) -> np.ndarray:
    """Return the ``(num_rounds, N)`` bool matrix whose row ``r - 1`` is ``available(r)``.

    Example:
        >>> from fedkit.availability import AlwaysAvailable
        >>> availability_schedule(AlwaysAvailable(num_clients=2), 3).sum()
        np.int64(6)
    """
    check_int("num_rounds", num_rounds, 0)
    rows = [np.asarray(model.available(r), dtype=bool) for r in range(1, num_rounds + 1)]
    if not rows:
        return np.zeros((0, model.num_clients), dtype=bool)
    return np.stack(rows)


def bernoulli_draw(seed: int, server_round: int, p: np.ndarray) -> np.ndarray:
    """Independent ``Bernoulli(p[i])`` draws of round ``server_round`` (``(N,)`` bool).

    Client i is online iff the i-th uniform of ``numpy_rng(seed, "availability", round)``
    is below ``p[i]``; so ``p[i] = 1`` is always online and ``p[i] = 0`` never.
    """
    server_round = check_round(server_round)
    u = numpy_rng(seed, "availability", server_round).random(p.shape[0])
    return u < p
