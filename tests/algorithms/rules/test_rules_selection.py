"""Longest-waiting selection: oldest first, seeded ties, and Lemma 1's staleness bound."""

import math

import numpy as np
import pytest

from fedkit.algorithms.rules import fedlaavg_init, fold_deltas, longest_waiting


def test_picks_the_oldest_never_seen_first():
    last = np.array([5, -1, 2, 7, -1, 3])
    assert longest_waiting(last, [0, 1, 2, 3, 4, 5], 3, seed=0, server_round=8) == [1, 2, 4]
    assert longest_waiting(last, [0, 3, 5], 2, seed=0, server_round=8) == [0, 5]


def test_all_available_when_fewer_than_k():
    assert longest_waiting(np.full(10, -1), [7, 3], 5, seed=0, server_round=1) == [3, 7]
    assert longest_waiting(np.full(10, -1), [], 5, seed=0, server_round=1) == []


def test_independent_of_input_order():
    last = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    a = longest_waiting(last, range(8), 4, seed=3, server_round=9)
    b = longest_waiting(last, [7, 5, 3, 1, 0, 2, 4, 6], 4, seed=3, server_round=9)
    assert a == b and a[:3] == [0, 1, 2] and len(a) == 4


def test_tie_breaking_is_seeded():
    last = np.full(100, -1)
    choice = longest_waiting(last, range(100), 10, seed=1, server_round=4)
    assert choice == longest_waiting(last, range(100), 10, seed=1, server_round=4)
    assert choice != longest_waiting(last, range(100), 10, seed=2, server_round=4)
    assert choice != longest_waiting(last, range(100), 10, seed=1, server_round=5)
    # Ties only matter among equals: the strictly older clients are always kept.
    last[:5] = -2
    for seed in range(5):
        assert set(range(5)) <= set(longest_waiting(last, range(100), 10, seed=seed,
                                                     server_round=4))


def _availability(rng, num_clients, window, rounds, p):
    """Bernoulli(p) availability, forced so each client is online in every `window` rounds."""
    gap = rng.integers(0, window, size=num_clients)  # rounds since last online
    for _ in range(rounds):
        online = (rng.random(num_clients) < p) | (gap >= window - 1)
        gap = np.where(online, 0, gap + 1)
        yield np.flatnonzero(online).tolist()


@pytest.mark.parametrize(
    "num_clients, k, window",
    [(5, 1, 3), (10, 3, 4), (20, 5, 10), (7, 7, 2), (12, 4, 1), (30, 2, 5), (9, 4, 6)],
)
@pytest.mark.parametrize("p", [0.05, 0.5])
def test_staleness_bound_lemma_1(num_clients, k, window, p):
    """Yan et al. Lemma 1: r - R_i <= ceil(N/K) E - 1 after each round; all seen by ceil(N/K) E."""
    horizon = math.ceil(num_clients / k) * window
    for seed in range(3):
        rng = np.random.default_rng([seed, num_clients, k, window])
        state = fedlaavg_init(num_clients, 1, server_table=False)
        first_seen = np.full(num_clients, -1)
        picks = 0
        for r, online in enumerate(_availability(rng, num_clients, window, 4 * horizon, p), 1):
            chosen = longest_waiting(state.last_round, online, k, seed=seed, server_round=r)
            assert len(chosen) == min(k, len(online)) and set(chosen) <= set(online)
            state = fold_deltas(state, chosen, np.zeros((len(chosen), 1)), r)
            first_seen[chosen] = np.where(first_seen[chosen] < 0, r, first_seen[chosen])
            seen = state.last_round >= 0
            staleness = r - state.last_round[seen]
            assert staleness.max(initial=0) <= horizon - 1, (r, state.last_round)
            picks += len(chosen)
            if r >= horizon:
                assert seen.all(), f"round {r}: clients {np.flatnonzero(~seen)} never picked"
        assert (first_seen >= 1).all() and first_seen.max() <= horizon
        assert state.versions.sum() == picks
