"""Bloom filters and index vectors for the private set union (PSU) of clients' index sets.

Each client encodes its real set S_i; the encodings are summed under secure aggregation and
the server reads the union U off the sum (Niu et al., MobiCom 2020, arXiv:1911.02254).

* Sizing: ``m = ceil(-N ln p / (ln 2)^2)``, ``k = max(1, round((m / N) ln 2))``, FPR about
  ``(1 - e^{-kN/m})^k`` (Broder & Mitzenmacher 2004), with N the size of the **union**.
* Positions: ``g_i = (h1 + i * h2) mod m``, ``h1, h2 = murmur3_32(id, 0), murmur3_32(id, 1) | 1``
  (Kirsch & Mitzenmacher 2006), exact in 64-bit integers.
* Random-valued filters (the authors' code puts a random value at each set position): the
  sum mod 2^32 reveals the union but not how many clients set a position. Decoding never
  misses a real element; false positives only enlarge U.

See docs/submodel.md, "Private set union".

References:
    B. H. Bloom, "Space/time trade-offs in hash coding with allowable errors", CACM 1970.
    A. Broder, M. Mitzenmacher, "Network applications of Bloom filters: a survey", Internet
    Mathematics 1(4), 2004 (false-positive rate, optimal k).
    A. Kirsch, M. Mitzenmacher, "Less hashing, same performance: building a better Bloom
    filter", ESA 2006 (double hashing).
    C. Niu et al., "Secure Federated Submodel Learning", arXiv 1911.02254 (PSU by
    randomised Bloom filters and secure aggregation).
"""

from __future__ import annotations

import math

import numpy as np

from fedkit.submodel.murmur import as_keys, murmur3_32

__all__ = [
    "bloom_filter",
    "bloom_positions",
    "bloom_size",
    "contains",
    "decode_index_vector",
    "decode_union",
    "expected_fpr",
    "index_vector",
    "random_valued_filter",
]

_MAX_BITS = 1 << 32  # positions h1 + i*h2 span ~k * 2^32: a longer filter would go unused
_CHUNK = 1 << 20  # ids hashed at a time by contains()


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} has type {type(value).__name__}, expected an int")
    if not low <= int(value) <= high:
        raise ValueError(f"{name}={int(value)} is outside [{low}, {high}]")
    return int(value)


def bloom_size(num_elements: int, fpr: float) -> tuple[int, int]:
    """Filter length m and hash count k for ``num_elements`` at false-positive rate ``fpr``.

    Rule (Broder & Mitzenmacher 2004): ``m = ceil(-N ln p / (ln 2)^2)``,
    ``k = max(1, round((m / N) ln 2))``; the optimum k gives FPR = 2^-k.

    Args:
        num_elements: N, the number of elements of the set encoded: the **union** size.
        fpr: Target false-positive rate p in ``(0, 1)``.

    Returns:
        ``(m, k)``.

    Raises:
        ValueError: On ``num_elements < 1``, ``fpr`` outside ``(0, 1)``, or m > 2^32.

    Example:
        >>> bloom_size(10_000, 0.01), bloom_size(100_000, 0.001)
        ((95851, 7), (1437759, 10))
    """
    n = _check_int("num_elements", num_elements, 1, _MAX_BITS)
    if isinstance(fpr, bool) or not isinstance(fpr, int | float) or not 0.0 < fpr < 1.0:
        raise ValueError(f"fpr={fpr!r} must be a number in (0, 1)")
    m = math.ceil(-n * math.log(fpr) / math.log(2) ** 2)
    if m > _MAX_BITS:
        raise ValueError(f"num_elements={n} at fpr={fpr} needs m={m} bits, more than 2^32")
    return m, max(1, round(m / n * math.log(2)))


def expected_fpr(num_bits: int, num_hashes: int, num_elements: int) -> float:
    """Approximate false-positive rate ``(1 - e^{-kn/m})^k`` (Broder & Mitzenmacher 2004).

    Example:
        >>> round(expected_fpr(95851, 7, 10_000), 5)
        0.01004
    """
    m = _check_int("num_bits", num_bits, 1, _MAX_BITS)
    k = _check_int("num_hashes", num_hashes, 1, 1 << 16)
    n = _check_int("num_elements", num_elements, 0, 1 << 62)
    return float((1.0 - math.exp(-k * n / m)) ** k)


