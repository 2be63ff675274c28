"""MIFA with hand-computed numbers (N = 3 devices, d = 2)."""

import numpy as np

from fedkit.algorithms.rules import mifa_init, mifa_step

TOL = dict(rtol=1e-15, atol=1e-15)


def test_waits_for_every_device_then_averages_all_latest_updates():
    s = mifa_init(3, 2)  # wait_for_all=True, as in the official code
    x0 = np.array([0.0, 0.0])
    # Round 1: devices 0 and 1 report; device 2 never did, so the model stays at x0.
    x1, s = mifa_step(x0, s, [0, 1], [[1.0, 2.0], [3.0, 0.0]], lr=0.5, server_round=1)
    np.testing.assert_array_equal(x1, x0)
    assert s.waiting and s.num_steps == 0
    # Round 2: device 2 reports: table mean ((1+3-1)/3, (2+0+1)/3) = (1, 1); first step.
    x2, s = mifa_step(x1, s, [2], [[-1.0, 1.0]], lr=0.5, server_round=2)
    np.testing.assert_allclose(x2, [-0.5, -0.5], **TOL)
    assert not s.waiting and s.num_steps == 1
    # Round 3: device 0 refreshes to (4, -1); devices 1, 2 stale: mean (6/3, 0/3) = (2, 0).
    x3, s = mifa_step(x2, s, [0], [[4.0, -1.0]], lr=0.25, server_round=3)
    np.testing.assert_allclose(s.table.mean, [2.0, 0.0], **TOL)
    np.testing.assert_allclose(x3, [-1.0, -0.5], **TOL)
    # Round 4: nobody responds: the stale table still moves the model, (-1, -.5) - .125 (2, 0).
    x4, s = mifa_step(x3, s, [], np.zeros((0, 2)), lr=0.125, server_round=4)
    np.testing.assert_allclose(x4, [-1.25, -0.5], **TOL)
    assert s.num_steps == 3
    np.testing.assert_array_equal(s.table.last_round, [3, 1, 2])


def test_without_waiting_never_seen_devices_count_as_zero():
    s = mifa_init(3, 2, wait_for_all=False)
    x0 = np.array([0.0, 0.0])
    # Round 1: mean (4/3, 2/3) (device 2 counts as zero); x = -0.5 (4/3, 2/3).
    x1, s = mifa_step(x0, s, [0, 1], [[1.0, 2.0], [3.0, 0.0]], lr=0.5, server_round=1)
    np.testing.assert_allclose(x1, [-2.0 / 3, -1.0 / 3], **TOL)
    # Round 2: mean (1, 1); x = (-2/3, -1/3) - 0.5 (1, 1) = (-7/6, -5/6).
    x2, s = mifa_step(x1, s, [2], [[-1.0, 1.0]], lr=0.5, server_round=2)
    np.testing.assert_allclose(x2, [-7.0 / 6, -5.0 / 6], **TOL)
    assert not s.waiting and s.num_steps == 2


def test_inputs_are_not_mutated():
    s = mifa_init(2, 1, wait_for_all=False)
    x, g = np.array([1.0]), np.array([[2.0]])
    x_new, _ = mifa_step(x, s, [0], g, 0.5, 1)
    np.testing.assert_array_equal(x, [1.0])
    np.testing.assert_array_equal(g, [[2.0]])
    np.testing.assert_array_equal(x_new, [0.5])
    np.testing.assert_array_equal(s.table.values, [[0.0], [0.0]])
