"""The three messages that submodel-aware secure aggregation adds to SecAgg's wire format.

Same header as every SecAgg message (``b"FKSA" | u8 wire version | u8 type | u64 run_id |
u64 round_id``), with the submodel wire version :data:`SUBMODEL_WIRE_VERSION` (SecAgg's own
messages, types 1-7, keep theirs), three new type bytes:

* 8 ``SubmodelAdvertiseKeys`` (client -> server): ``u64 id | enc_pk (32) | mask_pk (32) |
  rows`` -- the keys and the public perturbed row set S''_u;
* 9 ``SubmodelKeysBroadcast`` (server -> one client u): ``u64 u``, the two maps of
  ``KeysBroadcast``, then ``u32 count | (u64 id | rows)*``: for each graph neighbour v of u
  only, S''_v ∩ S''_u (all u's pairwise masks need);
* 14 ``SubmodelUnmaskResponse`` (client -> server): ``u32 length | UnmaskResponse`` (SecAgg's
  message, its own header), then ``rows | seeds (16 each)``: the rows of S''_u whose crowd
  met the floor and the seed of each one's row mask (see ``_crowds``).

Row sets use :mod:`fedkit.privacy.submodel._rowsets`; the other stages reuse SecAgg's
messages. ``from_bytes`` also refuses malformed row sets and a row map naming a client
without keys or the recipient; the client checks that it lists exactly its neighbours. See
docs/submodel.md, "Row sets on the wire".
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from fedkit.privacy.graph import DIGEST_SIZE
from fedkit.privacy.hazmat.keys import KEY_SIZE
from fedkit.privacy.hazmat.prg import ROW_SEED_SIZE
from fedkit.privacy.secagg import SecAggProtocolError, UnmaskResponse, decode_message
from fedkit.privacy.secagg.extend import (
    HEADER,
    Reader,
    WireMessage,
    check_disjoint_roster,
    encode_blobs,
)
from fedkit.privacy.submodel._rowsets import encode_row_set, read_row_set

__all__ = [
    "SUBMODEL_WIRE_VERSION",
    "SubmodelAdvertiseKeys",
    "SubmodelKeysBroadcast",
    "SubmodelUnmaskResponse",
    "decode_submodel_message",
]

SUBMODEL_WIRE_VERSION = 3  # 3: per-row masks, SubmodelUnmaskResponse (rows only in crowds)
_MAGIC = b"FKSA"


class _SubmodelMessage(WireMessage):
    """A message of the submodel protocol: SecAgg's header with the submodel wire version."""

    def _header(self) -> bytes:
        return HEADER.pack(_MAGIC, SUBMODEL_WIRE_VERSION, self.TYPE, self.run_id, self.round_id)

    @classmethod
    def _open(cls, data: bytes) -> tuple[Reader, int, int]:
        reader = Reader(data, cls.__name__)
        magic, version, mtype, run_id, round_id = reader.unpack(HEADER.format)
        if magic != _MAGIC:
            raise SecAggProtocolError(f"{cls.__name__} message lacks the FKSA magic bytes")
        if version != SUBMODEL_WIRE_VERSION:
            raise SecAggProtocolError(
                f"{cls.__name__} submodel wire version {version} unsupported, expected "
                f"{SUBMODEL_WIRE_VERSION}"
            )
        if mtype != cls.TYPE:
            raise SecAggProtocolError(f"expected a {cls.__name__} message, got type {mtype}")
        return reader, run_id, round_id


def _rows_bytes(rows: np.ndarray) -> bytes:
    return encode_row_set(np.asarray(rows, dtype=np.int64))


def _read_rows(reader: Reader, name: str, owner: int) -> np.ndarray:
    return read_row_set(reader.take, reader.unpack, f"{name} row set of client {owner}")


