"""Example 1 of Yan et al. (Theorem 1): FedAvg is biased under alternating availability.

Two clients, f_i(x) = (x - e_i)^2 (exact gradients 2 (x - e_i)), K = 1, C = 1 local step;
client 0 alone is available for t1 rounds, then client 1 alone for t2 rounds, repeating.
As gamma -> 0 FedAvg tends to (t1 e1 + t2 e2) / (t1 + t2) while FedLaAvg tends to the true
optimum (e1 + e2) / 2 (Yan et al., arXiv:2002.07399, Theorem 1 and Appendices B-C).
"""

import numpy as np
import pytest

from fedkit.algorithms.rules import (
    apply_update,
    fedlaavg_init,
    fold_deltas,
    gradient_sum,
    longest_waiting,
)


def _simulate(e, t1, t2, gamma, rounds_per_unit=8.0, tail=0.5):
    """Period-averaged iterates of FedAvg and FedLaAvg over the last `tail` of the run."""
    dim = e.shape[1]
    period = t1 + t2
    periods = int(np.ceil(rounds_per_unit / gamma / period))
    x_avg = np.zeros(dim)
    x_la = np.zeros(dim)
    state = fedlaavg_init(2, dim, server_table=False)
    g_old = np.zeros((2, dim))  # the clients' own G_i^old (client-delta mode)
    hist_avg, hist_la = [], []
    r = 0
    for _ in range(periods):
        for client, length in ((0, t1), (1, t2)):
            for _ in range(length):
                r += 1
                (chosen,) = longest_waiting(state.last_round, [client], 1, seed=0,
                                            server_round=r)
                # FedAvg: the new model is the mean of the selected clients' local models.
                x_avg = x_avg - gamma * 2.0 * (x_avg - e[chosen])
                # FedLaAvg: fold the selected client's G, step with the average of latest G's.
                local = x_la - gamma * 2.0 * (x_la - e[chosen])
                g_new = gradient_sum(x_la, local, gamma)
                state = fold_deltas(state, [chosen], [g_new - g_old[chosen]], r)
                g_old[chosen] = g_new
                x_la = apply_update(x_la, state, gamma)
                hist_avg.append(x_avg)
                hist_la.append(x_la)
    last = int(periods * tail) * period  # whole periods only
    return np.mean(hist_avg[-last:], axis=0), np.mean(hist_la[-last:], axis=0)


@pytest.mark.parametrize("gamma", [1e-2, 1e-3])
@pytest.mark.parametrize(
    "e1, e2",
    [([0.0], [1.0]), ([0.0, 1.0, -2.0], [1.0, 0.0, 2.0])],
    ids=["scalar", "R3"],
)
def test_fedavg_is_biased_fedlaavg_is_not(gamma, e1, e2):
    t1, t2 = 3, 1
    e = np.array([e1, e2])
    fedavg_limit = (t1 * e[0] + t2 * e[1]) / (t1 + t2)  # 0.25 in the scalar case
    fedlaavg_limit = (e[0] + e[1]) / 2  # 0.5, the optimum of (f_1 + f_2) / 2
    avg, la = _simulate(e, t1, t2, gamma)
    tol = gamma  # shrinks with gamma
    np.testing.assert_allclose(avg, fedavg_limit, rtol=0, atol=tol)
    np.testing.assert_allclose(la, fedlaavg_limit, rtol=0, atol=tol)
    assert np.all(np.abs(avg - fedlaavg_limit) > 0.1)
    assert np.all(np.abs(la - fedavg_limit) > 0.1)
