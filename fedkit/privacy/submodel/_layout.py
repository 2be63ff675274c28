"""The per-row layout of submodel-aware secure aggregation: encoding, scatter, mask streams.

A client's vector is ``[blocks | tail]``: one block of ``w + 1`` ring elements (w values, 1
count) per row of its sorted S''_u, then the tail of D dense values and the weight fraction.
The same :func:`scatter_add` lays a masked vector or a mask stream onto a table of blocks:
the client's own ``[|S''_u|, w + 1]`` blocks (index = position in S''_u) or the server's
global ``[V, w + 1]`` table (index = row id), so both sides put element ``i`` of a stream at
the same (row, column) and the masks cancel in the server's sum.
"""

from __future__ import annotations

import numpy as np

from fedkit.privacy.hazmat.prg import MaskExpander
from fedkit.privacy.quantize import quantize
from fedkit.privacy.submodel._config import SubmodelSecAggConfig

__all__ = ["MaskStreams", "encode_layout", "scatter_add"]


def scatter_add(
    blocks: np.ndarray, tail: np.ndarray, index: np.ndarray, vector: np.ndarray, *, sign: int
) -> None:
    """Add ``sign * vector`` onto ``blocks[index]`` (row by row) and ``tail``, in place.

    Args:
        blocks: Ring table ``[rows, w + 1]`` (a view into a client's vector, or the server's).
        tail: Ring vector of D + 1 elements (dense part and weight).
        index: Distinct row indices into ``blocks``, in the order the vector lists its blocks.
        vector: ``len(index) * (w + 1) + D + 1`` ring elements.
        sign: +1 or -1.

    Raises:
        ValueError: On a length mismatch or a sign other than +-1.
    """
    width = blocks.shape[1]
    head = index.size * width
    if vector.shape != (head + tail.size,):
        raise ValueError(
            f"vector of {vector.size} elements does not fit {index.size} blocks of {width} "
            f"and a tail of {tail.size}"
        )
    if sign not in (1, -1):
        raise ValueError(f"sign={sign!r} must be +1 or -1")
    op = np.add if sign == 1 else np.subtract
    if index.size:
        blocks[index] = op(blocks[index], vector[:head].reshape(index.size, width))
    op(tail, vector[head:], out=tail)


def encode_layout(
    config: SubmodelSecAggConfig,
    row_values: np.ndarray,
    row_counts: np.ndarray,
    dense: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Quantise one client's validated input into its ring layout (not yet masked).

    Row values are clipped to ``[-clip, clip]``, multiplied by their 0/1 count (a row the
    client did not use contributes zeros) and stochastically rounded at the config's scale;
    counts are exact integers, not scaled; dense values are clipped, multiplied by
    ``fraction = n_u / max_weight`` and rounded like SecAgg's; the fraction comes last.

    Args:
        config: The round's configuration.
        row_values: ``[k, w]`` finite floats, one row per row of S''_u in increasing id order.
        row_counts: ``[k]`` values in {0, 1}.
        dense: ``[D]`` finite floats.
        fraction: ``n_u / max_weight`` in ``[0, 1]``.
        rng: Source of the (non-secret) rounding noise.

    Returns:
        A new ring vector of ``config.layout_length(k)`` elements.
    """
    k, w, width = row_counts.size, config.row_width, config.block_width
    plain = np.zeros(config.layout_length(k), dtype=np.float64)
    values = plain[: k * width].reshape(k, width)[:, :w]
    np.clip(row_values, -config.clip, config.clip, out=values)
    values *= row_counts[:, None]
    tail = plain[k * width :]
    np.clip(dense, -config.clip, config.clip, out=tail[:-1])
    tail[:-1] *= fraction
    tail[-1] = fraction
    ring = quantize(
        plain, clip=config.element_bound, scale=config.resolved_scale, bits=config.bits, rng=rng
    )
    # the count slots were 0.0, which stochastic rounding keeps at 0: now the exact counts
    ring[: k * width].reshape(k, width)[:, w] = row_counts.astype(ring.dtype)
    return ring


class MaskStreams:
    """PRG mask streams of varying lengths, one :class:`MaskExpander` per length.

    Args:
        bits: Ring size in bits (32 or 64).
    """

    def __init__(self, bits: int) -> None:
        self._bits = bits
        self._expanders: dict[int, MaskExpander] = {}

    def expand(self, seed: bytes, length: int) -> np.ndarray:
        """Return PRG(seed) of ``length`` ring elements (a view, overwritten by the next call)."""
        if length not in self._expanders:
            self._expanders[length] = MaskExpander(length, bits=self._bits)
        return self._expanders[length].expand(seed)
