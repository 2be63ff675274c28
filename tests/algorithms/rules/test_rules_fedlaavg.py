"""FedLaAvg: both ways of keeping g_bar agree, and never-seen clients count as zero."""

import numpy as np
import pytest

from fedkit.algorithms.rules import (
    apply_update,
    fedlaavg_init,
    fold_deltas,
    fold_latest,
    gradient_sum,
    longest_waiting,
)


def _run_both_modes(seed, num_clients, dim, rounds, k):
    """Simulate FedLaAvg in client-delta and server-table mode on the same random replies."""
    rng = np.random.default_rng(seed)
    delta_state = fedlaavg_init(num_clients, dim, server_table=False)
    table_state = fedlaavg_init(num_clients, dim, server_table=True)
    g_old = np.zeros((num_clients, dim))  # what each simulated client keeps
    x_delta = x_table = rng.normal(size=dim)
    for r in range(1, rounds + 1):
        online = np.flatnonzero(rng.random(num_clients) < 0.4).tolist()
        chosen = longest_waiting(delta_state.last_round, online, k, seed=seed, server_round=r)
        assert chosen == longest_waiting(table_state.last_round, online, k, seed=seed,
                                         server_round=r)
        lr = 0.1 / (1 + 0.01 * r)
        g_new = rng.normal(scale=rng.choice([1e-3, 1.0, 1e3]), size=(len(chosen), dim))
        delta_state = fold_deltas(delta_state, chosen, g_new - g_old[chosen], r)
        g_old[chosen] = g_new
        table_state = fold_latest(table_state, chosen, g_new, r)
        x_delta = apply_update(x_delta, delta_state, lr)
        x_table = apply_update(x_table, table_state, lr)
        yield r, delta_state, table_state, x_delta, x_table, g_old


@pytest.mark.parametrize("seed", range(6))
def test_client_delta_and_server_table_modes_agree(seed):
    num_clients, dim = 7, 3
    for _, ds, ts, xd, xt, g_old in _run_both_modes(seed, num_clients, dim, 60, k=3):
        np.testing.assert_allclose(ds.g_bar, ts.g_bar, rtol=1e-12, atol=0)
        np.testing.assert_allclose(xd, xt, rtol=1e-12, atol=0)
        # Equal in fact bit for bit: the same differences are summed in the same order.
        assert ds.g_bar.tobytes() == ts.g_bar.tobytes() and xd.tobytes() == xt.tobytes()
        np.testing.assert_array_equal(ds.last_round, ts.last_round)
        np.testing.assert_array_equal(ds.versions, ts.versions)
        np.testing.assert_array_equal(ts.table.values, g_old)
        scale = max(1.0, float(np.abs(g_old).max()))
        np.testing.assert_allclose(ds.g_bar, g_old.mean(axis=0), rtol=1e-12,
                                   atol=1e-12 * scale)


def test_never_seen_clients_count_as_zero():
    state = fedlaavg_init(4, 2, server_table=False)
    state = fold_deltas(state, [1, 3], [[4.0, 8.0], [2.0, -4.0]], server_round=1)
    np.testing.assert_array_equal(state.g_bar, [1.5, 1.0])  # (G_1 + G_3 + 0 + 0) / 4
    np.testing.assert_array_equal(state.last_round, [-1, 1, -1, 1])
    np.testing.assert_array_equal(state.versions, [0, 1, 0, 1])
    # Client 1 reports again: only its change enters; the stale G_3 keeps its weight 1/4.
    state = fold_deltas(state, [1], [[-4.0, 0.0]], server_round=2)
    np.testing.assert_array_equal(state.g_bar, [0.5, 1.0])
    np.testing.assert_array_equal(state.versions, [0, 2, 0, 1])
    np.testing.assert_array_equal(apply_update(np.array([1.0, 1.0]), state, 0.5), [0.75, 0.5])


def test_warm_up_folds_without_stepping_and_inputs_are_untouched():
    state = fedlaavg_init(2, 1, server_table=True)
    g = np.array([[2.0]])
    state = fold_latest(state, [0], g, 1)  # warm-up round: fold only
    g[0, 0] = 100.0
    x = np.array([3.0])
    x_new = apply_update(x, state, 0.5)
    np.testing.assert_array_equal(x, [3.0])
    np.testing.assert_array_equal(x_new, [2.5])


def test_gradient_sum_is_the_sum_of_local_gradients():
    x, lr = np.array([1.0, -2.0]), 0.1
    grads = [np.array([0.5, 1.0]), np.array([-0.25, 2.0]), np.array([1.0, 0.0])]
    local = x - lr * sum(grads)  # C = 3 local SGD steps
    np.testing.assert_allclose(gradient_sum(x, local, lr), sum(grads), rtol=1e-12)
