"""Seeded client sampling: reproducible, order-independent, uniform."""

import numpy as np
import pytest

from fedkit.algorithms import sample_uniform


def test_same_seed_same_clients_regardless_of_input_order():
    a = sample_uniform(range(100), 10, seed=7, server_round=3)
    b = sample_uniform(list(range(99, -1, -1)), 10, seed=7, server_round=3)
    assert a == b
    assert len(set(a)) == 10 and a == sorted(a)


def test_rounds_and_seeds_give_different_streams():
    base = sample_uniform(range(100), 10, seed=7, server_round=3)
    assert sample_uniform(range(100), 10, seed=7, server_round=4) != base
    assert sample_uniform(range(100), 10, seed=8, server_round=3) != base


def test_all_clients_when_fewer_are_available():
    assert sample_uniform([5, 2, 9], 10, seed=0, server_round=1) == [2, 5, 9]


def test_selection_frequency_is_uniform():
    counts = np.zeros(20)
    rounds = 4000
    for r in range(1, rounds + 1):
        counts[sample_uniform(range(20), 5, seed=1, server_round=r)] += 1
    expected = rounds * 5 / 20
    # Chi-square statistic with 19 degrees of freedom; 43.8 is the 0.999 quantile.
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 43.8


def test_errors():
    with pytest.raises(ValueError, match="num_clients = 0, expected >= 1"):
        sample_uniform(range(3), 0, seed=0, server_round=1)
    with pytest.raises(ValueError, match="duplicates"):
        sample_uniform([1, 1, 2], 1, seed=0, server_round=1)