@dataclass(frozen=True, repr=False)
class SubmodelAdvertiseKeys(_SubmodelMessage):
    """Stage 0, client -> server: two fresh X25519 public keys and the public row set S''_u."""

    TYPE: ClassVar[int] = 8
    client_id: int
    enc_public: bytes
    mask_public: bytes
    rows: np.ndarray  # int64, strictly increasing

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return (
            self._header()
            + struct.pack(">Q", self.client_id)
            + self.enc_public
            + self.mask_public
            + _rows_bytes(self.rows)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SubmodelAdvertiseKeys:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        (cid,) = reader.unpack(">Q")
        enc, mask = reader.take(KEY_SIZE), reader.take(KEY_SIZE)
        rows = _read_rows(reader, cls.__name__, cid)
        reader.done()
        return cls(run_id, round_id, cid, enc, mask, rows)


@dataclass(frozen=True, repr=False)
class SubmodelKeysBroadcast(_SubmodelMessage):
    """Stage 0 -> 1, server -> client u: every roster key (``enc | mask``) and, for each of
    u's graph neighbours v, the rows they share, S''_v ∩ S''_u."""

    TYPE: ClassVar[int] = 9
    client_id: int  # the recipient u
    public_keys: MappingProxyType  # int -> bytes (64)
    rows: MappingProxyType  # neighbour id -> int64 array
    digests: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        parts = [self._header(), struct.pack(">Q", self.client_id), encode_blobs(self.public_keys),
                 encode_blobs(self.digests), struct.pack(">I", len(self.rows))]
        for cid in sorted(self.rows):
            parts.append(struct.pack(">Q", cid) + _rows_bytes(self.rows[cid]))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> SubmodelKeysBroadcast:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        (recipient,) = reader.unpack(">Q")
        keys = reader.blobs(2 * KEY_SIZE)
        digests = reader.blobs(DIGEST_SIZE)
        check_disjoint_roster(keys, digests, cls.__name__)
        (count,) = reader.unpack(">I")
        rows: dict[int, np.ndarray] = {}
        previous = -1
        for _ in range(count):
            (cid,) = reader.unpack(">Q")
            if cid <= previous:
                raise SecAggProtocolError(
                    f"{cls.__name__} message has unsorted or duplicate client ids"
                )
            previous = cid
            rows[cid] = _read_rows(reader, cls.__name__, cid)
        reader.done()
        if recipient not in keys:
            raise SecAggProtocolError(
                f"{cls.__name__} for client {recipient} lacks the recipient's own keys"
            )
        strangers = sorted(set(rows) - set(keys))
        if strangers or recipient in rows:
            raise SecAggProtocolError(
                f"{cls.__name__} for client {recipient} lists row sets of clients "
                f"{strangers or [recipient]} that are not its peers in the key map"
            )
        return cls(run_id, round_id, recipient, keys, MappingProxyType(rows), digests)


_BASE_FIELDS = tuple(f.name for f in dataclasses.fields(UnmaskResponse))


@dataclass(frozen=True, repr=False)
class SubmodelUnmaskResponse(_SubmodelMessage, UnmaskResponse):
    """Stage 3, client -> server: SecAgg's unmask response and the row seeds it releases.

    ``rows`` are the rows of the sender's S''_u whose crowd met the floor (strictly
    increasing); ``row_seeds`` holds their 16-byte mask seeds in the same order. Every field
    of :class:`~fedkit.privacy.secagg.UnmaskResponse` keeps its meaning.
    """

    TYPE: ClassVar[int] = 14
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    row_seeds: bytes = b""

    def __post_init__(self) -> None:
        if len(self.row_seeds) != ROW_SEED_SIZE * len(self.rows):
            raise SecAggProtocolError(
                f"{type(self).__name__} from client {self.client_id} has "
                f"{len(self.row_seeds)} bytes of row seeds for {len(self.rows)} rows, expected "
                f"{ROW_SEED_SIZE} per row"
            )

    def base(self) -> UnmaskResponse:
        """The SecAgg part of the response."""
        return UnmaskResponse(**{name: getattr(self, name) for name in _BASE_FIELDS})

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        inner = self.base().to_bytes()
        return (self._header() + struct.pack(">I", len(inner)) + inner
                + _rows_bytes(self.rows) + bytes(self.row_seeds))

    @classmethod
    def from_bytes(cls, data: bytes) -> SubmodelUnmaskResponse:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        (length,) = reader.unpack(">I")
        inner = UnmaskResponse.from_bytes(reader.take(length))
        if (inner.run_id, inner.round_id) != (run_id, round_id):
            raise SecAggProtocolError(
                f"{cls.__name__} wraps an UnmaskResponse of run {inner.run_id} round "
                f"{inner.round_id}, not of its own run {run_id} round {round_id}"
            )
        rows = _read_rows(reader, cls.__name__, inner.client_id)
        seeds = reader.take(ROW_SEED_SIZE * rows.size)
        reader.done()
        fields = {name: getattr(inner, name) for name in _BASE_FIELDS}
        return cls(**fields, rows=rows, row_seeds=seeds)

    def __repr__(self) -> str:
        return (
            f"SubmodelUnmaskResponse(client_id={self.client_id}, round_id={self.round_id}, "
            f"self_mask_shares=<{len(self.self_mask_shares)} redacted>, "
            f"key_shares=<{len(self.key_shares)} redacted>, "
            f"row_seeds=<{len(self.rows)} redacted>)"
        )


_TYPES = {cls.TYPE: cls for cls in (SubmodelAdvertiseKeys, SubmodelKeysBroadcast,
                                    SubmodelUnmaskResponse)}


def decode_submodel_message(data: bytes) -> WireMessage:
    """Decode any message of submodel-aware secure aggregation (SecAgg's types 1-7, 8, 9, 14).

    Raises:
        SecAggProtocolError: On a malformed or unknown message.
    """
    if len(data) >= HEADER.size and data[5] in _TYPES:
        return _TYPES[data[5]].from_bytes(data)
    return decode_message(data)
