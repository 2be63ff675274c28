"""Validate a client's sample indices once, at the training/evaluation boundary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import torch

__all__ = ["IndexLike", "as_index_tensor"]

IndexLike: TypeAlias = torch.Tensor | np.ndarray | Sequence[int]
"""Positions of samples in a dataset: a 1-D integer tensor, array or sequence."""


def as_index_tensor(indices: IndexLike, num_samples: int, *, owner: str) -> torch.Tensor:
    """Return ``indices`` as a non-empty 1-D int64 CPU tensor of valid sample positions.

    The input is never modified; the result may share its memory when it already is a 1-D
    int64 CPU tensor (callers only read it).

    Args:
        indices: A 1-D integer array, tensor or sequence of positions into the data.
        num_samples: Number of samples in the data (valid positions are ``0..num_samples-1``).
        owner: Name of the calling function, for error messages.

    Raises:
        ValueError: If ``indices`` is empty, not 1-D, not of an integer dtype, or holds a
            position outside ``[0, num_samples)``.
    """
    if isinstance(indices, torch.Tensor):
        index = indices.detach().to("cpu")
    else:
        array = np.asarray(indices)
        if array.dtype.kind not in "iu" and array.size > 0:
            raise ValueError(
                f"{owner}: indices must have an integer dtype, got dtype {array.dtype}"
            )
        # ascontiguousarray: torch cannot wrap negative strides (e.g. ``idx[::-1]``)
        index = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
    if index.dtype == torch.bool or index.dtype.is_floating_point or index.is_complex():
        raise ValueError(f"{owner}: indices must have an integer dtype, got dtype {index.dtype}")
    if index.ndim != 1:
        raise ValueError(f"{owner}: indices must be 1-D, got shape {tuple(index.shape)}")
    if index.numel() == 0:
        raise ValueError(
            f"{owner}: indices is empty, expected at least one sample position (skip "
            f"clients without data before calling)"
        )
    index = index.to(torch.int64)
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= num_samples:
        bad = low if low < 0 else high
        raise ValueError(
            f"{owner}: index {bad} is out of range; expected positions in [0, {num_samples})"
        )
    return index
