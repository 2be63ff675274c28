"""Messages of fedkit's secure aggregation and their versioned wire format (see ``secagg``).

Every message starts with the header ``b"FKSA" | u8 wire version | u8 type | u64 run_id |
u64 round_id`` (big-endian); the body follows. Maps are ``u32 count`` then ``(u64 id, u32
length, bytes)`` entries with strictly increasing ids; id lists are ``u32 count`` then u64s;
a ring vector is ``u8 bits | u32 count | little-endian elements``. ``from_bytes`` refuses a
wrong magic, version or type, truncation, trailing bytes and unsorted or duplicate ids.

With ``committed_graph`` (docs/secagg.md, "Committed graph") ``AdvertiseKeys`` ends with the
32-byte nonce commitment and ``KeysBroadcast`` with ``u32 count | 16-byte nonce * count``, one
nonce per roster client in increasing id order; two messages carry the reveal-nonce stage:
``RosterCommitment`` (type 12) and ``RevealNonce`` (type 13). Without the option nothing is
appended: those messages are byte for byte what they were before it existed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from fedkit.privacy.graph import COMMITMENT_SIZE, DIGEST_SIZE, NONCE_SIZE
from fedkit.privacy.hazmat.keys import KEY_SIZE
from fedkit.privacy.hazmat.prg import ring_dtype
from fedkit.privacy.secagg._config import SecAggProtocolError

__all__ = [
    "WIRE_VERSION",
    "AdvertiseKeys",
    "KeysBroadcast",
    "MaskedInput",
    "RevealNonce",
    "RosterCommitment",
    "ShareKeys",
    "SharesBroadcast",
    "UnmaskRequest",
    "UnmaskResponse",
    "decode_message",
]

WIRE_VERSION = 2  # 2: KeysBroadcast carries key digests for non-neighbours
_MAGIC = b"FKSA"
_HEADER = struct.Struct(">4sBBQQ")


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self._view, self._pos, self._name = memoryview(bytes(data)), 0, name

    def take(self, size: int) -> bytes:
        if self._pos + size > len(self._view):
            raise SecAggProtocolError(
                f"{self._name} message truncated: needs {self._pos + size} bytes, "
                f"got {len(self._view)}"
            )
        out = self._view[self._pos : self._pos + size].tobytes()
        self._pos += size
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def ids(self) -> tuple[int, ...]:
        (count,) = self.unpack(">I")
        values = self.unpack(f">{count}Q") if count else ()
        _check_sorted(values, self._name)
        return tuple(values)

    def blobs(self, size: int | None = None) -> MappingProxyType:
        (count,) = self.unpack(">I")
        out: dict[int, bytes] = {}
        for _ in range(count):
            cid, length = self.unpack(">QI")
            if size is not None and length != size:
                raise SecAggProtocolError(
                    f"{self._name} entry for client {cid} has {length} bytes, expected {size}"
                )
            out[cid] = self.take(length)
        _check_sorted(tuple(out) if len(out) == count else (0, 0), self._name)
        return MappingProxyType(out)

    def remaining(self) -> int:
        return len(self._view) - self._pos

    def done(self) -> None:
        if self._pos != len(self._view):
            raise SecAggProtocolError(
                f"{self._name} message has {len(self._view) - self._pos} trailing bytes"
            )


def _check_sorted(values: tuple[int, ...], name: str) -> None:
    if any(a >= b for a, b in zip(values, values[1:], strict=False)):
        raise SecAggProtocolError(f"{name} message has unsorted or duplicate client ids")


def _ids(values) -> bytes:
    values = sorted(values)
    return struct.pack(f">I{len(values)}Q", len(values), *values)


def _blobs(mapping) -> bytes:
    parts = [struct.pack(">I", len(mapping))]
    for cid in sorted(mapping):
        parts.append(struct.pack(">QI", cid, len(mapping[cid])) + bytes(mapping[cid]))
    return b"".join(parts)


@dataclass(frozen=True, repr=False)
class _Message:
    TYPE: ClassVar[int] = 0
    run_id: int
    round_id: int

    def _header(self) -> bytes:
        return _HEADER.pack(_MAGIC, WIRE_VERSION, self.TYPE, self.run_id, self.round_id)

    @classmethod
    def _open(cls, data: bytes) -> tuple[_Reader, int, int]:
        reader = _Reader(data, cls.__name__)
        magic, version, mtype, run_id, round_id = reader.unpack(_HEADER.format)
        if magic != _MAGIC:
            raise SecAggProtocolError(f"{cls.__name__} message lacks the FKSA magic bytes")
        if version != WIRE_VERSION:
            raise SecAggProtocolError(
                f"{cls.__name__} wire version {version} unsupported, expected {WIRE_VERSION}"
            )
        if mtype != cls.TYPE:
            name = _TYPES[mtype].__name__ if mtype in _TYPES else f"unknown type {mtype}"
            raise SecAggProtocolError(f"expected a {cls.__name__} message, got {name}")
        return reader, run_id, round_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(run_id={self.run_id}, round_id={self.round_id}, ...)"


@dataclass(frozen=True, repr=False)
class AdvertiseKeys(_Message):
    """Stage 0, client -> server: the client's two fresh X25519 public keys and, with
    ``committed_graph``, its 32-byte commitment to its graph nonce (else empty)."""

    TYPE: ClassVar[int] = 1
    client_id: int
    enc_public: bytes
    mask_public: bytes
    commitment: bytes = b""

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return (
            self._header()
            + struct.pack(">Q", self.client_id)
            + self.enc_public
            + self.mask_public
            + self.commitment
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AdvertiseKeys:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        (cid,) = reader.unpack(">Q")
        enc, mask = reader.take(KEY_SIZE), reader.take(KEY_SIZE)
        # the optional commitment is exactly 32 bytes; anything else is trailing bytes
        commitment = reader.take(COMMITMENT_SIZE) if reader.remaining() == COMMITMENT_SIZE else b""
        reader.done()
        return cls(run_id, round_id, cid, enc, mask, commitment)


@dataclass(frozen=True, repr=False)
class KeysBroadcast(_Message):
    """Stage 0 -> 1, server -> a client: the roster, as ``id -> enc_public | mask_public``
    (64 bytes) for the recipient and its graph neighbours and ``id -> key_digest`` (16 bytes,
    :func:`fedkit.privacy.graph.key_digest`) for the other clients; the same message with
    every key in full (no digests) serves every client. With ``committed_graph`` it also
    carries every roster client's revealed nonce (``nonces``, else empty): with the digests,
    all a client needs to recompute the committed roster root and the graph seed."""

    TYPE: ClassVar[int] = 2
    public_keys: MappingProxyType  # int -> bytes (64)
    digests: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    nonces: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format.

        Raises:
            SecAggProtocolError: Nonces given, but not exactly one per roster client.
        """
        out = self._header() + _blobs(self.public_keys) + _blobs(self.digests)
        if not self.nonces:
            return out
        roster = sorted(set(self.public_keys) | set(self.digests))
        # one pass: a missing id or a block of the wrong length refuses (O(n) per recipient)
        block = b"".join(self.nonces.get(c, b"") for c in roster)
        if len(self.nonces) != len(roster) or len(block) != NONCE_SIZE * len(roster):
            raise SecAggProtocolError(
                f"KeysBroadcast needs one {NONCE_SIZE}-byte nonce per roster client: "
                f"{len(roster)} clients, nonces for {len(self.nonces)}"
            )
        return out + struct.pack(">I", len(roster)) + block

    @classmethod
    def from_bytes(cls, data: bytes) -> KeysBroadcast:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        keys = reader.blobs(2 * KEY_SIZE)
        digests = reader.blobs(DIGEST_SIZE)
        nonces: dict[int, bytes] = {}
        roster = sorted(set(keys) | set(digests))
        # the optional nonces fill the rest exactly; anything else is trailing bytes
        if roster and reader.remaining() == 4 + NONCE_SIZE * len(roster):
            (count,) = reader.unpack(">I")
            if count != len(roster):
                raise SecAggProtocolError(
                    f"{cls.__name__} message has {count} nonces for a roster of {len(roster)}"
                )
            nonces = {cid: reader.take(NONCE_SIZE) for cid in roster}
        reader.done()
        check_disjoint_roster(keys, digests, cls.__name__)
        return cls(run_id, round_id, keys, digests, MappingProxyType(nonces))


