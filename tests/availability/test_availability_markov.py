"""On/off sessions: geometric session lengths, persistence, stationarity, memoised purity."""

from __future__ import annotations

import numpy as np
import pytest

from fedkit.availability import MarkovAvailability, TwoStateChain, availability_schedule
from fedkit.seeding import numpy_rng


def session_lengths(schedule: np.ndarray, state: bool) -> np.ndarray:
    """Lengths of the complete runs of ``state`` (runs touching the first/last round dropped)."""
    lengths = []
    for column in schedule.T:
        edges = np.flatnonzero(np.diff(column.astype(np.int8))) + 1
        starts = np.concatenate([[0], edges])
        ends = np.concatenate([edges, [column.size]])
        for s, e in zip(starts[1:-1], ends[1:-1], strict=True):
            if column[s] == state:
                lengths.append(e - s)
    return np.array(lengths)


@pytest.fixture(scope="module")
def schedule():
    model = MarkovAvailability(num_clients=200, mean_on=5, mean_off=10, seed=4)
    return availability_schedule(model, 2000)


def test_mean_session_lengths_match_mean_on_and_mean_off(schedule):
    on, off = session_lengths(schedule, True), session_lengths(schedule, False)
    # Geometric lengths: standard error sqrt(m (m - 1) / n); allow 5 of them.
    assert abs(on.mean() - 5) < 5 * np.sqrt(5 * 4 / on.size)
    assert abs(off.mean() - 10) < 5 * np.sqrt(10 * 9 / off.size)
    assert on.min() >= 1 and off.min() >= 1


def test_stationary_rate_and_positive_lag_one_autocorrelation(schedule):
    pi = 5 / 15
    assert abs(schedule.mean() - pi) < 0.01
    x = schedule.astype(float)
    x0, x1 = x[:-1].ravel(), x[1:].ravel()
    rho = np.corrcoef(x0, x1)[0, 1]
    assert rho > 0
    assert abs(rho - (1 - 1 / 5 - 1 / 10)) < 0.02  # two-state chain: rho = 1 - a - b
    # Round 1 already follows the stationary law (no burn-in).
    first_rounds = availability_schedule(
        MarkovAvailability(num_clients=4000, mean_on=5, mean_off=10, seed=9), 1
    )
    assert abs(first_rounds.mean() - pi) < 5 * np.sqrt(pi * (1 - pi) / 4000)


def test_probabilities_are_the_stationary_rate():
    model = MarkovAvailability(num_clients=3, mean_on=2, mean_off=6)
    assert np.allclose(model.probabilities(17), 0.25)


def naive_trajectory(seed, to_off, to_on, rounds):
    """The chain exactly as documented, simulated round by round without any cache."""
    state = numpy_rng(seed, "availability", 1).random(to_off.size) < to_on / (to_off + to_on)
    rows = [state]
    for r in range(2, rounds + 1):
        u = numpy_rng(seed, "availability", r).random(to_off.size)
        state = np.where(state, u >= to_off, u < to_on)
        rows.append(state)
    return np.stack(rows)


def test_memoised_chain_equals_the_naive_simulation_in_any_query_order():
    to_off, to_on = np.array([0.2, 0.5, 0.9, 0.05]), np.array([0.1, 0.5, 0.3, 0.05])
    rounds = 1100  # crosses several 256-round blocks and the LRU limit is not needed
    expected = naive_trajectory(5, to_off, to_on, rounds)
    chain = TwoStateChain(5, to_off, to_on)
    order = [1100, 3, 257, 256, 513, 1] + list(np.random.default_rng(0).permutation(rounds) + 1)
    for r in order:
        assert np.array_equal(chain.state(int(r)), expected[int(r) - 1]), r


def test_chain_with_more_blocks_than_the_cache_stays_exact():
    to_off, to_on = np.array([0.3]), np.array([0.2])
    expected = naive_trajectory(2, to_off, to_on, 12 * 256)
    chain = TwoStateChain(2, to_off, to_on)
    for r in (12 * 256, 1, 6 * 256 + 7, 3 * 256, 11 * 256 + 1, 2):
        assert np.array_equal(chain.state(r), expected[r - 1])


def test_unit_sessions_alternate_after_round_one():
    schedule = availability_schedule(MarkovAvailability(num_clients=5, mean_on=1, mean_off=1), 9)
    assert np.array_equal(schedule[1:], ~schedule[:-1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mean_on": 0.5}, r"markov.mean_on = 0.5, expected a number in \[1.0, inf\]"),
        ({"mean_off": 0}, r"markov.mean_off = 0, expected a number in \[1.0, inf\]"),
        ({"mean_on": float("nan")}, "markov.mean_on = nan, expected a finite number"),
        ({"mean_off": "5"}, "markov.mean_off = '5', expected a finite number"),
        ({"num_clients": 0}, "markov.num_clients = 0, expected an integer >= 1"),
        ({"seed": -1}, "markov.seed = -1, expected an integer >= 0"),
    ],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MarkovAvailability(**{"num_clients": 3, **kwargs})
