"""MurmurHash3_x86_32 of integer keys, vectorised in numpy.

A key in ``[0, 2^64)`` is hashed as its **8-byte little-endian** encoding, so
``murmur3_32(keys, seed)[i] == mmh3.hash(int(keys[i]).to_bytes(8, "little"), seed,
signed=False)`` bit for bit. Only that case is implemented (two 32-bit blocks, no tail,
length 8 in the finaliser), on ``uint32`` arrays that wrap modulo 2^32 as MurmurHash3
requires; the result is unsigned. See docs/submodel.md, "Private set union".

References:
    A. Appleby, "MurmurHash3", SMHasher (``MurmurHash3_x86_32``), 2011.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_keys", "murmur3_32"]

_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)
_N = np.uint32(0xE6546B64)
_F1 = np.uint32(0x85EBCA6B)
_F2 = np.uint32(0xC2B2AE35)
_KEY_BYTES = np.uint32(8)


def as_keys(keys: object, name: str = "keys") -> np.ndarray:
    """Validate integer keys and return them as a 1-D ``uint64`` array (a copy or a view).

    Args:
        keys: Array-like of integers in ``[0, 2^64)``; a scalar counts as one key.
        name: Name used in error messages.

    Returns:
        The keys as a flat ``uint64`` array.

    Raises:
        TypeError: If the keys are not integers (floats and booleans are refused).
        ValueError: If a key is negative.

    Example:
        >>> as_keys([3, 1]).tolist()
        [3, 1]
    """
    array = np.asarray(keys)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        if array.size == 0 and array.dtype == np.float64:  # np.asarray([]) is float64
            return np.zeros(0, dtype=np.uint64)
        raise TypeError(f"{name} have dtype {array.dtype}, expected integers in [0, 2^64)")
    array = array.reshape(-1)
    if np.issubdtype(array.dtype, np.signedinteger) and array.size and array.min() < 0:
        raise ValueError(
            f"{name} contain the negative value {int(array.min())}, expected integers in "
            "[0, 2^64)"
        )
    return array.astype(np.uint64, copy=False)


def _rotl(x: np.ndarray, r: int, scratch: np.ndarray) -> None:
    """``x = rotl32(x, r)`` in place."""
    np.right_shift(x, np.uint32(32 - r), out=scratch)
    np.left_shift(x, np.uint32(r), out=x)
    x |= scratch


def _mix_block(h: np.ndarray, block: np.ndarray, scratch: np.ndarray) -> None:
    """One body step of MurmurHash3_x86_32, in place on ``h`` and ``block``."""
    block *= _C1
    _rotl(block, 15, scratch)
    block *= _C2
    h ^= block
    _rotl(h, 13, scratch)
    h *= np.uint32(5)
    h += _N


def murmur3_32(keys: object, seed: int = 0) -> np.ndarray:
    """MurmurHash3_x86_32 of each key's 8-byte little-endian encoding, unsigned.

    Args:
        keys: Integers in ``[0, 2^64)`` (see :func:`as_keys`).
        seed: Any integer in ``[0, 2^32)``.

    Returns:
        A ``uint32`` array of hashes, one per key, in the keys' order.

    Raises:
        TypeError: If the keys or the seed are not integers.
        ValueError: If a key is negative or the seed lies outside ``[0, 2^32)``.

    Example:
        >>> import mmh3
        >>> int(murmur3_32([5], seed=1)[0]) == mmh3.hash((5).to_bytes(8, "little"), 1,
        ...                                               signed=False)
        True

    References:
        Appleby, MurmurHash3 (``MurmurHash3_x86_32``).
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed has type {type(seed).__name__}, expected an int in [0, 2^32)")
    if not 0 <= int(seed) < 1 << 32:
        raise ValueError(f"seed={int(seed)} is outside [0, 2^32)")
    words = as_keys(keys)
    low = (words & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    high = (words >> np.uint64(32)).astype(np.uint32)
    h = np.full(words.shape, int(seed), dtype=np.uint32)
    scratch = np.empty_like(h)
    _mix_block(h, low, scratch)
    _mix_block(h, high, scratch)
    h ^= _KEY_BYTES
    for shift, factor in ((16, _F1), (13, _F2)):  # fmix32
        h ^= np.right_shift(h, np.uint32(shift), out=scratch)
        h *= factor
    h ^= np.right_shift(h, np.uint32(16), out=scratch)
    return h
