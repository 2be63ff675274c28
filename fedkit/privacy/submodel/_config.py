"""Configuration and layout of submodel-aware secure aggregation (see ``submodel_secagg``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedkit.privacy.graph import neighbourhood_size
from fedkit.privacy.quantize import check_headroom
from fedkit.privacy.secagg import SecAggConfig, SecAggConfigError, SecAggError
from fedkit.privacy.secagg.extend import check_int
from fedkit.privacy.submodel._crowds import DEFAULT_MIN_ROW_HOLDERS

__all__ = ["SubmodelSecAggConfig", "check_rows"]


@dataclass(frozen=True, kw_only=True)
class SubmodelSecAggConfig(SecAggConfig):
    """Parameters of one submodel-aware secure-aggregation round.

    Every field of :class:`SecAggConfig` keeps its meaning; ``vector_length`` is the length
    D of the dense part (the weight is appended to it, as in SecAgg). A client's masked vector
    holds, for each row of its perturbed set S''_u in increasing id order, the block ``[w row
    values, 1 count]``, then the D dense values times ``n_u / max_weight``, then that fraction:
    ``len(S''_u) * (row_width + 1) + vector_length + 1`` ring elements (:meth:`layout_length`).

    Args:
        num_rows: V, the number of rows of the table (row ids lie in ``[0, V)``).
        row_width: w, the values per row (e.g. the embedding dimension).
        min_row_holders: F, the floor on a row's crowd: a client reveals the mask of its
            block of row j only when it and at least F - 1 alive graph neighbours hold j
            (see ``_crowds``); in ``[1, degree + 1]``; 1 turns the floor off (the self mask
            then covers the rows too, and nothing is withheld). Default 2.
        **kwargs: The fields of :class:`SecAggConfig`.

    Headroom: row values are clipped to ``[-clip, clip]`` and dense values are at most
    ``clip`` after weighting, so SecAgg's rule ``n * ceil(max(clip, 1) * scale) <= 2^(bits-1)
    - 1`` covers both; counts are exact 0/1 integers whose sum is at most ``n``, also checked.

    Raises:
        SecAggConfigError: On an invalid field.
        HeadroomError: If an explicit ``scale`` (or the count sum) overflows the ring.

    Example:
        >>> cfg = SubmodelSecAggConfig(
        ...     num_clients=10, num_rows=100, row_width=4, vector_length=3, threshold=6)
        >>> cfg.layout_length(2)  # 2 rows of 4 values + count, 3 dense values, the weight
        14
    """

    num_rows: int
    row_width: int
    min_row_holders: int = DEFAULT_MIN_ROW_HOLDERS

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.committed_graph:
            raise SecAggConfigError(
                "committed_graph=True is not supported by submodel-aware secure aggregation "
                "yet (its advertise-keys and keys-broadcast messages carry no nonce commitment "
                "or nonces); use committed_graph=False"
            )
        if self.consistency_check:
            raise SecAggConfigError(
                "consistency_check=True is not supported by submodel-aware secure aggregation "
                "yet (its advertise-keys and keys-broadcast messages carry no signatures and "
                "it has no consistency stage); use consistency_check=False"
            )
        check_int("num_rows", self.num_rows, 1, (1 << 40) - 1)
        check_int("row_width", self.row_width, 1, (1 << 24) - 1)
        check_headroom(self.num_clients, 1.0, 1.0, self.bits)  # counts: sum of n values in {0, 1}
        # a crowd is counted within one neighbourhood: a larger floor could never be met
        check_int("min_row_holders", self.min_row_holders, 1,
                  neighbourhood_size(self.num_clients, self.num_neighbours) + 1)

    @property
    def row_floor(self) -> bool:
        """Whether rows are released only in crowds (``min_row_holders > 1``)."""
        return self.min_row_holders > 1

    @property
    def block_width(self) -> int:
        """Ring elements per row block: ``row_width`` values and one count."""
        return self.row_width + 1

    def layout_length(self, num_set_rows: int) -> int:
        """Ring elements of a masked vector whose S'' has ``num_set_rows`` rows."""
        return num_set_rows * self.block_width + self.wire_length


def check_rows(
    rows: object,
    config: SubmodelSecAggConfig,
    name: str,
    error: type[SecAggError] = SecAggConfigError,
) -> np.ndarray:
    """Validate a perturbed row set: a 1-D, strictly increasing integer array in ``[0, V)``.

    Args:
        rows: The row ids (any integer array-like; not modified).
        config: Gives V (``num_rows``).
        name: Whose set it is, for the error message (e.g. ``"client 7"``).
        error: The exception class raised (a protocol error when the set came in a message).

    Returns:
        A new read-only ``int64`` array.

    Raises:
        SecAggConfigError: (or ``error``) On another shape or dtype, unsorted or duplicate
            ids, or an id outside ``[0, num_rows)``.
    """
    array = np.asarray(rows)
    if array.ndim != 1:
        raise error(f"{name}: row set has shape {array.shape}, expected 1-D")
    if array.size and array.dtype.kind not in "ui":
        raise error(f"{name}: row set has dtype {array.dtype}, expected integer row ids")
    if array.size and (int(array.min()) < 0 or int(array.max()) >= config.num_rows):
        raise error(
            f"{name}: row ids must lie in [0, num_rows={config.num_rows}), got "
            f"[{int(array.min())}, {int(array.max())}]"
        )
    out = array.astype(np.int64)
    if out.size > 1 and not np.all(out[1:] > out[:-1]):
        raise error(f"{name}: row ids must be strictly increasing (sorted, distinct)")
    out.flags.writeable = False
    return out
