"""Conversion between Flower ArrayRecords and the flat float64 vectors the rules work on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from flwr.app import Array, ArrayRecord

from fedkit.algorithms._npy import from_flower_array, to_flower_array

__all__ = ["flatten", "unflatten", "float64_like", "stack_rows"]


def flatten(arrays: Sequence[np.ndarray] | ArrayRecord) -> np.ndarray:
    """Concatenate the arrays (in order) into one float64 vector."""
    if isinstance(arrays, ArrayRecord):
        arrays = [from_flower_array(a) for a in arrays.values()]
    if not arrays:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])


def unflatten(vector: np.ndarray, reference: ArrayRecord,
              dtype: np.dtype | type | None = None) -> ArrayRecord:
    """Split ``vector`` into arrays with the names and shapes of ``reference``.

    Each array takes its reference's dtype, or ``dtype`` for all when given (e.g. float64
    deltas shaped like a float32 model).

    Raises:
        ValueError: If the vector's length differs from the reference's total size.
    """
    total = sum(int(np.prod(a.shape)) for a in reference.values())
    if vector.shape != (total,):
        raise ValueError(f"vector has shape {vector.shape}, expected ({total},)")
    out: dict[str, Array] = {}
    offset = 0
    for name, ref in reference.items():
        size = int(np.prod(ref.shape))
        target = np.dtype(ref.dtype if dtype is None else dtype)
        out[name] = to_flower_array(vector[offset:offset + size].reshape(ref.shape).astype(target))
        offset += size
    return ArrayRecord(out)


def float64_like(reference: ArrayRecord) -> ArrayRecord:
    """Zero float64 arrays with the names and shapes of ``reference`` (a dtype template)."""
    return ArrayRecord({name: to_flower_array(np.zeros(tuple(a.shape), dtype=np.float64))
                        for name, a in reference.items()})


def stack_rows(rows: list[np.ndarray], dim: int) -> np.ndarray:
    """Stack per-client vectors into a ``(len(rows), dim)`` array (``(0, dim)`` if none)."""
    return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float64)
