"""The latest-update table: its incremental mean never drifts from the naive mean."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedkit.algorithms.rules import table_init, table_update


@st.composite
def update_sequences(draw):
    """(N, d, [(ids, values), ...]); values in [-1e3, 1e3], each round a random id subset."""
    n = draw(st.integers(1, 6))
    d = draw(st.integers(1, 4))
    finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
    rounds = []
    for _ in range(draw(st.integers(0, 12))):
        ids = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
        values = draw(st.lists(st.lists(finite, min_size=d, max_size=d),
                               min_size=len(ids), max_size=len(ids)))
        rounds.append((ids, np.array(values, dtype=np.float64).reshape(len(ids), d)))
    return n, d, rounds


@settings(max_examples=150, deadline=None)
@given(update_sequences())
def test_mean_equals_dense_and_naive_mean_after_any_updates(case):
    n, d, rounds = case
    table = table_init(n, d)
    latest = {}  # naive: client -> latest value
    scale = 1.0
    for r, (ids, values) in enumerate(rounds, start=1):
        table = table_update(table, ids, values, r)
        latest.update({i: values[j] for j, i in enumerate(ids)})
        scale = max(scale, float(np.abs(values).max(initial=0.0)))
        naive = sum(latest.values(), np.zeros(d)) / n
        tol = dict(rtol=1e-12, atol=1e-12 * scale)
        np.testing.assert_allclose(table.mean, table.values.mean(axis=0), **tol)
        np.testing.assert_allclose(table.mean, naive, **tol)
        for i in range(n):
            expected = latest.get(i, np.zeros(d))
            np.testing.assert_array_equal(table.values[i], expected)
            assert table.seen[i] == (i in latest)
        assert table.values.shape == (n, d) and table.values.dtype == np.float64


def test_init_is_empty():
    t = table_init(3, 2)
    np.testing.assert_array_equal(t.values, np.zeros((3, 2)))
    np.testing.assert_array_equal(t.seen, [False] * 3)
    np.testing.assert_array_equal(t.last_round, [-1] * 3)
    np.testing.assert_array_equal(t.mean, [0.0, 0.0])
    assert (t.num_clients, t.dim) == (3, 2)


def test_update_is_functional_and_inputs_untouched():
    t0 = table_init(3, 2)
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    t1 = table_update(t0, [2, 0], values, server_round=5)
    values[:] = 99.0  # the caller's buffer is not referenced by the table
    np.testing.assert_array_equal(t0.values, np.zeros((3, 2)))
    np.testing.assert_array_equal(t1.values, [[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]])
    np.testing.assert_array_equal(t1.last_round, [5, -1, 5])
    np.testing.assert_array_equal(t1.mean, [4.0 / 3, 2.0])
    assert t1.rows[1] is t0.rows[1]  # untouched rows are shared, not copied
    assert not t1.mean.flags.writeable and not t1.rows[0].flags.writeable


def test_empty_update_keeps_table():
    t = table_update(table_init(2, 2), [1], [[1.0, 1.0]], 1)
    same = table_update(t, [], np.zeros((0, 2)), 2)
    np.testing.assert_array_equal(same.values, t.values)
    np.testing.assert_array_equal(same.last_round, t.last_round)
