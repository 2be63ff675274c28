"""The two messages that submodel-aware secure aggregation adds to SecAgg's wire format.

Same header as every SecAgg message (``b"FKSA" | u8 wire version | u8 type | u64 run_id |
u64 round_id``), two new type bytes:

* 8 ``SubmodelAdvertiseKeys`` (client -> server): ``u64 id | enc_pk (32) | mask_pk (32) |
  rows`` -- the keys and the public perturbed row set S''_u;
* 9 ``SubmodelKeysBroadcast`` (server -> one client u): ``u64 u``, the two maps of
  ``KeysBroadcast``, then ``u32 count | (u64 id | rows)*``: for each graph neighbour v of u
  only, S''_v ∩ S''_u (all u's pairwise masks need).

Row sets use :mod:`fedkit.privacy.submodel._rowsets`; the other stages reuse SecAgg's
messages. ``from_bytes`` also refuses malformed row sets and a row map naming a client
without keys or the recipient; the client checks that it lists exactly its neighbours. See
docs/submodel.md, "Row sets on the wire".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from fedkit.privacy.graph import DIGEST_SIZE
from fedkit.privacy.hazmat.keys import KEY_SIZE
from fedkit.privacy.secagg import SecAggProtocolError, decode_message
from fedkit.privacy.secagg.extend import (
    HEADER,
    Reader,
    WireMessage,
    check_disjoint_roster,
    encode_blobs,
)
from fedkit.privacy.submodel._rowsets import encode_row_set, read_row_set

__all__ = ["SubmodelAdvertiseKeys", "SubmodelKeysBroadcast", "decode_submodel_message"]



def _rows_bytes(rows: np.ndarray) -> bytes:
    return encode_row_set(np.asarray(rows, dtype=np.int64))


def _read_rows(reader: Reader, name: str, owner: int) -> np.ndarray:
    return read_row_set(reader.take, reader.unpack, f"{name} row set of client {owner}")


@dataclass(frozen=True, repr=False)
class SubmodelAdvertiseKeys(WireMessage):
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
class SubmodelKeysBroadcast(WireMessage):
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


_TYPES = {cls.TYPE: cls for cls in (SubmodelAdvertiseKeys, SubmodelKeysBroadcast)}


def decode_submodel_message(data: bytes) -> WireMessage:
    """Decode any message of submodel-aware secure aggregation (SecAgg's types 1-7 and 8-9).

    Raises:
        SecAggProtocolError: On a malformed or unknown message.
    """
    if len(data) >= HEADER.size and data[5] in _TYPES:
        return _TYPES[data[5]].from_bytes(data)
    return decode_message(data)
