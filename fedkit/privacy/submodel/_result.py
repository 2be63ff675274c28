"""The outcome of submodel-aware secure aggregation and the server's averaging rule."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fedkit.privacy.secagg import SecAggReport
from fedkit.privacy.secagg.extend import divide_by_weight

__all__ = ["SubmodelSecAggReport", "SubmodelSecAggResult", "row_average"]


def row_average(sum_values: np.ndarray, sum_counts: np.ndarray) -> np.ndarray:
    """Average each row over the clients that truly used it; rows nobody used get zero.

    ``out[j] = sum_values[j] / sum_counts[j]`` where ``sum_counts[j] > 0``, else 0, so
    ``W += row_average(...)`` leaves a row that no contributing client used unchanged
    (Niu et al., MobiCom 2020; the authors' code,
    ``ps_plain_functions.average_submodel_updates_and_apply_global_update``). Fake rows (in
    S'' but not used) add 0 to numerator and denominator.

    Args:
        sum_values: ``[V, ...]`` per-row sums of the row updates (not modified).
        sum_counts: ``[V]`` non-negative integer per-row sums of the 0/1 counts.

    Returns:
        A new float64 array shaped like ``sum_values``.

    Raises:
        ValueError: On mismatched lengths, non-integer or negative counts.

    Example:
        >>> row_average(np.array([[2.0, 4.0], [0.0, 0.0], [3.0, 3.0]]), np.array([2, 0, 3]))
        array([[1., 2.],
               [0., 0.],
               [1., 1.]])

    References:
        C. Niu et al., "Secure Federated Submodel Learning", arXiv 1911.02254; official code
        ``ps_plain_functions.average_submodel_updates_and_apply_global_update``.
    """
    values = np.asarray(sum_values, dtype=np.float64)
    counts = np.asarray(sum_counts)
    if counts.ndim != 1 or values.ndim < 1 or values.shape[0] != counts.shape[0]:
        raise ValueError(
            f"sum_counts has shape {counts.shape}, expected one count per row of sum_values "
            f"(shape {values.shape})"
        )
    if counts.size and counts.dtype.kind not in "ui":
        raise ValueError(f"sum_counts has dtype {counts.dtype}, expected integers")
    if counts.size and counts.min() < 0:
        raise ValueError(f"sum_counts has a negative entry {int(counts.min())}")
    out = np.zeros(values.shape, dtype=np.float64)
    used = counts > 0
    out[used] = values[used] / counts[used].reshape((-1,) + (1,) * (values.ndim - 1))
    return out


@dataclass(frozen=True)
class SubmodelSecAggResult:
    """The unmasked per-row and dense sums of one submodel-aware round.

    Attributes:
        ring_rows: ``[V, w + 1]`` ring table: per row, the sum of the survivors' quantised
            blocks (values, then count).
        ring_dense: ``[D + 1]`` ring sum of the dense parts (weight last).
        row_sums: ``[V, w]`` float64: per row j, ``sum_u count_uj * clip(Delta_uj)`` over the
            survivors with j in S''_u (up to quantisation error); zero elsewhere.
        row_counts: ``[V]`` int64, exact: per row, how many survivors truly used it.
        dense_sum: ``[D]`` float64: ``sum_u n_u * clip(x_u)``.
        total_weight: ``sum_u n_u``.
        survivors: Ids whose input is in the sums (sent a masked input), sorted.
        dropped: Ids that shared keys but sent no masked input, sorted.
        row_holders: ``[V]`` int64: per row, the survivors whose block is in the sums (the
            row sums and counts cover exactly these holders).
        withheld_holders: ``[V]`` int64: per row, the survivors holding it whose block was
            withheld (a crowd below ``min_row_holders``, or a member that did not unmask):
            their updates of that row are dropped this round, not carried over.

    Rows and blocks the floor withholds are counted by :attr:`rows_withheld` and
    :attr:`row_slots_withheld` (``fedkit.privacy.submodel._crowds``).
    """

    ring_rows: np.ndarray
    ring_dense: np.ndarray
    row_sums: np.ndarray
    row_counts: np.ndarray
    dense_sum: np.ndarray
    total_weight: float
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]
    row_holders: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    withheld_holders: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def rows_withheld(self) -> int:
        """Rows some survivor held but none of whose sums left the protocol this round."""
        return int(np.count_nonzero((self.withheld_holders > 0) & (self.row_holders == 0)))

    @property
    def row_slots_withheld(self) -> int:
        """Survivor blocks (one client's update of one row) withheld this round."""
        return int(self.withheld_holders.sum())

    @property
    def row_mean(self) -> np.ndarray:
        """:func:`row_average` of ``row_sums`` and ``row_counts`` (zero for unused rows)."""
        return row_average(self.row_sums, self.row_counts)

    @property
    def dense_mean(self) -> np.ndarray:
        """``dense_sum / total_weight``: ``sum_u n_u Delta_u / sum_u n_u``.

        Raises:
            ZeroDivisionError: If the total weight is zero.
        """
        return divide_by_weight(self.dense_sum, self.total_weight)


@dataclass(frozen=True)
class SubmodelSecAggReport(SecAggReport):
    """What happened in one ``run_submodel_secagg`` round (fields as :class:`SecAggReport`)."""

    result: SubmodelSecAggResult  # type: ignore[assignment]
