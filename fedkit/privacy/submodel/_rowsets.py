"""Compact wire encoding of a row set (a strictly increasing set of ids in [0, 2^63)).

A set is sent in the shorter of two encodings (ties: gaps), big-endian as the rest of the
wire format:

* ``0x00`` **gaps**: ``u32 count | u32 length | varints`` -- the first id, then each id minus
  its predecessor minus one, as unsigned LEB128 varints;
* ``0x01`` **bitmap**: ``u64 start | u32 num_bits | bits`` -- bit i (little-endian bit order)
  set iff ``start + i`` is in the set; shorter once the set covers more than ~1/8 of its range.

Decoding accepts exactly one encoding per set and refuses, with
:class:`SecAggProtocolError`, anything else (also a bitmap range reaching 2^63). See
docs/submodel.md, "Row-set encoding".

References:
    The varint is the "base 128 varint" of Protocol Buffers' encoding guide; delta (gap)
    coding of sorted ids is the standard inverted-index technique (Manning, Raghavan,
    Schuetze, *Introduction to Information Retrieval*, 2008, §5.3).
"""

from __future__ import annotations

import struct

import numpy as np

from fedkit.privacy.secagg import SecAggProtocolError

__all__ = ["BITMAP", "GAPS", "decode_row_set", "encode_row_set", "encoded_size", "read_row_set"]

GAPS = 0
BITMAP = 1
_LIMIT = 1 << 63
_MAX_VARINT = 9  # 9 * 7 = 63 bits


def _gaps(ids: np.ndarray) -> np.ndarray:
    out = np.empty(ids.size, dtype=np.uint64)
    if ids.size:
        out[0] = ids[0]
        out[1:] = np.diff(ids).astype(np.uint64) - np.uint64(1)
    return out


def _varint_lengths(values: np.ndarray) -> np.ndarray:
    lengths = np.ones(values.size, dtype=np.int64)
    for group in range(1, _MAX_VARINT):
        lengths += values >= np.uint64(1 << (7 * group))
    return lengths


def _encode_varints(values: np.ndarray) -> bytes:
    lengths = _varint_lengths(values)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    out = np.zeros(int(ends[-1]) if values.size else 0, dtype=np.uint8)
    for group in range(_MAX_VARINT):
        has = lengths > group
        if not has.any():
            break
        chunk = (values[has] >> np.uint64(7 * group)) & np.uint64(0x7F)
        more = (lengths[has] > group + 1).astype(np.uint64) << np.uint64(7)
        out[starts[has] + group] = (chunk | more).astype(np.uint8)
    return out.tobytes()


