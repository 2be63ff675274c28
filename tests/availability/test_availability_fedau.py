"""FedAU's label-correlated participation and its three patterns."""

from __future__ import annotations

import numpy as np
import pytest
from availability_helpers import mixed_client_info

from fedkit.availability import (
    ClientInfo,
    FedAUAvailability,
    availability_schedule,
    fedau_probabilities,
)
from fedkit.seeding import numpy_rng


def balanced_info(per_class: int = 200, num_classes: int = 10) -> ClientInfo:
    labels = np.repeat(np.arange(num_classes), per_class)
    return ClientInfo.one_class_per_client(labels, num_classes=num_classes)


def test_probability_formula_by_hand():
    dist = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    w = np.array([0.6, 0.4, 0.0])
    # mean_p * L * <d, w> = 0.2 * 3 * [0.5, 0.0, 0.6] = [0.3, 0.0, 0.36] -> floor 0.05
    p = fedau_probabilities(dist, w, mean_p=0.2, p_floor=0.05)
    assert np.allclose(p, [0.3, 0.05, 0.36])
    # Clipped to 1 when mean_p * L > 1.
    assert np.allclose(fedau_probabilities(dist, w, mean_p=1.0, p_floor=0.05), [1.0, 0.05, 1.0])


def test_model_uses_one_dirichlet_weight_vector_from_the_seed():
    info = mixed_client_info()
    model = FedAUAvailability(client_info=info, seed=4)
    w = numpy_rng(4, "availability-weights").dirichlet(np.full(10, 0.1))
    expected = np.clip(0.1 * 10 * info.label_distribution @ w, 0.02, 1.0)
    assert np.allclose(model.participation_probabilities, expected)
    assert np.allclose(model.probabilities(9), expected)


@pytest.mark.parametrize("seed", range(5))
def test_floor_respected_and_mean_close_to_mean_p(seed):
    """Balanced classes: mean of the unfloored p is exactly mean_p, the floor adds < p_floor."""
    p = FedAUAvailability(client_info=balanced_info(), seed=seed).participation_probabilities
    assert p.min() >= 0.02
    assert 0.1 - 1e-12 <= p.mean() <= 0.1 + 0.02


def test_mean_close_to_mean_p_on_a_skewed_partition():
    info = mixed_client_info(num_clients=2000, seed=3)
    means = [FedAUAvailability(client_info=info, seed=s).participation_probabilities.mean()
             for s in range(20)]
    assert 0.09 < np.mean(means) < 0.13


def test_markov_pattern_stationary_rate_and_transition_speed():
    info = ClientInfo.one_class_per_client(np.repeat([0, 1], 100), num_classes=2)
    model = FedAUAvailability(client_info=info, pattern="markov", mean_p=0.4, seed=2)
    p = model.participation_probabilities
    schedule = availability_schedule(model, 3000)
    # P(off -> on) = markov_speed = 0.05 wherever P(on -> off) = 0.05 (1/p - 1) <= 1.
    ok = 0.05 * (1 / p - 1) <= 1
    prev, nxt = schedule[:-1, ok], schedule[1:, ok]
    off = ~prev
    rate_on = (nxt & off).sum() / off.sum()
    assert abs(rate_on - 0.05) < 5 * np.sqrt(0.05 * 0.95 / off.sum())
    # Stationary: long-run rate per client equals p_n (within 5 autocorrelated std errors).
    rho = 1 - 0.05 / p
    se = np.sqrt(p * (1 - p) / 3000 * (1 + rho) / (1 - rho))
    assert np.all(np.abs(schedule.mean(axis=0) - p) < 5 * se)
    # Persistence: consecutive rounds agree far more often than independent coins would.
    assert (schedule[1:] == schedule[:-1]).mean() > 0.9


def test_markov_transitions_are_rescaled_when_p_is_small():
    # alpha_w -> 0 puts all weight on one class: the other class's clients get p = p_floor.
    info = ClientInfo.one_class_per_client([0] * 25 + [1] * 25, num_classes=2)
    model = FedAUAvailability(client_info=info, pattern="markov", mean_p=0.1, p_floor=0.02,
                              alpha_w=1e-3, seed=0)
    p = model.participation_probabilities
    small = p < 0.05 / 1.05  # where 0.05 (1/p - 1) > 1
    assert small.sum() == 25 and np.allclose(p[small], 0.02)
    schedule = availability_schedule(model, 2000)[:, small]
    # P(on -> off) = 1: every online session lasts exactly one round.
    assert not (schedule[1:] & schedule[:-1]).any()


def test_cyclic_pattern_follows_the_documented_phase_rule():
    info = mixed_client_info(num_clients=30, seed=1)
    model = FedAUAvailability(client_info=info, pattern="cyclic", mean_p=0.3, period=20, seed=6)
    p = model.participation_probabilities
    active, inactive, offset = model.cycle
    assert np.array_equal(active, np.maximum(1, np.round(20 * p)))
    assert np.array_equal(inactive, np.maximum(1, 20 - active))
    assert ((offset >= 0) & (offset < inactive)).all()
    assert len(set(offset.tolist())) > 1  # phases differ between clients
    rounds = 400
    schedule = availability_schedule(model, rounds)
    for i in range(info.num_clients):
        column = schedule[:, i]
        first = int(np.argmax(column)) + 1
        assert first == offset[i] + 1  # offline for o_n rounds, then A_n online
        period = active[i] + inactive[i]
        expected = [(r - 1 - offset[i]) % period < active[i] for r in range(1, rounds + 1)]
        assert column.tolist() == expected
    assert model.probabilities(1) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pattern": "random"}, r"fedau.pattern = 'random', expected one of \('bernoulli'"),
        ({"mean_p": 0.0}, r"fedau.mean_p = 0.0, expected a number in \(0.0, 1.0\]"),
        ({"p_floor": 1.5}, r"fedau.p_floor = 1.5, expected a number in \(0.0, 1.0\]"),
        ({"alpha_w": 0}, r"fedau.alpha_w = 0, expected a number in \(0.0, inf\]"),
        ({"markov_speed": 0}, r"fedau.markov_speed = 0, expected a number in \(0.0, 1.0\]"),
        ({"period": 1}, "fedau.period = 1, expected an integer >= 2"),
        ({"period": 10.0}, "fedau.period = 10.0, expected an integer >= 2"),
    ],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FedAUAvailability(client_info=balanced_info(2), **kwargs)
