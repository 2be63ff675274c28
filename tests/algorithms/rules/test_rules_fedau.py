"""FedAU's online weights (Alg. 2 of Wang & Ji) and its aggregation, with hand-computed numbers."""

import numpy as np

from fedkit.algorithms.rules import fedau_init, fedau_observe, fedau_step, fedau_weights


def _observe_rounds(state, participation, rounds):
    """participation: client -> set of rounds; returns the weights after each round."""
    history = []
    for r in range(state.server_round + 1, state.server_round + rounds + 1):
        ids = [c for c, when in participation.items() if r in when]
        state = fedau_observe(state, ids, r)
        history.append(fedau_weights(state))
    return state, np.array(history)


def test_weights_start_at_one():
    np.testing.assert_array_equal(fedau_weights(fedau_init(4, cutoff=3)), [1.0] * 4)


def test_intervals_by_hand():
    # K = 5. Client 0 joins in rounds 3, 6, 9, 12: intervals 3, 3, 3, 3 -> omega = 3 exactly.
    # Client 1 is absent 12 rounds, then joins in round 13: cut-off intervals 5 (round 5),
    #   5 (round 10), then 3 (rounds 11-13) -> omega = 5, 5, 13/3.
    # Client 2 joins in rounds 1, 2, then is absent: intervals 1, 1, 5 (round 7), 5 (round 12).
    state = fedau_init(3, cutoff=5)
    participation = {0: {3, 6, 9, 12}, 1: {13}, 2: {1, 2}}
    state, w = _observe_rounds(state, participation, 13)
    expected = {  # round -> omega after observing it
        1: [1, 1, 1], 2: [1, 1, 1], 3: [3, 1, 1], 5: [3, 5, 1], 7: [3, 5, 7 / 3],
        10: [3, 5, 7 / 3], 12: [3, 5, 3], 13: [3, 13 / 3, 3],
    }
    for r, omega in expected.items():
        np.testing.assert_allclose(w[r - 1], omega, rtol=1e-15)
    np.testing.assert_array_equal(state.num_intervals, [4, 3, 4])
    np.testing.assert_array_equal(state.interval_sums, [12, 13, 12])
    np.testing.assert_array_equal(state.counters, [1, 0, 1])


def test_periodic_client_converges_to_its_period():
    # Joining in rounds 1, 4, 7, ...: intervals 1, 3, 3, ... -> omega = (1 + 3m)/(m + 1) -> 3.
    state, w = _observe_rounds(fedau_init(1, cutoff=10), {0: set(range(1, 3001, 3))}, 3000)
    m = 999
    assert w[-1, 0] == (1 + 3 * m) / (m + 1)
    assert abs(w[-1, 0] - 3.0) < 2.1e-3


def test_bernoulli_participation_estimates_inverse_probability():
    rng = np.random.default_rng(0)
    probs = np.array([0.5, 0.25, 0.1])
    rounds = 6000
    joins = rng.random((rounds, 3)) < probs
    participation = {c: set(np.flatnonzero(joins[:, c]) + 1) for c in range(3)}
    _, w = _observe_rounds(fedau_init(3, cutoff=100), participation, rounds)
    np.testing.assert_allclose(w[-1], 1 / probs, rtol=0.08)


def test_cutoff_one_is_plain_averaging_over_all_clients():
    _, w = _observe_rounds(fedau_init(2, cutoff=1), {0: {2, 5}}, 6)
    np.testing.assert_array_equal(w, np.ones((6, 2)))


def test_step_uses_the_weights_of_earlier_rounds():
    # K = 4; client 0 joins in round 3 (interval 3); client 1 never (interval 4 at round 4);
    # client 2 joins in round 1 (interval 1), then its counter is 3 < K: weights (3, 4, 1).
    state, _ = _observe_rounds(fedau_init(3, cutoff=4), {0: {3}, 2: {1}}, 4)
    np.testing.assert_array_equal(fedau_weights(state), [3.0, 4.0, 1.0])
    x = np.array([1.0, -1.0])
    deltas = np.array([[1.0, 2.0], [0.5, -1.0]])
    # x + 1.5 / 3 * (3 (1, 2) + 4 (0.5, -1)) = (1, -1) + 0.5 (5, 2) = (3.5, 0)
    x_new, same = fedau_step(x, state, [0, 1], deltas, server_lr=1.5)
    np.testing.assert_array_equal(x_new, [3.5, 0.0])
    assert same is state
    np.testing.assert_array_equal(x, [1.0, -1.0])
    np.testing.assert_array_equal(deltas, [[1.0, 2.0], [0.5, -1.0]])
    # Round 5 as a whole: step with the old weights, then observe (clients 0, 1 joined;
    # client 2's counter reaches K = 4): intervals (3, 2), (4, 1), (1, 4).
    state = fedau_observe(state, [0, 1], 5)
    np.testing.assert_array_equal(fedau_weights(state), [2.5, 2.5, 2.5])
    x_empty, _ = fedau_step(x, state, [], np.zeros((0, 2)), 1.0)
    np.testing.assert_array_equal(x_empty, x)
