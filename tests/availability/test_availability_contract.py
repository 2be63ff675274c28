"""The contract every availability model keeps: purity, seeding, copies, rates, describe()."""

from __future__ import annotations

import json

import numpy as np
import pytest
from availability_helpers import DETERMINISTIC, model_specs

from fedkit.availability import (
    AvailabilityModel,
    availability_schedule,
    build_availability,
)

SPECS = model_specs()


def build(spec, info, seed=7):
    return build_availability(spec, info, seed=seed)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_model_answers_bool_vectors_and_matches_protocol(name, info):
    model = build(SPECS[name], info)
    assert isinstance(model, AvailabilityModel)
    assert model.num_clients == info.num_clients
    row = model.available(1)
    assert row.dtype == bool and row.shape == (info.num_clients,)
    probs = model.probabilities(1)
    if probs is not None:
        assert probs.shape == (info.num_clients,)
        assert ((probs >= 0) & (probs <= 1)).all()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_same_seed_same_schedule_in_any_round_order(name, info):
    rounds = 300
    forward = availability_schedule(build(SPECS[name], info), rounds)
    model = build(SPECS[name], info)
    order = np.random.default_rng(1).permutation(np.arange(1, rounds + 1))
    shuffled = {int(r): model.available(int(r)) for r in [rounds, 3, *order]}
    assert all(np.array_equal(shuffled[r], forward[r - 1]) for r in range(1, rounds + 1))
    # Far rounds first, then an early one, on a fresh model.
    fresh = build(SPECS[name], info)
    late = fresh.available(1000)
    assert np.array_equal(fresh.available(3), forward[2])
    assert np.array_equal(late, build(SPECS[name], info).available(1000))


@pytest.mark.parametrize("name", sorted(set(SPECS) - DETERMINISTIC))
def test_different_seed_different_schedule(name, info):
    a = availability_schedule(build(SPECS[name], info, seed=1), 200)
    b = availability_schedule(build(SPECS[name], info, seed=2), 200)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_models_ignore_the_seed(name, info):
    a = availability_schedule(build(SPECS[name], info, seed=1), 100)
    b = availability_schedule(build(SPECS[name], info, seed=2), 100)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_returned_arrays_are_copies(name, info):
    model = build(SPECS[name], info)
    first = model.available(5)
    saved = first.copy()
    first[:] = ~first
    assert np.array_equal(model.available(5), saved)
    probs = model.probabilities(5)
    if probs is not None:
        probs[:] = -1.0
        assert (model.probabilities(5) >= 0).all()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_describe_is_json_and_rebuilds_the_same_model(name, info):
    model = build(SPECS[name], info, seed=11)
    described = json.loads(json.dumps(model.describe()))
    assert described["model"] == SPECS[name]["model"]
    if name not in DETERMINISTIC:
        assert described["seed"] == 11
    described.pop("seed", None)
    again = build(described, info, seed=11)
    assert np.array_equal(availability_schedule(again, 120), availability_schedule(model, 120))


RATE_MODELS = sorted(set(SPECS) - {"fedau-cyclic", "alternating", "trace"})


def _lag_one_correlation(name, model):
    """Per-client lag-1 autocorrelation rho = 1 - P(on->off) - P(off->on) (0 if memoryless)."""
    if name == "markov":
        return np.full(model.num_clients, 1 - 1 / 3 - 1 / 4)
    if name == "fedau-markov":
        p = model.participation_probabilities
        to_on = 0.05
        to_off = to_on * (1 / p - 1)
        scale = np.maximum(to_off, 1.0)
        return 1 - (to_off + to_on) / scale
    return np.zeros(model.num_clients)


@pytest.mark.parametrize("name", RATE_MODELS)
def test_empirical_rates_match_probabilities(name, info):
    """Per client, the online fraction over R rounds is within 5 standard errors of the mean
    of probabilities(r); for Markov chains the variance is inflated by (1 + rho)/(1 - rho)."""
    rounds = 2000
    model = build(SPECS[name], info)
    schedule = availability_schedule(model, rounds)
    probs = np.stack([model.probabilities(r) for r in range(1, rounds + 1)])
    expected = probs.mean(axis=0)
    rho = _lag_one_correlation(name, model)
    variance = (probs * (1 - probs)).sum(axis=0) / rounds**2 * (1 + rho) / (1 - rho)
    tolerance = 5 * np.sqrt(variance) + 1e-12
    assert np.all(np.abs(schedule.mean(axis=0) - expected) <= tolerance)
    if name not in ("always", "flgo-IDL"):
        assert 0 < schedule.mean() < 1


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "1"])
def test_rounds_are_one_based_integers(bad, info):
    for spec in SPECS.values():
        model = build(spec, info)
        with pytest.raises(ValueError, match=r"server_round = .*expected an integer >= 1"):
            model.available(bad)
        with pytest.raises(ValueError, match="server_round"):
            model.probabilities(bad)


def test_schedule_shape_and_zero_rounds(info):
    model = build(SPECS["bernoulli"], info)
    assert availability_schedule(model, 0).shape == (0, info.num_clients)
    assert availability_schedule(model, 4).shape == (4, info.num_clients)
    with pytest.raises(ValueError, match="num_rounds = -1, expected an integer >= 0"):
        availability_schedule(model, -1)


def test_adding_clients_keeps_the_draws_of_existing_ones():
    from fedkit.availability import BernoulliAvailability

    small = availability_schedule(BernoulliAvailability(num_clients=5, p=0.4, seed=3), 50)
    large = availability_schedule(BernoulliAvailability(num_clients=9, p=0.4, seed=3), 50)
    assert np.array_equal(large[:, :5], small)
