"""Bloom filters and index vectors for the private set union (docs/submodel.md)."""

from __future__ import annotations

import math

import mmh3
import numpy as np
import pytest

from fedkit.submodel import (
    bloom_filter,
    bloom_positions,
    bloom_size,
    contains,
    decode_index_vector,
    decode_union,
    expected_fpr,
    index_vector,
    random_valued_filter,
)


def _within(measured: float, predicted: float, num_queries: int, num_se: float = 4.0) -> bool:
    """``|measured - predicted| <= num_se`` binomial standard errors of ``predicted``."""
    se = math.sqrt(predicted * (1.0 - predicted) / num_queries)
    return abs(measured - predicted) <= num_se * se


# -- sizing (m = ceil(-N ln p / ln(2)^2)) -------------------------------------------------------
@pytest.mark.parametrize(
    ("num_elements", "fpr", "m", "k"),
    [
        (10**4, 0.01, 95_851, 7),
        (10**4, 0.001, 143_776, 10),
        (10**5, 0.01, 958_506, 7),
        (10**5, 0.001, 1_437_759, 10),
        (10**6, 0.01, 9_585_059, 7),
        (10**6, 0.001, 14_377_588, 10),
    ],
)
def test_sizing_known_answers(num_elements, fpr, m, k):
    assert bloom_size(num_elements, fpr) == (m, k)


def test_sizing_small_sets_and_lax_rates_keep_one_hash():
    assert bloom_size(1, 0.9)[1] == 1
    m, k = bloom_size(1000, 0.5)
    assert k == 1 and m == math.ceil(-1000 * math.log(0.5) / math.log(2) ** 2)


def test_expected_fpr_formula():
    assert expected_fpr(95_851, 7, 10_000) == pytest.approx((1 - math.exp(-0.7 / 0.95851)) ** 7)
    assert expected_fpr(100, 3, 0) == 0.0


# -- positions (double hashing) -----------------------------------------------------------------
@pytest.mark.parametrize("num_bits", [3, 95_851, 2**31 + 12_345, 2**32])
def test_positions_are_double_hashing_of_mmh3(num_bits):
    ids = np.random.default_rng(1).integers(0, 2**63, 300)
    k = 7
    expected = []
    for key in ids:
        data = int(key).to_bytes(8, "little")
        h1, h2 = mmh3.hash(data, 0, signed=False), mmh3.hash(data, 1, signed=False) | 1
        expected.append([(h1 + i * h2) % num_bits for i in range(k)])
    positions = bloom_positions(ids, num_bits, k)
    assert positions.shape == (300, k) and positions.dtype == np.int64
    np.testing.assert_array_equal(positions, np.array(expected, dtype=np.int64))


# -- membership: no false negatives, FPR within 4 s.e. of the formula ---------------------------
@pytest.mark.parametrize(
    ("num_elements", "fpr", "structured", "seed"),
    [(10_000, 0.01, False, 0), (20_000, 0.001, False, 1), (10_000, 0.01, True, 2)],
)
def test_no_false_negatives_and_measured_fpr(num_elements, fpr, structured, seed):
    rng = np.random.default_rng(seed)
    num_queries = 200_000
    if structured:  # consecutive row ids, as embedding rows are
        members = np.arange(num_elements)
        queries = np.arange(num_elements, num_elements + num_queries)
    else:
        drawn = rng.choice(2**40, num_elements + num_queries, replace=False)
        members, queries = drawn[:num_elements], drawn[num_elements:]
    m, k = bloom_size(num_elements, fpr)
    bits = bloom_filter(members, m, k)
    assert bits.dtype == np.uint8 and bits.shape == (m,)
    assert contains(bits, members, k).all()
    measured = float(contains(bits, queries, k).mean())
    predicted = expected_fpr(m, k, num_elements)
    assert _within(measured, predicted, num_queries), (measured, predicted)


def test_duplicate_ids_and_empty_set():
    np.testing.assert_array_equal(bloom_filter([5, 5, 9], 64, 3), bloom_filter([9, 5], 64, 3))
    assert not bloom_filter([], 64, 3).any()
    assert not contains(np.zeros(64, np.uint8), [1, 2], 3).any()


