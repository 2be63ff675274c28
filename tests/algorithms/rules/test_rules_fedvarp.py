"""FedVARP with hand-computed numbers (N = 3 clients, d = 2)."""

import numpy as np

from fedkit.algorithms.rules import fedvarp_init, fedvarp_step

TOL = dict(rtol=1e-14, atol=1e-15)


def test_three_rounds_by_hand():
    s = fedvarp_init(3, 2)
    x0 = np.array([1.0, 1.0])
    # Round 1, S = {0, 1}, all y = 0: v = mean(Delta) = (0.6, 0.3); x = x0 - 0.5 v.
    x1, s = fedvarp_step(x0, s, [0, 1], [[0.3, 0.6], [0.9, 0.0]], server_lr=0.5)
    np.testing.assert_allclose(x1, [0.7, 0.85], **TOL)
    np.testing.assert_allclose(s.table.values, [[0.3, 0.6], [0.9, 0.0], [0.0, 0.0]], **TOL)
    # Round 2, S = {1, 2}: mean y = (0.4, 0.2); corrections (0.6-0.9, 0.3-0) and
    # (0.3-0, -0.3-0) average to (0, 0): v = (0.4, 0.2); x = (0.7, 0.85) - 0.5 v = (0.5, 0.75).
    x2, s = fedvarp_step(x1, s, [1, 2], [[0.6, 0.3], [0.3, -0.3]], server_lr=0.5)
    np.testing.assert_allclose(x2, [0.5, 0.75], **TOL)
    np.testing.assert_allclose(s.table.mean, [0.4, 0.2], **TOL)
    # Round 3, S = {0}, Delta_0 = 0: v = (0.4, 0.2) + (0 - (0.3, 0.6)) = (0.1, -0.4);
    # x = (0.5, 0.75) - 0.5 v = (0.45, 0.95).
    x3, s = fedvarp_step(x2, s, [0], [[0.0, 0.0]], server_lr=0.5)
    np.testing.assert_allclose(x3, [0.45, 0.95], **TOL)
    np.testing.assert_array_equal(s.table.last_round, [3, 2, 2])
    # Round 4, nobody: x unchanged, the round counter still advances.
    x4, s = fedvarp_step(x3, s, [], np.zeros((0, 2)), server_lr=0.5)
    np.testing.assert_array_equal(x4, x3)
    assert s.server_round == 4


def test_full_participation_is_plain_averaging():
    """With S = all clients every round, v = mean(Delta): the table terms cancel."""
    rng = np.random.default_rng(1)
    s = fedvarp_init(4, 3)
    x = rng.normal(size=3)
    for _ in range(5):
        deltas = rng.normal(size=(4, 3))
        x_new, s = fedvarp_step(x, s, range(4), deltas, server_lr=0.7)
        np.testing.assert_allclose(x_new, x - 0.7 * deltas.mean(axis=0), rtol=1e-12,
                                   atol=1e-14)
        x = x_new
