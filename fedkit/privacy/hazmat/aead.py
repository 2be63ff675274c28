"""Hazardous materials: use :mod:`fedkit.privacy.secagg`.

AES-128-GCM encryption of Shamir share bundles between two clients, relayed by the server.

The associated data binds the protocol version, run id, round id, sender id and receiver id,
so a ciphertext replayed from another round, redirected to another client or attributed to
another sender fails authentication. The 16-byte key comes from HKDF (purpose ``"enc"``);
each message gets a fresh random 96-bit nonce (``os.urandom``), prepended to the ciphertext.

References:
    NIST SP 800-38D (GCM); Bonawitz et al., CCS 2017, §4 (authenticated encryption of shares).
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedkit.privacy.hazmat.keys import PROTOCOL, PROTOCOL_VERSION

__all__ = ["KEY_SIZE", "NONCE_SIZE", "AuthenticationError", "associated_data", "decrypt", "encrypt"]

KEY_SIZE = 16
NONCE_SIZE = 12
_TAG_SIZE = 16


class AuthenticationError(ValueError):
    """A ciphertext failed AES-GCM authentication (tampered, wrong key or wrong context)."""


def associated_data(*, run_id: int, round_id: int, sender: int, receiver: int) -> bytes:
    """Return the AEAD associated data binding version, run, round, sender and receiver.

    Layout: ``protocol | u8 version | u64 run | u64 round | u64 sender | u64 receiver``.

    Unlike the HKDF info, the ids keep their direction (sender first).
    """
    return PROTOCOL + struct.pack(">BQQQQ", PROTOCOL_VERSION, run_id, round_id, sender, receiver)


def encrypt(key: bytes, plaintext: bytes, *, associated: bytes) -> bytes:
    """Encrypt ``plaintext`` under a 16-byte key; return ``nonce | ciphertext | tag``.

    Raises:
        ValueError: If the key is not 16 bytes.

    Example:
        >>> ad = associated_data(run_id=0, round_id=1, sender=2, receiver=3)
        >>> decrypt(bytes(16), encrypt(bytes(16), b"share", associated=ad), associated=ad)
        b'share'
    """
    if len(key) != KEY_SIZE:
        raise ValueError(f"AES-128-GCM key must be {KEY_SIZE} bytes, got {len(key)} bytes")
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(bytes(key)).encrypt(nonce, plaintext, associated)


def decrypt(key: bytes, ciphertext: bytes, *, associated: bytes) -> bytes:
    """Decrypt and authenticate ``nonce | ciphertext | tag``.

    Raises:
        ValueError: If the key is not 16 bytes.
        AuthenticationError: If the ciphertext is too short or fails authentication.
    """
    if len(key) != KEY_SIZE:
        raise ValueError(f"AES-128-GCM key must be {KEY_SIZE} bytes, got {len(key)} bytes")
    if len(ciphertext) < NONCE_SIZE + _TAG_SIZE:
        raise AuthenticationError(
            f"ciphertext is {len(ciphertext)} bytes, shorter than nonce + tag "
            f"({NONCE_SIZE + _TAG_SIZE} bytes)"
        )
    nonce, body = ciphertext[:NONCE_SIZE], ciphertext[NONCE_SIZE:]
    try:
        return AESGCM(bytes(key)).decrypt(nonce, body, associated)
    except InvalidTag as exc:
        raise AuthenticationError(
            "ciphertext failed AES-GCM authentication: it was tampered with, or encrypted "
            "for another round, sender or receiver"
        ) from exc