# -- random-valued filters and decoding of a secure sum ----------------------------------------
def test_random_valued_filter_sets_the_bloom_positions_to_nonzero_uint32():
    ids = np.arange(100, 200)
    values = random_valued_filter(ids, 2_000, 5, np.random.default_rng(3))
    assert values.dtype == np.uint32 and values.shape == (2_000,)
    np.testing.assert_array_equal(values != 0, bloom_filter(ids, 2_000, 5) == 1)
    again = random_valued_filter(ids, 2_000, 5, np.random.default_rng(3))
    np.testing.assert_array_equal(values, again)  # deterministic given the generator
    other = random_valued_filter(ids, 2_000, 5, np.random.default_rng(4))
    assert not np.any(other[values != 0] == values[values != 0])  # fresh values


def test_decode_union_of_summed_random_valued_filters():
    rng = np.random.default_rng(5)
    vocab, num_clients, set_size = 100_000, 20, 500
    sets = [rng.choice(vocab, set_size, replace=False) for _ in range(num_clients)]
    union = np.unique(np.concatenate(sets))
    m, k = bloom_size(num_clients * set_size, 0.01)  # the server's upper bound on |U|
    total = np.zeros(m, dtype=np.uint32)
    for ids in sets:
        total += random_valued_filter(ids, m, k, rng)  # the secure sum, mod 2^32
    candidates = np.arange(vocab)
    decoded = decode_union(total, candidates, k)
    assert np.isin(union, decoded).all()  # the exact union, never a miss
    false_positives = np.setdiff1d(decoded, union)
    num_negatives = vocab - union.size
    predicted = expected_fpr(m, k, union.size)
    assert _within(false_positives.size / num_negatives, predicted, num_negatives)
    # the same as decoding the OR of 0/1 filters (no position cancelled mod 2^32)
    union_bits = np.zeros(m, dtype=np.uint8)
    for ids in sets:
        union_bits |= bloom_filter(ids, m, k)
    np.testing.assert_array_equal(decoded, decode_union(union_bits, candidates, k))


def test_decode_union_keeps_candidate_order_and_dtype():
    bits = bloom_filter([7, 3], 512, 4)
    candidates = np.array([9, 7, 1, 3], dtype=np.uint32)
    decoded = decode_union(bits, candidates, 4)
    assert decoded.dtype == np.uint32
    assert decoded.tolist() == [7, 3]  # no false positive among 9 and 1 at this size


def test_index_vectors_give_the_exact_union():
    rng = np.random.default_rng(6)
    sets = [rng.choice(1_000, 50, replace=False) for _ in range(8)]
    total = np.zeros(1_000, dtype=np.uint32)
    counts = np.zeros(1_000, dtype=np.uint32)
    for ids in sets:
        vector = index_vector(ids, 1_000, rng)
        assert vector.dtype == np.uint32 and np.all(vector[ids] != 0)
        total += vector
        counts += index_vector(ids, 1_000, random_valued=False)
    np.testing.assert_array_equal(decode_index_vector(total), np.unique(np.concatenate(sets)))
    np.testing.assert_array_equal(counts, np.bincount(np.concatenate(sets), minlength=1_000))


# -- validation --------------------------------------------------------------------------------
def test_rejects_invalid_arguments():
    with pytest.raises(ValueError, match="num_elements=0 is outside"):
        bloom_size(0, 0.01)
    with pytest.raises(ValueError, match=r"fpr=1.0 must be a number in \(0, 1\)"):
        bloom_size(10, 1.0)
    with pytest.raises(ValueError, match="more than 2\\^32"):
        bloom_size(2**30, 1e-9)
    with pytest.raises(TypeError, match="num_hashes has type float"):
        bloom_positions([1], 64, 2.0)
    with pytest.raises(ValueError, match="num_bits=0 is outside"):
        bloom_filter([1], 0, 2)
    with pytest.raises(ValueError, match=r"filter has shape \(2, 2\)"):
        contains(np.zeros((2, 2), np.uint8), [1], 2)
    with pytest.raises(ValueError, match="dtype float64"):
        decode_union(np.zeros(8), [1], 2)
    with pytest.raises(TypeError, match="rng has type NoneType"):
        random_valued_filter([1], 64, 2, None)
    with pytest.raises(ValueError, match=r"ids contain 10, expected ids in \[0, 10\)"):
        index_vector([3, 10], 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs an rng"):
        index_vector([3], 10)
    with pytest.raises(ValueError, match="candidates contain the negative value -1"):
        decode_union(np.ones(8, np.uint8), [-1], 2)