def check_disjoint_roster(keys, digests, name: str) -> None:
    """Refuse a roster that gives one client both full keys and a digest."""
    both = sorted(set(keys) & set(digests))
    if both:
        raise SecAggProtocolError(
            f"{name} message lists clients {both} both with keys and with a key digest"
        )


@dataclass(frozen=True, repr=False)
class ShareKeys(_Message):
    """Stage 1, client -> server: AEAD ciphertexts of share pairs, keyed by receiver id."""

    TYPE: ClassVar[int] = 3
    client_id: int
    ciphertexts: MappingProxyType  # receiver id -> bytes

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return self._header() + struct.pack(">Q", self.client_id) + _blobs(self.ciphertexts)

    @classmethod
    def from_bytes(cls, data: bytes) -> ShareKeys:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        (cid,) = reader.unpack(">Q")
        blobs = reader.blobs()
        reader.done()
        return cls(run_id, round_id, cid, blobs)


@dataclass(frozen=True, repr=False)
class SharesBroadcast(_Message):
    """Stage 1 -> 2, server -> one client: ciphertexts addressed to it, keyed by sender id."""

    TYPE: ClassVar[int] = 4
    recipient: int
    ciphertexts: MappingProxyType  # sender id -> bytes

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return self._header() + struct.pack(">Q", self.recipient) + _blobs(self.ciphertexts)

    @classmethod
    def from_bytes(cls, data: bytes) -> SharesBroadcast:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        (recipient,) = reader.unpack(">Q")
        blobs = reader.blobs()
        reader.done()
        return cls(run_id, round_id, recipient, blobs)


