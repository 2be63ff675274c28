"""The server of submodel-aware secure aggregation (see ``submodel_secagg``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import numpy as np

from fedkit.privacy.hazmat.prg import ROW_SEED_SIZE, expand_rows
from fedkit.privacy.quantize import dequantize
from fedkit.privacy.secagg import (
    MaskedInput,
    SecAggConfigError,
    SecAggProtocolError,
    SecAggServer,
    Stage,
)
from fedkit.privacy.submodel._config import SubmodelSecAggConfig, check_rows
from fedkit.privacy.submodel._crowds import released_slots
from fedkit.privacy.submodel._layout import MaskStreams, scatter_add
from fedkit.privacy.submodel._messages import (
    SubmodelAdvertiseKeys,
    SubmodelKeysBroadcast,
    SubmodelUnmaskResponse,
)
from fedkit.privacy.submodel._result import SubmodelSecAggResult

__all__ = ["SubmodelSecAggServer"]

logger = logging.getLogger(__name__)
_SIGNED = {32: np.int32, 64: np.int64}


class SubmodelSecAggServer(SecAggServer):
    """The server of one submodel-aware round: SecAgg's stages, a per-row global ring table.

    Keys arrive with each client's public row set S''_u (:class:`SubmodelAdvertiseKeys`);
    :meth:`keys_for` gives each client the rows it shares with each graph neighbour. A masked
    vector must have the length of its sender's layout; the server keeps its row blocks and
    adds its tail to the dense accumulator. :meth:`aggregate` subtracts each survivor's
    self mask from the tail and, for each dropped client u, the stream PRG(s_uv) of every
    surviving neighbour v from v's blocks of S''_u ∩ S''_v and the tail; it then removes the
    row masks whose seeds the survivors revealed (:class:`SubmodelUnmaskResponse`) and adds
    into a ``[V, w + 1]`` ring table only the blocks of crowds whose every member revealed
    its seed (``_crowds.released_slots``). With the floor off (``min_row_holders = 1``) the
    self mask covers the blocks and every survivor's block is added.

    Args:
        config: The round's :class:`SubmodelSecAggConfig`.
        client_ids: The cohort; when given, keys from other ids are rejected.
        rows: The row sets the clients already reported (e.g. when downloading their
            submodel); when given, a client advertising another set is rejected.

    Raises:
        SecAggConfigError: If ``config`` is not a :class:`SubmodelSecAggConfig` or an
            expected row set is invalid.
    """

    _MESSAGE_TYPES = MappingProxyType(
        {
            **SecAggServer._MESSAGE_TYPES,
            Stage.ADVERTISE_KEYS: SubmodelAdvertiseKeys,
            Stage.UNMASK: SubmodelUnmaskResponse,
        }
    )

    def __init__(
        self,
        config: SubmodelSecAggConfig,
        client_ids: Iterable[int] | None = None,
        *,
        rows: Mapping[int, np.ndarray] | None = None,
    ) -> None:
        if not isinstance(config, SubmodelSecAggConfig):
            raise SecAggConfigError(
                f"config has type {type(config).__name__}, expected SubmodelSecAggConfig"
            )
        super().__init__(config, client_ids)
        self._expected_rows = None
        if rows is not None:
            self._expected_rows = {
                int(cid): check_rows(r, config, f"expected row set of client {cid}")
                for cid, r in rows.items()
            }
        self._rows: dict[int, np.ndarray] = {}
        self._inputs: dict[int, np.ndarray] = {}  # masked vectors (their blocks are used)
        # self._sum (SecAgg's accumulator, D + 1 elements) holds the dense part and weight

    def _receive_keys(self, message: SubmodelAdvertiseKeys) -> None:
        cid = message.client_id
        name = f"SubmodelAdvertiseKeys from client {cid}"
        rows = check_rows(message.rows, self.config, name, error=SecAggProtocolError)
        if self._expected_rows is not None:
            expected = self._expected_rows.get(cid)
            if expected is None or not np.array_equal(expected, rows):
                raise SecAggProtocolError(
                    f"{name}: its row set ({rows.size} rows) differs from the one it reported "
                    f"({'none' if expected is None else f'{expected.size} rows'}); rejected"
                )
        super()._receive_keys(message)
        self._rows[cid] = rows

    def keys_for(self, client_id: int) -> SubmodelKeysBroadcast:
        """After :meth:`broadcast_keys`: client ``client_id``'s keys broadcast.

        It holds the roster of :meth:`SecAggServer.keys_for` (full keys of u and its graph
        neighbours, digests of the others: u needs every digest to recompute the graph seed)
        and, for u's graph neighbours v only, the rows u shares with v (S''_v ∩ S''_u):
        exactly the rows its pairwise mask with v is laid over, so with a k-regular graph both
        cost O(k) per client, and u learns no more of S''_v.

        Raises:
            SecAggProtocolError: For a client not in the roster.
        """
        keys = super().keys_for(client_id)
        own = self._rows[client_id]
        return SubmodelKeysBroadcast(
            keys.run_id,
            keys.round_id,
            client_id,
            keys.public_keys,
            MappingProxyType({v: np.intersect1d(self._rows[v], own, assume_unique=True)
                              for v in sorted(self._graph[client_id])}),
            keys.digests,
        )

    @property
    def reporters(self) -> tuple[int, ...]:
        """The clients whose row set S'' the server received (advertise-keys), sorted."""
        return tuple(sorted(self._rows))

    def row_set(self, client_id: int) -> np.ndarray:
        """The row set S'' that ``client_id`` advertised (sorted row ids, read-only)."""
        if client_id not in self._rows:
            raise SecAggProtocolError(f"row_set: client {client_id} advertised no row set")
        rows = self._rows[client_id].view()
        rows.flags.writeable = False
        return rows

    def _add_masked(self, message: MaskedInput) -> None:
        c, cid, masked = self.config, message.client_id, message.masked
        rows = self._rows[cid]
        length = c.layout_length(rows.size)
        if masked.shape != (length,) or masked.dtype != self._sum.dtype:
            raise SecAggProtocolError(
                f"masked vector from client {cid} has shape {masked.shape} dtype "
                f"{masked.dtype}, expected ({length},) {self._sum.dtype} (its layout: "
                f"{rows.size} rows x (row_width {c.row_width} + 1 count) + vector_length "
                f"{c.vector_length} + weight); rejected"
            )
        np.add(self._sum, masked[rows.size * c.block_width :], out=self._sum)
        self._inputs[cid] = masked

    def _check_response(self, message: SubmodelUnmaskResponse) -> None:
        super()._check_response(message)
        cid, revealed = message.client_id, message.rows
        if revealed.size and not np.all(np.isin(revealed, self._rows[cid], assume_unique=True)):
            raise SecAggProtocolError(
                f"SubmodelUnmaskResponse from client {cid} reveals row seeds of rows outside "
                "its S''; rejected"
            )
        if revealed.size and not self.config.row_floor:
            raise SecAggProtocolError(
                f"SubmodelUnmaskResponse from client {cid} reveals row seeds although the "
                "floor is off (min_row_holders = 1); rejected"
            )

    def aggregate(self) -> SubmodelSecAggResult:
        """Close stage 3: remove every mask from the row table and the dense sum; decode.

        Raises:
            SecAggAbort: As :meth:`SecAggServer.aggregate` (too few responses or shares, a
                recovered key not matching its public key).

        References:
            Bonawitz et al., CCS 2017, Fig. 4; Niu et al., MobiCom 2020, §5; Bell et al., CCS
            2020, §3.
        """
        self._close(Stage.UNMASK, len(self._responses))
        c = self.config
        k_width = c.block_width
        dense = self._sum.copy()
        blocks = {
            u: self._inputs[u][: self._rows[u].size * k_width].reshape(-1, k_width).copy()
            for u in self._alive
        }
        streams = MaskStreams(c.bits)
        self_seeds, pair_seeds = self._mask_seeds()
        for owner, seed in self_seeds:
            rows = self._rows[owner]
            if c.row_floor:  # the self mask covers the tail only
                np.subtract(dense, streams.expand(seed, dense.size), out=dense)
            else:
                stream = streams.expand(seed, c.layout_length(rows.size))
                scatter_add(blocks[owner], dense, np.arange(rows.size), stream, sign=-1)
        for owner, v, seed, sign in pair_seeds:
            common = np.intersect1d(self._rows[owner], self._rows[v], assume_unique=True)
            stream = streams.expand(seed, c.layout_length(common.size))
            at = np.searchsorted(self._rows[v], common)
            scatter_add(blocks[v], dense, at, stream, sign=sign)
        released = self._released()
        table = np.zeros((c.num_rows, k_width), dtype=dense.dtype)
        holders = np.zeros(c.num_rows, dtype=np.int64)
        withheld = np.zeros(c.num_rows, dtype=np.int64)
        for u in sorted(self._alive):
            rows, keep = self._rows[u], released[u]
            if c.row_floor and keep.any():
                response = self._responses[u]
                seeds = np.frombuffer(response.row_seeds, dtype=np.uint8).reshape(
                    -1, ROW_SEED_SIZE)
                wanted = np.isin(response.rows, rows[keep], assume_unique=True)
                masks = expand_rows(seeds[wanted], k_width, bits=c.bits)
                at = np.searchsorted(rows, response.rows[wanted])
                np.subtract(blocks[u][at], masks, out=masks)
                blocks[u][at] = masks
            table[rows[keep]] += blocks[u][keep]
            holders[rows[keep]] += 1
            withheld[rows[~keep]] += 1
        w = c.row_width
        row_sums = dequantize(table[:, :w], scale=c.resolved_scale, bits=c.bits)
        row_counts = table[:, w].view(_SIGNED[c.bits]).astype(np.int64)
        decoded = dequantize(dense, scale=c.resolved_scale, bits=c.bits) * c.max_weight
        result = SubmodelSecAggResult(
            ring_rows=table,
            ring_dense=dense,
            row_sums=row_sums,
            row_counts=row_counts,
            dense_sum=decoded[:-1],
            total_weight=float(decoded[-1]),
            survivors=tuple(sorted(self._alive)),
            dropped=tuple(sorted(self._dropped)),
            row_holders=holders,
            withheld_holders=withheld,
        )
        logger.info(
            "submodel secagg round %s: %s inputs summed, %s dropped, %s rows used, %s rows "
            "withheld (%s blocks below the floor of %s holders or of a client that did not "
            "unmask)",
            c.round_id,
            len(self._alive),
            len(self._dropped),
            int(np.count_nonzero(row_counts)),
            result.rows_withheld,
            result.row_slots_withheld,
            c.min_row_holders,
        )
        return result

    def _released(self) -> dict[int, np.ndarray]:
        """Per survivor, which of its blocks enter the sums (all of them with the floor off)."""
        rows = {u: self._rows[u] for u in self._alive}
        if not self.config.row_floor:
            return {u: np.ones(r.size, dtype=bool) for u, r in rows.items()}
        revealed = {u: self._responses[u].rows for u in self._alive if u in self._responses}
        return released_slots(rows, revealed, {u: self._graph[u] for u in self._alive})
