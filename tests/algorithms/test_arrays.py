"""fedkit.algorithms.arrays: the fast Array conversion is identical to Flower's np.save/np.load
path, and flatten/unflatten keep key order and dtypes."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord

from fedkit.algorithms.arrays import (
    flatten,
    float64_like,
    from_flower_array,
    stack_rows,
    to_flower_array,
    unflatten,
)

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


def _record(**arrays):
    return ArrayRecord({k: to_flower_array(v) for k, v in arrays.items()})


def test_flatten_follows_key_order_and_unflatten_inverts_it():
    record = _record(b=np.array([5.0, 6.0], np.float32),
                     a=np.arange(4, dtype=np.float32).reshape(2, 2))
    flat = flatten(record)
    np.testing.assert_array_equal(flat, [5.0, 6.0, 0.0, 1.0, 2.0, 3.0])  # b first, as inserted
    assert flat.dtype == np.float64
    back = unflatten(flat, record)
    assert list(back) == ["b", "a"]
    for name in record:
        got, want = from_flower_array(back[name]), from_flower_array(record[name])
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_unflatten_casts_to_the_given_dtype_and_checks_the_length():
    record = _record(w=np.ones((2, 3), np.float32))
    wide = unflatten(np.full(6, 0.1), record, dtype=np.float64)
    assert from_flower_array(wide["w"]).dtype == np.float64
    with pytest.raises(ValueError, match=r"vector has shape \(5,\), expected \(6,\)"):
        unflatten(np.zeros(5), record)


def test_float64_like_and_stack_rows():
    template = float64_like(_record(w=np.ones((2, 3), np.int32)))
    got = from_flower_array(template["w"])
    assert got.dtype == np.float64 and got.shape == (2, 3) and not got.any()
    assert flatten([]).shape == (0,)
    assert stack_rows([], 4).shape == (0, 4)
    assert stack_rows([np.zeros(4), np.ones(4)], 4).shape == (2, 4)