@dataclass(frozen=True, repr=False)
class MaskedInput(_Message):
    """Stage 2, client -> server: the masked ring vector (input, then weight)."""

    TYPE: ClassVar[int] = 5
    client_id: int
    masked: np.ndarray

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        bits = self.masked.dtype.itemsize * 8
        body = np.ascontiguousarray(self.masked, dtype=ring_dtype(bits)).tobytes()
        return self._header() + struct.pack(">QBI", self.client_id, bits, self.masked.size) + body

    @classmethod
    def from_bytes(cls, data: bytes) -> MaskedInput:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        cid, bits, count = reader.unpack(">QBI")
        if bits not in (32, 64):
            raise SecAggProtocolError(f"MaskedInput ring bits={bits} unsupported, expected 32/64")
        dtype = ring_dtype(bits)
        masked = np.frombuffer(reader.take(count * dtype.itemsize), dtype=dtype)
        reader.done()
        return cls(run_id, round_id, cid, masked)


@dataclass(frozen=True, repr=False)
class UnmaskRequest(_Message):
    """Stage 2 -> 3, server -> all: who sent a masked input (alive) and who did not (dropped)."""

    TYPE: ClassVar[int] = 6
    alive: tuple[int, ...]
    dropped: tuple[int, ...]

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return self._header() + _ids(self.alive) + _ids(self.dropped)

    @classmethod
    def from_bytes(cls, data: bytes) -> UnmaskRequest:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        alive, dropped = reader.ids(), reader.ids()
        reader.done()
        return cls(run_id, round_id, alive, dropped)


@dataclass(frozen=True, repr=False)
class UnmaskResponse(_Message):
    """Stage 3, client -> server: self-mask shares of alive clients, key shares of dropped ones.

    Each share is the 66-byte value y; its x-coordinate is the sender's roster position + 1.
    """

    TYPE: ClassVar[int] = 7
    client_id: int
    self_mask_shares: MappingProxyType  # owner id -> 66 bytes
    key_shares: MappingProxyType  # owner id -> 66 bytes

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return (
            self._header()
            + struct.pack(">Q", self.client_id)
            + _blobs(self.self_mask_shares)
            + _blobs(self.key_shares)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> UnmaskResponse:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        (cid,) = reader.unpack(">Q")
        self_shares, key_shares = reader.blobs(66), reader.blobs(66)
        reader.done()
        return cls(run_id, round_id, cid, self_shares, key_shares)

    def __repr__(self) -> str:
        return (
            f"UnmaskResponse(client_id={self.client_id}, round_id={self.round_id}, "
            f"self_mask_shares=<{len(self.self_mask_shares)} redacted>, "
            f"key_shares=<{len(self.key_shares)} redacted>)"
        )


@dataclass(frozen=True, repr=False)
class RosterCommitment(_Message):
    """Reveal-nonce stage, server -> one client: the server's commitment to the roster.

    ``u64 recipient | u32 roster size | root (32)``: the root
    (:func:`fedkit.privacy.graph.roster_root`) hashes every roster client's id, key digest
    and nonce commitment; the client checks it later against the roster and nonces it
    receives. 66 bytes, whatever the roster size.
    """

    TYPE: ClassVar[int] = 12
    recipient: int
    roster_size: int
    root: bytes

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return (self._header() + struct.pack(">QI", self.recipient, self.roster_size)
                + self.root)

    @classmethod
    def from_bytes(cls, data: bytes) -> RosterCommitment:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        recipient, size = reader.unpack(">QI")
        root = reader.take(32)
        reader.done()
        return cls(run_id, round_id, recipient, size, root)


@dataclass(frozen=True, repr=False)
class RevealNonce(_Message):
    """Reveal-nonce stage, client -> server: the nonce the client committed to (16 bytes)."""

    TYPE: ClassVar[int] = 13
    client_id: int
    nonce: bytes

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return self._header() + struct.pack(">Q", self.client_id) + self.nonce

    @classmethod
    def from_bytes(cls, data: bytes) -> RevealNonce:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        (cid,) = reader.unpack(">Q")
        nonce = reader.take(NONCE_SIZE)
        reader.done()
        return cls(run_id, round_id, cid, nonce)


_TYPES: dict[int, type[_Message]] = {
    cls.TYPE: cls
    for cls in (
        AdvertiseKeys,
        KeysBroadcast,
        ShareKeys,
        SharesBroadcast,
        MaskedInput,
        UnmaskRequest,
        UnmaskResponse,
        RosterCommitment,
        RevealNonce,
    )
}


def decode_message(data: bytes) -> _Message:
    """Decode any secure-aggregation message by its header type.

    Raises:
        SecAggProtocolError: On a malformed or unknown message.
    """
    if len(data) < _HEADER.size:
        raise SecAggProtocolError(f"message of {len(data)} bytes is shorter than the header")
    mtype = data[5]
    if mtype not in _TYPES:
        raise SecAggProtocolError(f"unknown message type {mtype}")
    return _TYPES[mtype].from_bytes(data)
