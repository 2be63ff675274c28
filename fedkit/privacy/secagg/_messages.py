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

With ``consistency_check`` (docs/secagg.md, "Consistency round") ``AdvertiseKeys`` ends with
the client's 64-byte Ed25519 signature (after the commitment, if any), ``KeysBroadcast`` with
``u32 count | 64-byte signature * count`` (after the nonces, if any), one per roster client in
increasing id order, and ``UnmaskRequest`` with ``u32 count | (u64 id | 64-byte signature) *
count``; two messages carry the consistency stage: ``ConsistencyRequest`` (type 16) and
``ConsistencySignature`` (type 17). Without the option nothing is appended.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from fedkit.privacy.graph import COMMITMENT_SIZE, DIGEST_SIZE, NONCE_SIZE
from fedkit.privacy.hazmat.keys import KEY_SIZE
from fedkit.privacy.hazmat.prg import ring_dtype
from fedkit.privacy.secagg._config import SecAggProtocolError
from fedkit.privacy.secagg.signing import SIGNATURE_SIZE

__all__ = [
    "WIRE_VERSION",
    "AdvertiseKeys",
    "ConsistencyRequest",
    "ConsistencySignature",
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


def _roster_block(values, roster: list[int], size: int, what: str) -> bytes:
    """``u32 count | value * count`` with one ``size``-byte value per roster id, in id order.

    Raises:
        SecAggProtocolError: A missing id or a value of the wrong size (one pass, O(n)).
    """
    block = b"".join(bytes(values.get(c, b"")) for c in roster)
    if len(values) != len(roster) or len(block) != size * len(roster):
        raise SecAggProtocolError(
            f"KeysBroadcast needs one {size}-byte {what} per roster client: "
            f"{len(roster)} clients, {what}s for {len(values)}"
        )
    return struct.pack(">I", len(roster)) + block


def _read_roster_block(reader: _Reader, roster: list[int], size: int, what: str) -> dict:
    (count,) = reader.unpack(">I")
    if count != len(roster):
        raise SecAggProtocolError(
            f"KeysBroadcast message has {count} {what}s for a roster of {len(roster)}"
        )
    return {cid: reader.take(size) for cid in roster}


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

    @classmethod
    def _id_and(cls, data: bytes, read: Callable[[_Reader], object]) -> tuple:
        """Decode a message whose body is ``u64 id`` and one value ``read`` takes; return
        ``(run_id, round_id, id, value)``."""
        reader, run_id, round_id = cls._open(data)
        (cid,) = reader.unpack(">Q")
        value = read(reader)
        reader.done()
        return run_id, round_id, cid, value


@dataclass(frozen=True, repr=False)
class AdvertiseKeys(_Message):
    """Stage 0, client -> server: the client's two fresh X25519 public keys and, with
    ``committed_graph``, its 32-byte commitment to its graph nonce (else empty), and with
    ``consistency_check`` its 64-byte Ed25519 signature of the roster entry (else empty)."""

    TYPE: ClassVar[int] = 1
    client_id: int
    enc_public: bytes
    mask_public: bytes
    commitment: bytes = b""
    signature: bytes = b""

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return (
            self._header()
            + struct.pack(">Q", self.client_id)
            + self.enc_public
            + self.mask_public
            + self.commitment
            + self.signature
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AdvertiseKeys:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        (cid,) = reader.unpack(">Q")
        enc, mask = reader.take(KEY_SIZE), reader.take(KEY_SIZE)
        # the optional commitment (32) and signature (64) fill the rest exactly; anything
        # else is trailing bytes
        rest = reader.remaining()
        commitment = reader.take(COMMITMENT_SIZE) if rest in (
            COMMITMENT_SIZE, COMMITMENT_SIZE + SIGNATURE_SIZE) else b""
        signature = reader.take(SIGNATURE_SIZE) if reader.remaining() == SIGNATURE_SIZE else b""
        reader.done()
        return cls(run_id, round_id, cid, enc, mask, commitment, signature)


@dataclass(frozen=True, repr=False)
class KeysBroadcast(_Message):
    """Stage 0 -> 1, server -> a client: the roster, as ``id -> enc_public | mask_public``
    (64 bytes) for the recipient and its graph neighbours and ``id -> key_digest`` (16 bytes,
    :func:`fedkit.privacy.graph.key_digest`) for the other clients; the same message with
    every key in full (no digests) serves every client. With ``committed_graph`` it also
    carries every roster client's revealed nonce (``nonces``, else empty): with the digests,
    all a client needs to recompute the committed roster root and the graph seed. With
    ``consistency_check`` it carries every roster client's signature of its roster entry
    (``signatures``, else empty), which the client checks against its key list."""

    TYPE: ClassVar[int] = 2
    public_keys: MappingProxyType  # int -> bytes (64)
    digests: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    nonces: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    signatures: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format.

        Raises:
            SecAggProtocolError: Nonces or signatures given, but not exactly one per roster
                client.
        """
        out = self._header() + _blobs(self.public_keys) + _blobs(self.digests)
        roster = sorted(set(self.public_keys) | set(self.digests))
        if self.nonces:
            out += _roster_block(self.nonces, roster, NONCE_SIZE, "nonce")
        if self.signatures:
            out += _roster_block(self.signatures, roster, SIGNATURE_SIZE, "signature")
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> KeysBroadcast:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        keys = reader.blobs(2 * KEY_SIZE)
        digests = reader.blobs(DIGEST_SIZE)
        roster = sorted(set(keys) | set(digests))
        # the optional nonces and signatures fill the rest exactly (their sizes differ for
        # any roster size); anything else is trailing bytes
        nonces: dict[int, bytes] = {}
        signatures: dict[int, bytes] = {}
        with_nonces, with_signatures = (4 + NONCE_SIZE * len(roster),
                                        4 + SIGNATURE_SIZE * len(roster))
        rest = reader.remaining()
        if roster and rest in (with_nonces, with_nonces + with_signatures):
            nonces = _read_roster_block(reader, roster, NONCE_SIZE, "nonce")
        if roster and reader.remaining() == with_signatures:
            signatures = _read_roster_block(reader, roster, SIGNATURE_SIZE, "signature")
        reader.done()
        check_disjoint_roster(keys, digests, cls.__name__)
        return cls(run_id, round_id, keys, digests, MappingProxyType(nonces),
                   MappingProxyType(signatures))


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
        return cls(*cls._id_and(data, _Reader.blobs))


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
        return cls(*cls._id_and(data, _Reader.blobs))


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
    """Stage 2 -> 3, server -> all: who sent a masked input (alive) and who did not (dropped).

    With ``consistency_check`` it also carries the consistency signatures the server
    collected (``signatures``: signer id -> 64-byte signature of the survivors set U3; else
    empty): the client reveals nothing unless enough of them sign the U3 it signed.
    """

    TYPE: ClassVar[int] = 6
    alive: tuple[int, ...]
    dropped: tuple[int, ...]
    signatures: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        out = self._header() + _ids(self.alive) + _ids(self.dropped)
        if not self.signatures:
            return out
        ids = sorted(self.signatures)
        if any(len(self.signatures[c]) != SIGNATURE_SIZE for c in ids):
            raise SecAggProtocolError(f"UnmaskRequest signatures must be {SIGNATURE_SIZE} "
                                      "bytes each")
        return out + struct.pack(">I", len(ids)) + b"".join(
            struct.pack(">Q", c) + bytes(self.signatures[c]) for c in ids)

    @classmethod
    def from_bytes(cls, data: bytes) -> UnmaskRequest:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        reader, run_id, round_id = cls._open(data)
        alive, dropped = reader.ids(), reader.ids()
        signatures: dict[int, bytes] = {}
        rest = reader.remaining()
        entry = 8 + SIGNATURE_SIZE
        # the optional signatures fill the rest exactly; anything else is trailing bytes
        if rest >= 4 and (rest - 4) % entry == 0:
            (count,) = reader.unpack(">I")
            if count * entry != rest - 4:
                raise SecAggProtocolError(
                    f"{cls.__name__} message has {rest} trailing bytes, not {count} signatures")
            for _ in range(count):
                (cid,) = reader.unpack(">Q")
                signatures[cid] = reader.take(SIGNATURE_SIZE)
            _check_sorted(tuple(signatures) if len(signatures) == count else (0, 0),
                          cls.__name__)
        reader.done()
        return cls(run_id, round_id, alive, dropped, MappingProxyType(signatures))


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
        return cls(*cls._id_and(data, lambda reader: reader.take(NONCE_SIZE)))


@dataclass(frozen=True, repr=False)
class ConsistencyRequest(_Message):
    """Consistency stage, server -> one client: the survivors U3, i.e. the clients whose
    masked input the server received (``u64 recipient | ids``, 8 bytes per survivor)."""

    TYPE: ClassVar[int] = 16
    recipient: int
    survivors: tuple[int, ...]

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return self._header() + struct.pack(">Q", self.recipient) + _ids(self.survivors)

    @classmethod
    def from_bytes(cls, data: bytes) -> ConsistencyRequest:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        return cls(*cls._id_and(data, _Reader.ids))


@dataclass(frozen=True, repr=False)
class ConsistencySignature(_Message):
    """Consistency stage, client -> server: its 64-byte Ed25519 signature of the U3 it got."""

    TYPE: ClassVar[int] = 17
    client_id: int
    signature: bytes

    def to_bytes(self) -> bytes:
        """Encode with the versioned wire format."""
        return self._header() + struct.pack(">Q", self.client_id) + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> ConsistencySignature:
        """Decode; raises :class:`SecAggProtocolError` on malformed input."""
        return cls(*cls._id_and(data, lambda reader: reader.take(SIGNATURE_SIZE)))


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
        ConsistencyRequest,
        ConsistencySignature,
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