def _bitmap_bytes(ids: np.ndarray) -> int:
    return 0 if ids.size == 0 else -(-(int(ids[-1]) - int(ids[0]) + 1) // 8)


def encoded_size(ids: np.ndarray) -> tuple[int, int]:
    """Return ``(kind, bytes)`` of the shorter encoding of ``ids`` (sorted int64, < 2^63)."""
    gaps = 9 + int(_varint_lengths(_gaps(ids)).sum())
    bitmap = 13 + _bitmap_bytes(ids)
    if ids.size and int(ids[-1]) - int(ids[0]) + 1 >= 1 << 32:
        return GAPS, gaps
    return (GAPS, gaps) if gaps <= bitmap else (BITMAP, bitmap)


def encode_row_set(rows: np.ndarray) -> bytes:
    """Encode a row set in the shorter of the two encodings (module docstring).

    Args:
        rows: 1-D strictly increasing integer ids in ``[0, 2^63)``; not modified.

    Returns:
        The encoding, starting with its kind byte.

    Raises:
        ValueError: If ``rows`` is not 1-D, not strictly increasing or out of range.

    Example:
        >>> encode_row_set(np.array([3, 4, 200])).hex()
        '0000000003000000040300c301'
    """
    ids = np.asarray(rows)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "ui"):
        raise ValueError(f"row set must be a 1-D integer array, got shape {ids.shape} "
                         f"dtype {ids.dtype}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= _LIMIT):
        raise ValueError("row ids must lie in [0, 2^63)")
    ids = ids.astype(np.int64)
    if ids.size > 1 and not np.all(ids[1:] > ids[:-1]):
        raise ValueError("row ids must be strictly increasing (sorted, distinct)")
    kind, _ = encoded_size(ids)
    if kind == GAPS:
        body = _encode_varints(_gaps(ids))
        return struct.pack(">BII", GAPS, ids.size, len(body)) + body
    start, num_bits = int(ids[0]), int(ids[-1]) - int(ids[0]) + 1
    bits = np.zeros(num_bits, dtype=np.uint8)
    bits[ids - start] = 1
    return struct.pack(">BQI", BITMAP, start, num_bits) + np.packbits(
        bits, bitorder="little").tobytes()


def _decode_varints(raw: np.ndarray, count: int, name: str) -> np.ndarray:
    ends = np.flatnonzero(raw < 0x80)
    if ends.size != count or (raw.size and raw[-1] >= 0x80):
        raise SecAggProtocolError(f"{name}: {ends.size} complete varints (last byte "
                                  f"{'open' if raw.size and raw[-1] >= 0x80 else 'closed'}), "
                                  f"expected {count}")
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts + 1
    if lengths.max() > _MAX_VARINT:
        raise SecAggProtocolError(f"{name}: a varint is longer than {_MAX_VARINT} bytes")
    if np.any((lengths > 1) & (raw[ends] == 0)):
        raise SecAggProtocolError(f"{name}: a varint is not minimally encoded")
    position = np.arange(raw.size) - np.repeat(starts, lengths)
    parts = (raw.astype(np.uint64) & np.uint64(0x7F)) << (np.uint64(7) * position.astype(
        np.uint64))
    return np.add.reduceat(parts, starts)


def read_row_set(take, unpack, name: str) -> np.ndarray:
    """Decode one encoded row set from a message reader.

    Args:
        take: ``take(n) -> bytes`` of the reader (raises on truncation).
        unpack: ``unpack(fmt) -> tuple`` of the reader.
        name: Whose set, for error messages (e.g. ``"SubmodelKeysBroadcast row set of
            client 4"``).

    Returns:
        A read-only, strictly increasing ``int64`` array.

    Raises:
        SecAggProtocolError: On any malformed encoding (module docstring).
    """
    (kind,) = unpack(">B")
    if kind == GAPS:
        count, length = unpack(">II")
        raw = np.frombuffer(take(length), dtype=np.uint8)
        gaps = _decode_varints(raw, count, name)
        if count and int(gaps[0]) >= _LIMIT:
            raise SecAggProtocolError(f"{name} has an id >= 2^63")
        steps = gaps + np.uint64(1)
        steps[:1] = gaps[:1]
        ids = np.cumsum(steps, dtype=np.uint64)
        if count and (np.any(ids >= np.uint64(_LIMIT)) or np.any(steps[1:] >= np.uint64(_LIMIT))):
            raise SecAggProtocolError(f"{name} has an id >= 2^63")
        out = ids.astype(np.int64)
    elif kind == BITMAP:
        start, num_bits = unpack(">QI")
        if start + num_bits > _LIMIT:
            raise SecAggProtocolError(f"{name}: bitmap range [{start}, {start + num_bits}) "
                                      "reaches 2^63")
        raw = np.frombuffer(take(-(-num_bits // 8)), dtype=np.uint8)
        bits = np.unpackbits(raw, bitorder="little")
        if np.any(bits[num_bits:]):
            raise SecAggProtocolError(f"{name}: bitmap padding bits are not zero")
        out = start + np.flatnonzero(bits[:num_bits]).astype(np.int64)
    else:
        raise SecAggProtocolError(f"{name}: unknown row-set encoding {kind}, expected "
                                  f"{GAPS} (gaps) or {BITMAP} (bitmap)")
    out.flags.writeable = False
    return out


def decode_row_set(data: bytes, name: str = "row set") -> np.ndarray:
    """Decode a whole byte string written by :func:`encode_row_set` (nothing may follow).

    Raises:
        SecAggProtocolError: On a malformed encoding or trailing bytes.
    """
    view, position = memoryview(bytes(data)), 0

    def take(size: int) -> bytes:
        nonlocal position
        if position + size > len(view):
            raise SecAggProtocolError(f"{name} truncated: needs {position + size} bytes, got "
                                      f"{len(view)}")
        position += size
        return view[position - size:position].tobytes()

    def unpack(fmt: str) -> tuple:
        return struct.unpack(fmt, take(struct.calcsize(fmt)))

    out = read_row_set(take, unpack, name)
    if position != len(view):
        raise SecAggProtocolError(f"{name} has {len(view) - position} trailing bytes")
    return out