def bloom_positions(ids: object, num_bits: int, num_hashes: int) -> np.ndarray:
    """The k positions of each id: ``g_i = (h1 + i * h2) mod m`` (Kirsch & Mitzenmacher 2006).

    Args:
        ids: Integer ids in ``[0, 2^64)``, hashed as 8-byte little-endian keys.
        num_bits: Filter length m in ``[1, 2^32]``.
        num_hashes: k >= 1.

    Returns:
        An ``int64`` array of shape ``(len(ids), k)`` (a transposed view).

    Example:
        >>> bloom_positions([7], 1000, 3).shape
        (1, 3)
    """
    m = _check_int("num_bits", num_bits, 1, _MAX_BITS)
    k = _check_int("num_hashes", num_hashes, 1, 1 << 16)
    return _positions_by_hash(as_keys(ids, "ids"), m, k).T


def _positions_by_hash(keys: np.ndarray, num_bits: int, num_hashes: int) -> np.ndarray:
    """Positions as a C-contiguous ``(k, len(keys))`` array (row i holds every g_i)."""
    position, step = _double_hashes(keys, num_bits)
    out = np.empty((num_hashes, position.size), dtype=np.int64)
    out[0] = position
    for i in range(1, num_hashes):
        _advance(position, step, num_bits)
        out[i] = position
    return out


def _advance(position: np.ndarray, step: np.ndarray, num_bits: int) -> None:
    """``position = (position + step) mod m`` in place, for ``0 <= position, step < m``."""
    position += step
    np.subtract(position, num_bits, out=position, where=position >= num_bits)


