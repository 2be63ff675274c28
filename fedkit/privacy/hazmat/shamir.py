"""Hazardous materials: use :mod:`fedkit.privacy.secagg`.

Shamir secret sharing of 32-byte secrets over the prime field GF(p), p = 2^521 - 1.

A 32-byte secret is one field element (2^256 < p; 2^255 - 19 would be too small for
arbitrary strings). ``split`` evaluates a random polynomial of degree ``threshold - 1``
(coefficients from ``secrets``) at the given non-zero x-coordinates; ``combine`` interpolates
at 0 from exactly ``threshold`` shares. The server reconstructs many secrets from the same
responder set, so :func:`lagrange_coefficients` is exposed to compute the weights once and
:func:`combine_with` to apply them.

Shares carry no integrity: a wrong share yields a wrong secret. Callers check the result
(``secagg`` compares a recovered private key with the published public key).

References:
    A. Shamir, "How to Share a Secret", CACM 22(11), 1979.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "PRIME",
    "SHARE_SIZE",
    "Share",
    "ShamirError",
    "combine",
    "combine_with",
    "lagrange_coefficients",
    "split",
]

PRIME = (1 << 521) - 1
SHARE_SIZE = 66  # bytes of one field element (521 bits)
SECRET_SIZE = 32


class ShamirError(ValueError):
    """Invalid sharing parameters or shares (duplicates, too few, out of range)."""


@dataclass(frozen=True, slots=True, repr=False)
class Share:
    """One share: the x-coordinate (public) and the field element y (secret).

    Example:
        >>> Share(1, 5)
        Share(x=1, y=<redacted>)
    """

    x: int
    y: int

    def y_bytes(self) -> bytes:
        """Return y as 66 big-endian bytes."""
        return self.y.to_bytes(SHARE_SIZE, "big")

    @classmethod
    def from_bytes(cls, x: int, data: bytes) -> Share:
        """Rebuild a share from its x-coordinate and 66-byte y.

        Raises:
            ShamirError: If ``data`` is not 66 bytes or y is not a field element.
        """
        if len(data) != SHARE_SIZE:
            raise ShamirError(f"share value must be {SHARE_SIZE} bytes, got {len(data)} bytes")
        y = int.from_bytes(data, "big")
        if y >= PRIME:
            raise ShamirError(f"share value for x={x} is not a field element (>= 2^521 - 1)")
        return cls(x, y)

    def __repr__(self) -> str:
        return f"Share(x={self.x}, y=<redacted>)"


def _check_xs(xs: Sequence[int]) -> None:
    seen: set[int] = set()
    for x in xs:
        if isinstance(x, bool) or not isinstance(x, int) or not 0 < x < PRIME:
            raise ShamirError(f"share x-coordinate {x!r} must be an integer in [1, p)")
        if x in seen:
            raise ShamirError(f"duplicate share x-coordinate {x}; every share needs its own x")
        seen.add(x)


def split(
    secret: bytes, num_shares: int, threshold: int, xs: Sequence[int] | None = None
) -> list[Share]:
    """Split a 32-byte secret into ``num_shares`` shares, any ``threshold`` of which recover it.

    Args:
        secret: Exactly 32 bytes.
        num_shares: Number of shares.
        threshold: Shares needed to reconstruct (``2 <= threshold <= num_shares``).
        xs: Distinct non-zero x-coordinates, one per share (default ``1..num_shares``).

    Returns:
        The shares, in the order of ``xs``.

    Raises:
        ShamirError: On a wrong secret length, a bad threshold, or bad/duplicate ``xs``.

    Example:
        >>> shares = split(bytes(range(32)), 5, 3)
        >>> combine(shares[2:], 3) == bytes(range(32))
        True
    """
    if len(secret) != SECRET_SIZE:
        raise ShamirError(f"secret must be {SECRET_SIZE} bytes, got {len(secret)} bytes")
    if not 2 <= threshold <= num_shares:
        raise ShamirError(
            f"threshold={threshold} must satisfy 2 <= threshold <= num_shares={num_shares}"
        )
    xs = list(range(1, num_shares + 1)) if xs is None else list(xs)
    if len(xs) != num_shares:
        raise ShamirError(f"got {len(xs)} x-coordinates, expected num_shares={num_shares}")
    _check_xs(xs)
    coeffs = [int.from_bytes(secret, "big")]
    coeffs += [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    top = coeffs[::-1]
    shares = []
    for x in xs:
        acc = 0
        for c in top:  # Horner; x is small, so reduce once at the end
            acc = acc * x + c
        shares.append(Share(x, acc % PRIME))
    return shares


def lagrange_coefficients(xs: Sequence[int]) -> list[int]:
    """Return the Lagrange weights l_i(0) for interpolation at 0 from the points ``xs``.

    Raises:
        ShamirError: On bad or duplicate x-coordinates.
    """
    _check_xs(xs)
    coefficients = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = num * xj % PRIME
                den = den * (xj - xi) % PRIME
        coefficients.append(num * pow(den, -1, PRIME) % PRIME)
    return coefficients


def combine_with(coefficients: Sequence[int], ys: Sequence[int]) -> bytes:
    """Interpolate at 0 with precomputed ``coefficients`` and return the 32-byte secret.

    Raises:
        ShamirError: If the lengths differ or the result is not a 32-byte value
            (the shares were inconsistent).
    """
    if len(coefficients) != len(ys):
        raise ShamirError(f"got {len(ys)} share values for {len(coefficients)} coefficients")
    value = sum(c * y for c, y in zip(coefficients, ys, strict=True)) % PRIME
    if value >> (8 * SECRET_SIZE):
        raise ShamirError(
            "reconstructed value does not fit in 32 bytes: the shares are inconsistent "
            "(corrupted, or from different secrets)"
        )
    return value.to_bytes(SECRET_SIZE, "big")


def combine(shares: Sequence[Share], threshold: int) -> bytes:
    """Recover the secret from at least ``threshold`` shares (uses the first ``threshold``).

    Raises:
        ShamirError: With fewer than ``threshold`` shares, duplicate x-coordinates, or
            inconsistent shares.
    """
    if threshold < 2:
        raise ShamirError(f"threshold={threshold} must be at least 2")
    if len(shares) < threshold:
        raise ShamirError(f"got {len(shares)} shares, need at least threshold={threshold}")
    _check_xs([s.x for s in shares])
    chosen = list(shares)[:threshold]
    coefficients = lagrange_coefficients([s.x for s in chosen])
    return combine_with(coefficients, [s.y for s in chosen])
