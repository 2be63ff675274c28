"""The client of submodel-aware secure aggregation (see ``submodel_secagg``)."""

from __future__ import annotations

import dataclasses
import secrets

import numpy as np

from fedkit.privacy.hazmat.keys import derive_key
from fedkit.privacy.hazmat.prg import ROW_KEY_SIZE, expand_rows, row_seeds
from fedkit.privacy.secagg import (
    KeysBroadcast,
    MaskedInput,
    SecAggClient,
    SecAggConfigError,
    SecAggPolicyError,
    SecAggProtocolError,
    SecAggStateError,
    ShareKeys,
    SharesBroadcast,
    Stage,
    UnmaskRequest,
)
from fedkit.privacy.submodel._config import SubmodelSecAggConfig, check_rows
from fedkit.privacy.submodel._crowds import DEFAULT_MIN_ROW_HOLDERS, crowd_sizes
from fedkit.privacy.submodel._layout import MaskStreams, encode_layout, scatter_add
from fedkit.privacy.submodel._messages import (
    SubmodelAdvertiseKeys,
    SubmodelKeysBroadcast,
    SubmodelUnmaskResponse,
)

__all__ = ["SubmodelSecAggClient"]


class SubmodelSecAggClient(SecAggClient):
    """One client of one submodel-aware round: SecAgg's four stages over a per-row layout.

    The client's perturbed row set S''_u is public: it travels with its keys
    (:class:`SubmodelAdvertiseKeys`) and the server sends each client the sets of its graph
    neighbours (:class:`SubmodelKeysBroadcast`; all of them on the complete graph). Its
    masked vector holds one block ``[w values, count]`` per row of S''_u, then the weighted
    dense part and the weight fraction. Masks: the self mask PRG(b_u) covers the dense part
    and weight; each row block its own mask from a seed only this client knows (with the
    floor off, ``min_row_holders = 1``, the self mask covers the blocks too); the pairwise
    mask with a neighbour v is one PRG(s_uv) stream laid over the blocks of the rows in
    S''_u ∩ S''_v (increasing id) and then the dense part and weight. At unmask time it
    reveals the seeds of the rows whose crowd meets the floor only (``_crowds``).

    Args:
        config: The round's :class:`SubmodelSecAggConfig` (identical on every party).
        client_id: This client's stable id (``0 <= id < 2^64``).
        rows: S''_u, strictly increasing row ids in ``[0, num_rows)``.
        rng: Generator for stochastic rounding (not secret); default: seeded by the OS.
        min_row_holders: This client's own floor on the crowd of a row (default 2): it
            refuses a ``config`` whose ``min_row_holders`` is lower, since the server could
            otherwise turn the floor off.

    Raises:
        SecAggConfigError: If ``config`` is not a :class:`SubmodelSecAggConfig`, ``rows``
            is not a valid row set or ``min_row_holders`` is not an integer >= 1.
        SecAggPolicyError: If ``config.min_row_holders`` is below ``min_row_holders``.
    """

    config_class = SubmodelSecAggConfig

    def __init__(
        self,
        config: SubmodelSecAggConfig,
        client_id: int,
        rows: np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        min_row_holders: int = DEFAULT_MIN_ROW_HOLDERS,
    ) -> None:
        if not isinstance(config, SubmodelSecAggConfig):
            raise SecAggConfigError(
                f"config has type {type(config).__name__}, expected SubmodelSecAggConfig"
            )
        floor = min_row_holders
        if isinstance(floor, bool) or not isinstance(floor, int) or floor < 1:
            raise SecAggConfigError(f"min_row_holders = {floor!r}, expected an integer >= 1")
        if config.min_row_holders < floor:
            raise SecAggPolicyError(
                f"client {client_id} refuses the round: min_row_holders = "
                f"{config.min_row_holders} is below its floor {floor} (a row would leave "
                "the protocol from fewer holders)"
            )
        super().__init__(config, client_id, rng=rng)
        self.rows = check_rows(rows, config, f"client {client_id}")
        self._peer_rows: dict[int, np.ndarray] = {}
        self._row_key = secrets.token_bytes(32)  # never shared: seeds of the row masks

    def advertise_keys(self) -> SubmodelAdvertiseKeys:
        """Stage 0: return this round's two fresh public keys and the row set S''_u."""
        keys = super().advertise_keys()
        return SubmodelAdvertiseKeys(
            keys.run_id, keys.round_id, keys.client_id, keys.enc_public, keys.mask_public, self.rows
        )

    def share_keys(self, broadcast: SubmodelKeysBroadcast) -> ShareKeys:
        """Stage 1: SecAgg's roster checks, then the row sets: exactly its neighbours', valid.

        Raises:
            SecAggProtocolError: As :meth:`SecAggClient.share_keys`; not a
                :class:`SubmodelKeysBroadcast` or addressed to another client; row sets of
                other clients than its graph neighbours; a neighbour's row set invalid.
            SecAggAbort: Fewer than ``threshold`` clients in the neighbourhood.
        """
        if isinstance(broadcast, SubmodelKeysBroadcast):
            keys = KeysBroadcast(broadcast.run_id, broadcast.round_id, broadcast.public_keys,
                                 broadcast.digests)
        else:
            keys = broadcast  # SecAgg's check refuses it unless it is a KeysBroadcast
        reply = super().share_keys(keys)
        try:
            self._peer_rows = self._check_row_sets(broadcast)
        except SecAggProtocolError:
            self._next = -1  # stopped, as after any failed check
            raise
        return reply

    def _check_row_sets(self, broadcast: object) -> dict[int, np.ndarray]:
        c, me = self.config, self.client_id
        if not isinstance(broadcast, SubmodelKeysBroadcast):
            raise SecAggProtocolError(
                f"client {me} expected a SubmodelKeysBroadcast, got {type(broadcast).__name__}"
            )
        if broadcast.client_id != me:
            raise SecAggProtocolError(
                f"client {me} received the keys broadcast addressed to client "
                f"{broadcast.client_id}"
            )
        listed = frozenset(broadcast.rows)
        if listed != self._neighbours:
            missing, extra = sorted(self._neighbours - listed), sorted(listed - self._neighbours)
            raise SecAggProtocolError(
                f"client {me}: the roster's row sets do not match its graph neighbours "
                f"(missing {missing}, not neighbours {extra})"
            )
        return {
            v: check_rows(
                broadcast.rows[v], c, f"client {me}: row set of client {v}",
                error=SecAggProtocolError,
            )
            for v in sorted(self._neighbours)
        }

    def masked_input(
        self,
        broadcast: SharesBroadcast,
        vector: np.ndarray,
        weight: float = 1.0,
        *,
        row_values: np.ndarray | None = None,
        row_counts: np.ndarray | None = None,
    ) -> MaskedInput:
        """Stage 2: decrypt the shares, then return the masked per-row layout.

        Args:
            broadcast: The shares routed to this client.
            vector: The dense update (``vector_length`` floats), weighted by ``weight``.
            weight: n_u in ``[0, max_weight]`` (e.g. the client's training-set size).
            row_values: ``[len(S''_u), row_width]`` row updates, rows of S''_u in increasing
                id order (fake rows: anything, they are zeroed by their count); may be
                omitted when S''_u is empty.
            row_counts: ``[len(S''_u)]`` 0/1 "involved" flags (1 iff the client truly
                trained the row).

        Returns:
            The masked vector of ``config.layout_length(len(S''_u))`` ring elements.

        Raises:
            SecAggProtocolError: As :meth:`SecAggClient.masked_input`; row values or counts
                of the wrong shape, non-finite values, counts other than 0 and 1.
            SecAggAbort: Fewer than ``threshold`` neighbourhood members shared keys.
        """
        self._enter(Stage.MASKED_INPUT)
        c, me = self.config, self.client_id
        self._check_shares_broadcast(broadcast)
        dense = self._check_floats("dense vector", vector, (c.vector_length,))
        fraction = self._weight_fraction(weight)
        k = self.rows.size
        if row_values is None and k == 0:
            row_values = np.zeros((0, c.row_width))
        values = self._check_floats("row_values", row_values, (k, c.row_width))
        if row_counts is None and k:
            raise SecAggProtocolError(f"client {me}: row_counts missing, expected shape ({k},)")
        counts = np.zeros(0) if row_counts is None else np.asarray(row_counts)
        if counts.shape != (k,):
            raise SecAggProtocolError(
                f"client {me}: row_counts has shape {counts.shape}, expected ({k},) "
                "(one count per row of its S'')"
            )
        if counts.dtype.kind not in "buif" or not np.all((counts == 0) | (counts == 1)):
            raise SecAggProtocolError(f"client {me}: row_counts must be 0 or 1")
        self._accept_shares(broadcast)
        ring = encode_layout(c, values, counts.astype(np.int64), dense, fraction, self._rng)
        self._apply_masks(ring)
        self._leave(Stage.MASKED_INPUT)
        return MaskedInput(c.run_id, c.round_id, me, ring)

    def _check_floats(self, name: str, array: object, shape: tuple[int, ...]) -> np.ndarray:
        if array is None:
            raise SecAggProtocolError(
                f"client {self.client_id}: {name} missing, expected shape {shape}"
            )
        values = np.asarray(array)
        if values.shape != shape:
            raise SecAggProtocolError(
                f"client {self.client_id}: {name} has shape {values.shape}, expected {shape}"
            )
        if values.dtype.kind not in "buif" or not np.all(np.isfinite(values)):
            raise SecAggProtocolError(
                f"client {self.client_id}: {name} must hold finite real numbers"
            )
        return values

    def _masked_length(self) -> int:
        return self.config.layout_length(self.rows.size)

    def _row_mask_key(self) -> bytes:
        c = self.config
        return derive_key(self._row_key, purpose="row-mask", run_id=c.run_id,
                          round_id=c.round_id, u=self.client_id, v=self.client_id,
                          length=ROW_KEY_SIZE)

    def _apply_masks(self, masked: np.ndarray) -> None:
        """Self mask over the tail, a row mask per block (floor off: the self mask over the
        whole layout); per sender v, PRG(s_uv) over S''_u ∩ S''_v + tail."""
        c, me = self.config, self.client_id
        k, width = self.rows.size, c.block_width
        blocks, tail = masked[: k * width].reshape(k, width), masked[k * width :]
        streams = MaskStreams(c.bits)
        if c.row_floor:
            np.add(tail, streams.expand(self._self_mask_seed(), tail.size), out=tail)
            if k:
                seeds = row_seeds(self._row_mask_key(), self.rows)
                np.add(blocks, expand_rows(seeds, width, bits=c.bits), out=blocks)
        else:
            np.add(masked, streams.expand(self._self_mask_seed(), masked.size), out=masked)
        for v in sorted(self._senders):
            _, mine, _ = np.intersect1d(
                self.rows, self._peer_rows[v], assume_unique=True, return_indices=True
            )
            stream = streams.expand(self._mask_seed(v), c.layout_length(mine.size))
            scatter_add(blocks, tail, mine, stream, sign=+1 if me < v else -1)

    def unmask(self, request: UnmaskRequest) -> SubmodelUnmaskResponse:
        """Stage 3: SecAgg's shares, and the row seeds of the rows whose crowd meets the floor.

        The crowd of a row j of S''_u is u and its neighbours that are alive in ``request``,
        sent u their shares (a pairwise mask joins them) and hold j; u reveals the seed of
        its mask of j only if the crowd has at least ``config.min_row_holders`` members.

        Raises:
            SecAggProtocolError: As :meth:`SecAggClient.unmask`.
            SecAggAbort: Fewer than ``threshold`` clients alive.
        """
        base = super().unmask(request)
        c = self.config
        released = np.zeros(0, dtype=np.int64)
        seeds = b""
        if c.row_floor:
            alive = frozenset(request.alive) & self._senders
            sizes = crowd_sizes(self.rows, self._peer_rows, alive)
            released = self.rows[sizes >= c.min_row_holders]
            seeds = row_seeds(self._row_mask_key(), released).tobytes()
        self._row_key = b""  # one-shot: nothing more can be revealed
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        return SubmodelUnmaskResponse(**fields, rows=released, row_seeds=seeds)

    # -- persistence between stages (SecAggClient.to_state / from_state) -------------------
    def _extra_state(self) -> dict:
        return {
            "rows": self.rows.tolist(),
            "peer_rows": {str(v): r.tolist() for v, r in self._peer_rows.items()},
            "row_key": self._row_key.hex(),
        }

    def _restore_extra_state(self, state: dict) -> None:
        try:
            rows, peer_rows = state["rows"], state["peer_rows"]
            self._row_key = bytes.fromhex(state["row_key"])
        except KeyError as exc:
            raise SecAggStateError(f"submodel secure-aggregation client state lacks {exc}") from exc
        c = self.config
        self.rows = check_rows(np.asarray(rows, dtype=np.int64), c, f"client {self.client_id}")
        self._peer_rows = {
            int(v): check_rows(np.asarray(r, dtype=np.int64), c, f"row set of client {v}")
            for v, r in peer_rows.items()
        }

    def __repr__(self) -> str:
        return super().__repr__().replace("SecAggClient(", "SubmodelSecAggClient(", 1)
