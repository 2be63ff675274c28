"""Hazardous materials: use :mod:`fedkit.privacy.secagg`.

X25519 key agreement and HKDF-SHA256 key derivation for secure aggregation.

Every key a client uses is derived as ``HKDF-SHA256(ikm, salt=None, info)`` where ``info``
binds the protocol name and version, the run id, the round id, both client ids (ordered:
smaller first) and a purpose string (``"mask"``, ``"enc"``, ``"self-mask"``). Because the
round is bound, no mask or share key is ever reused across rounds or runs, which would let
the server subtract two rounds' masked inputs and learn ``x_1 - x_2``.

References:
    RFC 7748, "Elliptic Curves for Security" (X25519), §5 and §6.1.
    RFC 5869, "HMAC-based Extract-and-Expand Key Derivation Function (HKDF)".
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "KEY_SIZE",
    "PROTOCOL",
    "PROTOCOL_VERSION",
    "KeyAgreementError",
    "KeyPair",
    "derive_key",
    "hkdf_info",
    "hkdf_sha256",
]

PROTOCOL = b"fedkit-secagg"
PROTOCOL_VERSION = 1
KEY_SIZE = 32
_U64 = (1 << 64) - 1
_PURPOSES = frozenset({"mask", "enc", "self-mask", "row-mask"})


class KeyAgreementError(ValueError):
    """A public key is malformed or the X25519 exchange produced the all-zero secret."""


class KeyPair:
    """An X25519 key pair; the private half never appears in ``repr`` or ``str``.

    Example:
        >>> a, b = KeyPair.generate(), KeyPair.generate()
        >>> a.exchange(b.public) == b.exchange(a.public)
        True
    """

    __slots__ = ("_private", "public")

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private
        self.public: bytes = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> KeyPair:
        """Return a fresh key pair from the operating system's CSPRNG."""
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> KeyPair:
        """Rebuild a key pair from a raw 32-byte private key (e.g. one recovered by Shamir).

        Raises:
            KeyAgreementError: If ``data`` is not 32 bytes.
        """
        if len(data) != KEY_SIZE:
            raise KeyAgreementError(
                f"X25519 private key must be {KEY_SIZE} bytes, got {len(data)} bytes"
            )
        return cls(X25519PrivateKey.from_private_bytes(bytes(data)))

    def private_bytes(self) -> bytes:
        """Return the raw 32-byte private key (only for Shamir sharing it)."""
        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def exchange(self, peer_public: bytes) -> bytes:
        """Return the raw 32-byte X25519 shared secret with ``peer_public``.

        Raises:
            KeyAgreementError: If ``peer_public`` is not 32 bytes or is a low-order point.
        """
        if not isinstance(peer_public, bytes | bytearray):
            raise KeyAgreementError(
                f"X25519 public key must be bytes, got {type(peer_public).__name__}"
            )
        if len(peer_public) != KEY_SIZE:
            raise KeyAgreementError(
                f"X25519 public key must be {KEY_SIZE} bytes, got {len(peer_public)} bytes"
            )
        try:
            return self._private.exchange(X25519PublicKey.from_public_bytes(bytes(peer_public)))
        except ValueError as exc:
            raise KeyAgreementError(
                "X25519 exchange failed: the peer public key is a low-order point "
                "(all-zero shared secret); the key is rejected"
            ) from exc

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public[:4].hex()}..., private=<redacted>)"

    __str__ = __repr__

    def __reduce__(self):  # pragma: no cover - defensive
        raise TypeError("KeyPair holds a private key and cannot be pickled")


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """Plain RFC 5869 HKDF-SHA256 (extract then expand).

    Args:
        ikm: Input keying material.
        salt: Optional salt (``None`` = a string of zeros, per RFC 5869 §2.2).
        info: Context and application specific information.
        length: Output length in bytes (at most 255 * 32).

    Returns:
        ``length`` bytes of output keying material.

    References:
        RFC 5869 §2.2-2.3; test case 1 in Appendix A.1.
    """
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hkdf_info(*, purpose: str, run_id: int, round_id: int, u: int, v: int) -> bytes:
    """Return the HKDF ``info`` string binding protocol, version, run, round, ids and purpose.

    Layout: ``b"fedkit-secagg" | u8 version | u8 len(purpose) | purpose | u64 run_id |
    u64 round_id | u64 min(u, v) | u64 max(u, v)`` (big-endian). The ids are ordered, so
    both ends of a pair derive the same key.

    Raises:
        ValueError: If ``purpose`` is unknown or an integer is outside ``[0, 2**64)``.
    """
    if purpose not in _PURPOSES:
        raise ValueError(f"HKDF purpose {purpose!r} unknown, expected one of {sorted(_PURPOSES)}")
    for name, value in (("run_id", run_id), ("round_id", round_id), ("u", u), ("v", v)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64:
            raise ValueError(f"HKDF {name}={value!r} must be an integer in [0, 2**64)")
    tag = purpose.encode("ascii")
    return (
        PROTOCOL
        + struct.pack(">BB", PROTOCOL_VERSION, len(tag))
        + tag
        + struct.pack(">QQQQ", run_id, round_id, min(u, v), max(u, v))
    )


def derive_key(
    ikm: bytes, *, purpose: str, run_id: int, round_id: int, u: int, v: int, length: int = 32
) -> bytes:
    """Derive a key for one (run, round, pair, purpose) from a full-entropy secret.

    Args:
        ikm: The full 32-byte X25519 shared secret (or a 32-byte self-mask seed).
        purpose: ``"mask"`` (pairwise mask), ``"enc"`` (share encryption), ``"self-mask"`` or
            ``"row-mask"`` (the key of a submodel client's per-row mask seeds).
        run_id: Run identifier.
        round_id: Round identifier.
        u: One client id.
        v: The other client id (``u`` itself for ``"self-mask"`` and ``"row-mask"``).
        length: Output length in bytes.

    Returns:
        ``length`` bytes.

    Raises:
        KeyAgreementError: If ``ikm`` is shorter than 32 bytes.

    Example:
        >>> k = derive_key(bytes(32), purpose="mask", run_id=0, round_id=1, u=3, v=2)
        >>> k == derive_key(bytes(32), purpose="mask", run_id=0, round_id=1, u=2, v=3)
        True

    References:
        Bonawitz et al., CCS 2017, §4 (key agreement, PRG seeds); RFC 5869.
    """
    if len(ikm) < KEY_SIZE:
        raise KeyAgreementError(f"key material must be at least {KEY_SIZE} bytes, got {len(ikm)}")
    info = hkdf_info(purpose=purpose, run_id=run_id, round_id=round_id, u=u, v=v)
    return hkdf_sha256(bytes(ikm), salt=None, info=info, length=length)