def _double_hashes(keys: np.ndarray, num_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(h1 mod m, h2 mod m)`` as ``int64``: ``g_i = (h1 + i*h2) mod m`` follows exactly."""
    h1 = murmur3_32(keys, 0).astype(np.int64)
    h2 = (murmur3_32(keys, 1) | np.uint32(1)).astype(np.int64)
    if num_bits <= 1 << 31:
        h1 %= num_bits
        h2 %= num_bits
    else:  # m in (2^31, 2^32]: h < 2^32 < 2m, one subtraction reduces
        np.subtract(h1, num_bits, out=h1, where=h1 >= num_bits)
        np.subtract(h2, num_bits, out=h2, where=h2 >= num_bits)
    return h1, h2


def bloom_filter(ids: object, num_bits: int, num_hashes: int) -> np.ndarray:
    """The 0/1 Bloom filter (``uint8``, length m) of a set of ids.

    Example:
        >>> int(bloom_filter([1, 2, 3], 64, 2).sum()) <= 6
        True
    """
    return _set_positions(ids, num_bits, num_hashes).view(np.uint8)


def _set_positions(ids: object, num_bits: int, num_hashes: int) -> np.ndarray:
    """Boolean mask of length m: True at every position of every id."""
    m = _check_int("num_bits", num_bits, 1, _MAX_BITS)
    k = _check_int("num_hashes", num_hashes, 1, 1 << 16)
    mask = np.zeros(m, dtype=bool)
    mask[_positions_by_hash(as_keys(ids, "ids"), m, k).reshape(-1)] = True
    return mask


def _filter_array(summed_filter: object) -> np.ndarray:
    array = np.asarray(summed_filter)
    if array.ndim != 1 or array.size == 0 or not (
        np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_
    ):
        raise ValueError(
            f"filter has shape {array.shape} and dtype {array.dtype}, expected a non-empty "
            "1-D integer or boolean array"
        )
    return array


def contains(bloom: object, ids: object, num_hashes: int) -> np.ndarray:
    """Membership test: True where all k positions of an id are non-zero.

    Works on a 0/1 filter, a random-valued filter, or a (secure) sum of filters. Never
    False for an inserted id; True for a non-member with probability :func:`expected_fpr`.

    Args:
        bloom: 1-D integer or boolean filter of length m.
        ids: Ids to test.
        num_hashes: k used when inserting.

    Returns:
        A boolean array, one entry per id.
    """
    bits = _filter_array(bloom)
    k = _check_int("num_hashes", num_hashes, 1, 1 << 16)
    keys = as_keys(ids, "ids")
    out = np.empty(keys.size, dtype=bool)
    for lo in range(0, keys.size, _CHUNK):  # bounded memory for huge candidate sets
        position, step = _double_hashes(keys[lo : lo + _CHUNK], bits.size)
        found = bits[position] != 0
        for _ in range(1, k):
            _advance(position, step, bits.size)
            found &= bits[position] != 0
        out[lo : lo + _CHUNK] = found
    return out


def decode_union(summed_filter: object, candidates: object, num_hashes: int) -> np.ndarray:
    """The candidates whose k positions are all non-zero in a summed filter.

    This is the server's decoding after the secure sum: the
    exact union of the clients' sets among ``candidates``, plus false positives at rate
    about ``expected_fpr(m, k, |union|)``, minus positions that cancelled mod 2^32
    (probability about 2^-32 each).

    Args:
        summed_filter: The sum of the clients' filters (length m).
        candidates: The enumerable universe of ids (e.g. every embedding-row id).
        num_hashes: k.

    Returns:
        The accepted candidates, in the order and dtype given.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> total = random_valued_filter([3, 9], 256, 3, rng) + random_valued_filter(
        ...     [9, 40], 256, 3, rng)
        >>> decode_union(total, np.arange(50), 3).tolist()
        [3, 9, 40]
    """
    universe = np.asarray(candidates).reshape(-1)
    return universe[contains(summed_filter, as_keys(universe, "candidates"), num_hashes)]


def _random_nonzero(rng: np.random.Generator, size: int) -> np.ndarray:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng has type {type(rng).__name__}, expected numpy.random.Generator")
    return rng.integers(1, 1 << 32, size=size, dtype=np.uint32)


def random_valued_filter(
    ids: object, num_bits: int, num_hashes: int, rng: np.random.Generator
) -> np.ndarray:
    """A ``uint32`` filter whose set positions hold fresh uniform values in ``[1, 2^32)``.

    Each distinct position gets one value (an id's positions shared with another id are
    not drawn twice). Summing such filters mod 2^32 (uint32 wrap-around, the SecAgg ring)
    yields a vector that is non-zero exactly on the union's positions, up to a cancellation
    probability of about 2^-32 per shared position, and hides per-bit counts.
    The values must come from a cryptographically strong generator in deployment; ``rng``
    is the deterministic seam for tests.

    Args:
        ids: The client's real index set.
        num_bits: m.
        num_hashes: k.
        rng: Source of the random values.

    Returns:
        A ``uint32`` array of length m.
    """
    mask = _set_positions(ids, num_bits, num_hashes)
    out = np.zeros(mask.size, dtype=np.uint32)
    out[mask] = _random_nonzero(rng, int(np.count_nonzero(mask)))
    return out


def index_vector(
    ids: object, vocab_size: int, rng: np.random.Generator | None = None, *,
    random_valued: bool = True,
) -> np.ndarray:
    """Direct-indexed PSU vector (``uint32``, length ``vocab_size``): the encoding of Niu et
    al.'s released code, exact (no false positives) but O(vocab_size) to upload.

    Args:
        ids: The client's real index set, each in ``[0, vocab_size)``.
        vocab_size: Number of rows that can be indexed.
        rng: Source of the random values; required when ``random_valued``.
        random_valued: Fresh uniform values in ``[1, 2^32)`` at the ids (counts hidden in
            the sum); otherwise 1 (the sum counts the clients holding each id).

    Returns:
        A ``uint32`` vector; decode a sum with :func:`decode_index_vector`.

    Raises:
        ValueError: If an id is outside ``[0, vocab_size)``, or ``rng`` is missing.
    """
    size = _check_int("vocab_size", vocab_size, 1, _MAX_BITS)
    keys = as_keys(ids, "ids")
    if keys.size and keys.max() >= size:
        raise ValueError(f"ids contain {int(keys.max())}, expected ids in [0, {size})")
    if random_valued and rng is None:
        raise ValueError("index_vector(random_valued=True) needs an rng")
    mask = np.zeros(size, dtype=bool)
    mask[keys.astype(np.int64)] = True
    out = mask.astype(np.uint32)
    if random_valued:
        out[mask] = _random_nonzero(rng, int(np.count_nonzero(mask)))
    return out


def decode_index_vector(summed: object) -> np.ndarray:
    """The union read off a sum of index vectors: its non-zero positions, as ``int64``."""
    return np.flatnonzero(_filter_array(summed)).astype(np.int64)
