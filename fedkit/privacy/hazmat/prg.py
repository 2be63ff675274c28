"""Hazardous materials: use :mod:`fedkit.privacy.secagg`.

The mask PRG: an AES-128-CTR keystream read as little-endian ring elements.

A 32-byte seed (an HKDF output, see :mod:`~fedkit.privacy.hazmat.keys`) is split into an
AES-128 key (first 16 bytes) and a 16-byte initial counter block (last 16 bytes). The
keystream is written with ``update_into`` into a buffer allocated once per vector length,
then viewed as ``<u4`` (Z_{2^32}) or ``<u8`` (Z_{2^64}); every element is uniform in the ring.
numpy's generators are never used for masks: they are not cryptographic, and Flower 1.42's
SecAgg+ seeds ``np.random.RandomState`` with 32 bits, which is brute-forceable
(flwrlabs/flower#7522).

Per-row masks (submodel-aware secure aggregation, :mod:`fedkit.privacy.submodel`): a
client's 16-byte row key k gives each row id r its own 16-byte seed ``AES-128_k(tag | r)``
(:func:`row_seeds`, AES as a pseudorandom function of the id, Bellare-Rogaway), and a seed
gives that row's mask as the AES-128-CTR keystream under the seed, counter block 0
(:func:`expand_rows`). Revealing the seeds of some rows says nothing about the others', so
a client can let the server unmask its rows one by one.

References:
    Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine Learning",
    CCS 2017, §4 (masks from a PRG seeded by agreed keys).
    NIST SP 800-38A, §6.5 (CTR mode).
    M. Bellare, P. Rogaway, "Introduction to Modern Cryptography", ch. 3-4 (a block
    cipher as a PRF; the PRP/PRF switching lemma).
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "ROW_KEY_SIZE",
    "ROW_SEED_SIZE",
    "SEED_SIZE",
    "MaskExpander",
    "expand_mask",
    "expand_rows",
    "ring_dtype",
    "row_seeds",
]

SEED_SIZE = 32
ROW_KEY_SIZE = 16
ROW_SEED_SIZE = 16
_ROW_TAG = b"FKROW\x00\x00\x00"  # domain separation: the first half of every PRF input
_DTYPES = {32: np.dtype("<u4"), 64: np.dtype("<u8")}


def ring_dtype(bits: int) -> np.dtype:
    """Return the little-endian unsigned dtype of Z_{2^bits} (``bits`` is 32 or 64).

    Raises:
        ValueError: If ``bits`` is not 32 or 64.
    """
    if bits not in _DTYPES:
        raise ValueError(f"ring bits={bits!r} unsupported, expected 32 or 64")
    return _DTYPES[bits]


class MaskExpander:
    """Expands seeds into mask vectors of one fixed length without allocating per call.

    Args:
        length: Number of ring elements per mask.
        bits: Ring size in bits (32 or 64).

    Example:
        >>> exp = MaskExpander(4, bits=32)
        >>> acc = np.zeros(4, dtype=np.uint32)
        >>> exp.add_into(acc, bytes(32), sign=+1)
        >>> exp.add_into(acc, bytes(32), sign=-1)
        >>> int(acc.sum())
        0
    """

    __slots__ = ("_buffer", "_dtype", "_length", "_out", "_zeros")

    def __init__(self, length: int, *, bits: int = 32) -> None:
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"mask length={length!r} must be a positive integer")
        self._dtype = ring_dtype(bits)
        self._length = length
        nbytes = length * self._dtype.itemsize
        self._zeros = bytearray(nbytes)
        self._buffer = bytearray(nbytes)
        self._out = np.frombuffer(self._buffer, dtype=self._dtype)

    @property
    def length(self) -> int:
        """Number of ring elements per mask."""
        return self._length

    def expand(self, seed: bytes) -> np.ndarray:
        """Return the mask for ``seed`` as a read-only view of the internal buffer.

        The view is overwritten by the next call; copy it to keep it.

        Raises:
            ValueError: If ``seed`` is not 32 bytes.
        """
        if len(seed) != SEED_SIZE:
            raise ValueError(f"PRG seed must be {SEED_SIZE} bytes, got {len(seed)} bytes")
        seed = bytes(seed)
        encryptor = Cipher(algorithms.AES(seed[:16]), modes.CTR(seed[16:])).encryptor()
        written = encryptor.update_into(self._zeros, self._buffer)
        if written != len(self._buffer):  # pragma: no cover - cryptography contract
            raise RuntimeError(f"AES-CTR wrote {written} bytes, expected {len(self._buffer)}")
        view = self._out.view()
        view.flags.writeable = False
        return view

    def add_into(self, acc: np.ndarray, seed: bytes, *, sign: int) -> None:
        """Add (``sign=+1``) or subtract (``sign=-1``) the mask of ``seed`` into ``acc`` in place.

        Raises:
            ValueError: If ``acc`` has the wrong shape or dtype, or ``sign`` is not +-1.
        """
        if acc.shape != (self._length,) or acc.dtype != self._dtype:
            raise ValueError(
                f"accumulator has shape {acc.shape} dtype {acc.dtype}, expected "
                f"({self._length},) {self._dtype}"
            )
        mask = self.expand(seed)
        if sign == 1:
            np.add(acc, mask, out=acc)
        elif sign == -1:
            np.subtract(acc, mask, out=acc)
        else:
            raise ValueError(f"mask sign={sign!r} must be +1 or -1")


def expand_mask(seed: bytes, length: int, *, bits: int = 32) -> np.ndarray:
    """Return a fresh (owned, writable) mask vector of ``length`` ring elements for ``seed``.

    Example:
        >>> expand_mask(bytes(32), 3).dtype
        dtype('uint32')
    """
    return MaskExpander(length, bits=bits).expand(seed).copy()


def row_seeds(key: bytes, rows: np.ndarray) -> np.ndarray:
    """Return one 16-byte seed per row id: ``AES-128_key(b"FKROW\\0\\0\\0" | u64 id)``.

    A pseudorandom function of the id under ``key``: seeds of distinct ids are independent
    to anyone without the key, so revealing some reveals nothing of the others.

    Args:
        key: 16 bytes, fresh per client and round (e.g. an HKDF output).
        rows: Distinct row ids in ``[0, 2^63)`` (any integer array-like; not modified).

    Returns:
        A new ``[len(rows), 16]`` ``uint8`` array.

    Raises:
        ValueError: On a key of another length or an id outside ``[0, 2^63)``.

    Example:
        >>> seeds = row_seeds(bytes(16), np.array([3, 7]))
        >>> seeds.shape, bool((row_seeds(bytes(16), np.array([7])) == seeds[1]).all())
        ((2, 16), True)
    """
    if len(key) != ROW_KEY_SIZE:
        raise ValueError(f"row key must be {ROW_KEY_SIZE} bytes, got {len(key)} bytes")
    ids = np.asarray(rows, dtype=np.int64).reshape(-1)
    if ids.size and int(ids.min()) < 0:
        raise ValueError(f"row ids must lie in [0, 2^63), got {int(ids.min())}")
    blocks = np.empty((ids.size, 16), dtype=np.uint8)
    blocks[:, :8] = np.frombuffer(_ROW_TAG, dtype=np.uint8)
    blocks[:, 8:] = ids.astype(">u8").view(np.uint8).reshape(-1, 8)
    encryptor = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()
    out = encryptor.update(blocks.tobytes()) + encryptor.finalize()
    return np.frombuffer(out, dtype=np.uint8).reshape(ids.size, 16).copy()


def expand_rows(seeds: np.ndarray, width: int, *, bits: int = 32) -> np.ndarray:
    """Return the row masks of ``seeds``: row i is the AES-128-CTR keystream under seed i.

    Args:
        seeds: ``[k, 16]`` ``uint8`` (from :func:`row_seeds`); each seed keys one row only.
        width: Ring elements per row.
        bits: Ring size in bits (32 or 64).

    Returns:
        A new ``[k, width]`` array of ring elements, each uniform.

    Raises:
        ValueError: On seeds of another shape or a width below 1.

    Example:
        >>> masks = expand_rows(row_seeds(bytes(16), np.arange(3)), 4)
        >>> masks.shape, masks.dtype
        ((3, 4), dtype('uint32'))
    """
    array = np.asarray(seeds, dtype=np.uint8)
    if array.ndim != 2 or array.shape[1] != ROW_SEED_SIZE:
        raise ValueError(f"row seeds have shape {array.shape}, expected (k, {ROW_SEED_SIZE})")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"row width={width!r} must be a positive integer")
    dtype = ring_dtype(bits)
    size = width * dtype.itemsize
    zeros, counter = bytes(size), bytes(16)
    buffer = bytearray(array.shape[0] * size)
    for i, seed in enumerate(array):
        encryptor = Cipher(algorithms.AES(seed.tobytes()), modes.CTR(counter)).encryptor()
        buffer[i * size : (i + 1) * size] = encryptor.update(zeros)
    return np.frombuffer(buffer, dtype=dtype).reshape(array.shape[0], width)
