"""The two messages that submodel-aware secure aggregation adds to SecAgg's wire format.

Same header as every SecAgg message (``b"FKSA" | u8 wire version | u8 type | u64 run_id |
u64 round_id``), two new type bytes:

* 8 ``SubmodelAdvertiseKeys`` (client -> server): ``u64 id | enc_pk (32) | mask_pk (32) |
  rows``, the client's keys and its public perturbed row set S''_u;
* 9 ``SubmodelKeysBroadcast`` (server -> all): the key map of ``KeysBroadcast`` then
  ``u32 count | (u64 id | rows)*``, every roster client's S'' (ids strictly increasing and
  equal to the key map's).

A row set is ``u32 count | count * u64`` (big-endian), strictly increasing, each below 2^63.
The other stages reuse ``ShareKeys``, ``SharesBroadcast``, ``MaskedInput`` (a ring vector of
the client's layout length), ``UnmaskRequest`` and ``UnmaskResponse`` unchanged.
``from_bytes`` refuses what SecAgg's messages refuse, plus unsorted, duplicate or too large
row ids and a row map that does not match the key map.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from fedkit.privacy._secagg_config import SecAggProtocolError
from fedkit.privacy._secagg_messages import _HEADER, _blobs, _Message, _Reader, decode_message
from fedkit.privacy.hazmat.keys import KEY_SIZE

__all__ = ["SubmodelAdvertiseKeys", "SubmodelKeysBroadcast", "decode_submodel_message"]

_ROW_DTYPE = np.dtype(">u8")


def _rows_bytes(rows: np.ndarray) -> bytes:
    values = np.asarray(rows, dtype=np.int64)
    return struct.pack(">I", values.size) + values.astype(_ROW_DTYPE).tobytes()


def _read_rows(reader: _Reader, name: str, owner: int) -> np.ndarray:
    (count,) = reader.unpack(">I")
    raw = np.frombuffer(reader.take(count * _ROW_DTYPE.itemsize), dtype=_ROW_DTYPE)
    if count and int(raw.max()) >= 1 << 63:
        raise SecAggProtocolError(f"{name} row set of client {owner} has an id >= 2^63")
    rows = raw.astype(np.int64)
    if count > 1 and not np.all(rows[1:] > rows[:-1]):
        raise SecAggProtocolError(
            f"{name} row set of client {owner} is not strictly increasing (unsorted or duplicate)"
        )
    rows.flags.writeable = False
    return rows


@dataclass(frozen=True, repr=False)
class SubmodelAdvertiseKeys(_Message):
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
class SubmodelKeysBroadcast(_Message):
    """Stage 0 -> 1, server -> all: the roster's keys (``enc | mask``) and row sets S''."""

    TYPE: ClassVar[int] = 9
    public_keys: MappingProxyType  # int -> bytes (64)
    rows: MappingProxyType  # int -> int64 array

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        parts = [self._header(), _blobs(self.public_keys), struct.pack(">I", len(self.rows))]
        for cid in sorted(self.rows):
            parts.append(struct.pack(">Q", cid) + _rows_bytes(self.rows[cid]))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> SubmodelKeysBroadcast:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        keys = reader.blobs(2 * KEY_SIZE)
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
        if set(rows) != set(keys):
            raise SecAggProtocolError(
                f"{cls.__name__} lists row sets of clients {sorted(rows)} but keys of "
                f"clients {sorted(keys)}; they must match"
            )
        return cls(run_id, round_id, keys, MappingProxyType(rows))


_TYPES = {cls.TYPE: cls for cls in (SubmodelAdvertiseKeys, SubmodelKeysBroadcast)}


def decode_submodel_message(data: bytes) -> _Message:
    """Decode any message of submodel-aware secure aggregation (SecAgg's types 1-7 and 8-9).

    Raises:
        SecAggProtocolError: On a malformed or unknown message.
    """
    if len(data) >= _HEADER.size and data[5] in _TYPES:
        return _TYPES[data[5]].from_bytes(data)
    return decode_message(data)
