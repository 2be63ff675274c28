"""Plaintext aggregation rules of the submodel task: the baselines and the reference.

:func:`row_sums` is in clear what submodel-aware secure aggregation computes under masks
(:mod:`fedkit.privacy.submodel`): per-row sums of count-weighted updates and of the 0/1
counts, which :func:`fedkit.privacy.submodel.row_average` turns into a mean over the clients
that truly used each row (Niu et al., MobiCom 2020; the authors' code,
``ps_plain_functions.average_submodel_updates_and_apply_global_update`` with
``size_agg_flag = 1``). :func:`weighted_sum` is the data-size weighting of the dense part and
of full-model FedAvg (McMahan et al., AISTATS 2017, Algorithm 1). Inputs are never modified.
See docs/submodel.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["row_sums", "weighted_sum"]


def row_sums(num_rows: int, width: int,
             updates: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per-row sums ``sum_u count_uj * Delta_uj`` and ``sum_u count_uj``.

    Args:
        num_rows: V.
        width: Values per row.
        updates: Per client ``(ids, values [len(ids), width], counts [len(ids)])``; ids
            distinct, in ``[0, V)``.

    Returns:
        ``(sums [V, width] float64, counts [V] int64)``.

    Raises:
        ValueError: On shapes that do not match or ids outside ``[0, V)``.

    Example:
        >>> s, c = row_sums(3, 1, [(np.array([0, 2]), np.ones((2, 1)), np.array([1, 0])),
        ...                        (np.array([0]), np.full((1, 1), 3.0), np.array([1]))])
        >>> s[:, 0].tolist(), c.tolist()
        ([4.0, 0.0, 0.0], [2, 0, 0])
    """
    sums = np.zeros((num_rows, width))
    counts = np.zeros(num_rows, dtype=np.int64)
    for ids, values, flags in updates:
        ids, flags = np.asarray(ids, np.int64), np.asarray(flags, np.int64)
        values = np.asarray(values, np.float64)
        if values.shape != (ids.size, width) or flags.shape != (ids.size,):
            raise ValueError(f"row update has ids {ids.shape}, values {values.shape}, counts "
                             f"{flags.shape}; expected ({ids.size}, {width}) values and "
                             f"({ids.size},) counts")
        if ids.size and (ids.min() < 0 or ids.max() >= num_rows):
            raise ValueError(f"row ids must lie in [0, {num_rows})")
        np.add.at(sums, ids, values * flags[:, None])
        np.add.at(counts, ids, flags)
    return sums, counts


def weighted_sum(vectors: Sequence[np.ndarray], weights: Sequence[float]
                 ) -> tuple[np.ndarray, float]:
    """``(sum_u w_u x_u, sum_u w_u)`` in float64.

    Raises:
        ValueError: If there are no vectors, lengths differ, or a weight is negative.

    Example:
        >>> total, weight = weighted_sum([np.ones(2), np.zeros(2)], [3.0, 1.0])
        >>> total.tolist(), weight
        ([3.0, 3.0], 4.0)
    """
    if not vectors or len(vectors) != len(weights):
        raise ValueError(f"weighted_sum got {len(vectors)} vectors and {len(weights)} weights")
    if min(weights) < 0:
        raise ValueError(f"weights must be >= 0, got {min(weights)}")
    total = np.zeros(np.shape(vectors[0]))
    for x, w in zip(vectors, weights, strict=True):
        total += float(w) * np.asarray(x, np.float64)
    return total, float(sum(weights))
