"""The fast Array conversion is byte- and value-identical to Flower's np.save/np.load path."""

import numpy as np
import pytest
from flwr.app import Array

from fedkit.algorithms._npy import from_flower_array, to_flower_array

CASES = [
    np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    np.array(3.5, dtype=np.float64),
    np.zeros((0, 5), dtype=np.int64),
    np.arange(6, dtype=">i4").reshape(3, 2),
    np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
    np.array([True, False]),
]


@pytest.mark.parametrize("x", CASES, ids=lambda x: f"{x.dtype}{x.shape}")
def test_same_bytes_and_values_as_flower(x):
    fast = to_flower_array(x)
    flower = Array(np.asarray(x, order="C"))
    assert (fast.dtype, fast.shape, fast.stype, fast.data) == (
        flower.dtype, flower.shape, flower.stype, flower.data)
    for array in (fast, Array(x)):  # also Flower's own bytes, Fortran order included
        got = from_flower_array(array)
        np.testing.assert_array_equal(got, x)
        assert got.dtype == x.dtype and got.shape == x.shape


def test_a_header_that_disagrees_with_the_declared_shape_falls_back_to_np_load():
    flower = Array(np.arange(6, dtype=np.float32))
    lying = Array(dtype="float32", shape=(2, 3), stype=flower.stype, data=flower.data)
    # np.load reads the header's shape (6,), exactly as Array.numpy() does
    assert from_flower_array(lying).shape == lying.numpy().shape == (6,)
    truncated = Array(dtype="float32", shape=(6,), stype=flower.stype, data=flower.data[:-4])
    with pytest.raises(ValueError):
        from_flower_array(truncated)


def test_fast_view_is_read_only():
    got = from_flower_array(to_flower_array(np.ones(3, dtype=np.float32)))
    with pytest.raises(ValueError):
        got[0] = 2.0
