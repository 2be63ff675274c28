"""MurmurHash3_x86_32 of 8-byte little-endian keys: bit-identical to ``mmh3``."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import mmh3
import numpy as np
import pytest

from fedkit.submodel import as_keys, murmur3_32

SEEDS = [0, 1, 42, 0x9747B28C, 2**32 - 1]


def _reference(keys: np.ndarray, seed: int) -> np.ndarray:
    return np.array(
        [mmh3.hash(int(key).to_bytes(8, "little"), seed, signed=False) for key in keys],
        dtype=np.uint32,
    )


@pytest.fixture(scope="module")
def keys() -> np.ndarray:
    random = np.random.default_rng(20240601).integers(0, 2**64, 10_000, dtype=np.uint64)
    edges = np.array([0, 1, 2**31, 2**32 - 1, 2**32, 2**63, 2**64 - 1], dtype=np.uint64)
    return np.concatenate([edges, np.arange(100, dtype=np.uint64), random])


@pytest.mark.parametrize("seed", SEEDS)
def test_bit_identical_to_mmh3(keys, seed):
    np.testing.assert_array_equal(murmur3_32(keys, seed), _reference(keys, seed))


def test_unsigned_uint32_result_in_key_order(keys):
    hashes = murmur3_32(keys[:50], 0)
    assert hashes.dtype == np.uint32 and hashes.shape == (50,)
    np.testing.assert_array_equal(murmur3_32(keys[:50][::-1], 0), hashes[::-1])


def test_key_dtypes_and_scalars_agree():
    ids = [0, 5, 1_000_000, 2**31 - 1]
    expected = _reference(np.array(ids, dtype=np.uint64), 1)
    for array in (ids, np.array(ids, np.int64), np.array(ids, np.uint32), np.array(ids, np.int32)):
        np.testing.assert_array_equal(murmur3_32(array, 1), expected)
    assert murmur3_32(5, 1).tolist() == [expected[1]]
    assert murmur3_32([], 0).shape == (0,)


def test_input_not_mutated():
    keys = np.arange(10, dtype=np.uint64)
    murmur3_32(keys, 3)
    np.testing.assert_array_equal(keys, np.arange(10, dtype=np.uint64))


def test_rejects_bad_keys_and_seeds():
    with pytest.raises(ValueError, match="keys contain the negative value -3"):
        murmur3_32([1, -3], 0)
    with pytest.raises(TypeError, match="keys have dtype float64"):
        murmur3_32([1.5], 0)
    with pytest.raises(TypeError, match="ids have dtype bool"):
        as_keys([True], "ids")
    with pytest.raises(ValueError, match=r"seed=4294967296 is outside \[0, 2\^32\)"):
        murmur3_32([1], 2**32)
    with pytest.raises(ValueError, match="seed=-1"):
        murmur3_32([1], -1)
    with pytest.raises(TypeError, match="seed has type float"):
        murmur3_32([1], 1.0)


@pytest.mark.parametrize("name", ["murmur", "bloom", "rr", "ledger"])
def test_docstring_examples(name):
    module = importlib.import_module(f"fedkit.submodel.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_package_imports_no_torch_or_flower():
    code = (
        "import sys, fedkit.submodel; "
        "bad = [m for m in ('torch', 'flwr') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
