"""End-to-end properties of the secure-aggregation protocol (in-process driver)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fedkit.privacy.graph import neighbourhood_size
from fedkit.privacy.secagg import (
    HeadroomError,
    SecAggAbort,
    SecAggConfig,
    SecAggConfigError,
    Stage,
    run_secagg,
)

# the stages of an instance without optional stages
STAGES = list(SecAggConfig(num_clients=2, vector_length=1, threshold=2).stages)


def _inputs(n, m, seed, clip=2.0):
    rng = np.random.default_rng(seed)
    vectors = {
        cid: rng.uniform(-1.5 * clip, 1.5 * clip, m).astype(np.float32)
        for cid in range(100, 100 + n)
    }
    weights = {cid: float(rng.integers(0, 50)) for cid in vectors}
    return vectors, weights


def _check_exact(reference, vectors, weights, config, seed, total, report):
    expected_ring_sum, plaintext_weighted_sum = reference
    result = report.result
    ring = expected_ring_sum(vectors, weights, config, result.survivors, seed)
    assert np.array_equal(result.ring_sum, ring)
    tolerance = len(result.survivors) * config.max_weight / config.resolved_scale
    plain = plaintext_weighted_sum(vectors, weights, config, result.survivors)
    # quantisation error, plus float64 rounding when the 64-bit ring makes the step tiny
    assert np.allclose(total, plain, rtol=1e-12, atol=tolerance)
    weight = sum(weights[c] for c in result.survivors)
    assert result.total_weight == pytest.approx(weight, rel=1e-12, abs=tolerance)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(3, 12),
    m=st.integers(1, 24),
    bits=st.sampled_from([32, 64]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_full_secagg_sum_exact_or_abort_below_threshold(reference, n, m, bits, seed, data):
    """Complete graph: the round succeeds iff every stage keeps >= t clients."""
    t = data.draw(st.integers(2, n), label="threshold")
    ids = list(range(100, 100 + n))
    dropped, remaining, dropouts = set(), set(ids), {}
    for stage in STAGES:
        out = set(data.draw(st.lists(st.sampled_from(ids), max_size=n // 2), label=stage.value))
        dropouts[stage] = out
        remaining -= out
        dropped |= out
    config = SecAggConfig(
        num_clients=n,
        vector_length=m,
        threshold=t,
        clip=2.0,
        bits=bits,
        max_weight=50.0,
        round_id=7,
    )
    vectors, weights = _inputs(n, m, seed)
    alive, ok = set(ids), True
    for stage in STAGES:
        alive -= dropouts[stage]
        ok = ok and len(alive) >= t
    event("abort" if not ok else "sum")
    if not ok:
        with pytest.raises(SecAggAbort, match=r"below threshold t=\d+"):
            run_secagg(vectors, weights, config, dropouts, rng=np.random.default_rng(seed))
        return
    total, report = run_secagg(vectors, weights, config, dropouts, rng=np.random.default_rng(seed))
    assert report.rejected == []
    expected_survivors = set(ids) - dropouts[Stage.ADVERTISE_KEYS] - dropouts[Stage.SHARE_KEYS]
    expected_survivors -= dropouts[Stage.MASKED_INPUT]
    assert set(report.result.survivors) == expected_survivors
    _check_exact(reference, vectors, weights, config, seed, total, report)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(5, 12),
    k=st.integers(2, 6),
    m=st.integers(1, 16),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_secagg_plus_sum_exact_with_tolerable_dropouts(reference, n, k, m, seed, data):
    """k-regular graph: at most (degree + 1 - t) dropouts in total never break a round."""
    degree = neighbourhood_size(n, k)
    t = data.draw(st.integers(2, degree + 1), label="threshold")
    budget = degree + 1 - t
    ids = list(range(100, 100 + n))
    victims = data.draw(st.lists(st.sampled_from(ids), max_size=budget, unique=True))
    dropouts = {stage: set() for stage in STAGES}
    for cid in victims:
        dropouts[data.draw(st.sampled_from(STAGES), label=f"stage of {cid}")].add(cid)
    config = SecAggConfig(
        num_clients=n,
        vector_length=m,
        threshold=t,
        num_neighbours=k,
        clip=2.0,
        max_weight=50.0,
        round_id=3,
        run_id=11,
    )
    vectors, weights = _inputs(n, m, seed)
    total, report = run_secagg(vectors, weights, config, dropouts, rng=np.random.default_rng(seed))
    assert report.rejected == []
    _check_exact(reference, vectors, weights, config, seed, total, report)


def test_weighted_mean_divides_after_unmasking():
    config = SecAggConfig(num_clients=4, vector_length=2, threshold=3, max_weight=100.0)
    vectors = [
        np.array([1.0, -1.0]),
        np.array([0.0, 0.5]),
        np.array([0.5, 0.5]),
        np.array([-1.0, 1.0]),
    ]
    weights = [10.0, 30.0, 60.0, 0.0]
    total, report = run_secagg(vectors, weights, config, rng=np.random.default_rng(0))
    expected = sum(w * v for w, v in zip(weights, vectors, strict=True))
    assert np.allclose(total, expected, atol=1e-4)
    assert report.result.total_weight == pytest.approx(100.0, abs=1e-4)
    assert np.allclose(report.result.mean, expected / 100.0, atol=1e-6)


def test_zero_total_weight_has_no_mean():
    config = SecAggConfig(num_clients=3, vector_length=1, threshold=2)
    _, report = run_secagg([np.ones(1)] * 3, [0.0] * 3, config)
    with pytest.raises(ZeroDivisionError, match="total weight is 0.0"):
        _ = report.result.mean


@pytest.mark.parametrize("stage", STAGES)
def test_abort_below_threshold_at_every_stage(stage):
    config = SecAggConfig(num_clients=5, vector_length=3, threshold=4)
    with pytest.raises(SecAggAbort, match=r"below threshold t=4"):
        run_secagg([np.zeros(3)] * 5, None, config, {stage: {0, 1}})


def test_abort_when_a_dropped_clients_key_has_too_few_shares():
    # k-regular graph: drop a client's whole neighbourhood at unmask
    config = SecAggConfig(num_clients=10, vector_length=2, threshold=3, num_neighbours=2)
    # with 3 clients missing at unmask, some client's self-mask cannot be recovered for
    # every labelling? not guaranteed; so drop 8 of 10 at unmask (2 responders < t=3).
    with pytest.raises(SecAggAbort, match="below threshold t=3"):
        run_secagg([np.zeros(2)] * 10, None, config, {Stage.UNMASK: set(range(8))})


def test_headroom_refusal_in_config():
    with pytest.raises(HeadroomError, match=r"num_clients=1000 .* Z_2\^32"):
        SecAggConfig(num_clients=1000, vector_length=1, threshold=2, scale=2.0**22)
    config = SecAggConfig(num_clients=1000, vector_length=1, threshold=2, scale=2.0**22, bits=64)
    assert config.resolved_scale == 2.0**22


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_clients": 1}, r"num_clients=1 must be an integer in \[2,"),
        ({"vector_length": 0}, r"vector_length=0 must be an integer in \[1,"),
        ({"threshold": 1}, r"threshold=1 must be an integer in \[2, 5\]"),
        ({"threshold": 6}, r"threshold=6 must be an integer in \[2, 5\]"),
        ({"num_neighbours": 2, "threshold": 4}, r"threshold=4 must be an integer in \[2, 3\]"),
        ({"num_neighbours": 0}, r"num_neighbours=0 must be an integer"),
        ({"clip": 0.0}, "clip=0.0 must be positive"),
        ({"clip": float("inf")}, "clip=inf must be a finite number"),
        ({"bits": 16}, "bits=16 unsupported, expected 32 or 64"),
        ({"max_weight": -1.0}, "max_weight=-1.0 must be positive"),
        ({"scale": 0.0}, "scale=0.0 must be positive"),
        ({"round_id": -1}, r"round_id=-1 must be an integer in \[0,"),
        ({"run_id": 2**64}, r"run_id=18446744073709551616 must be an integer"),
        ({"num_clients": True}, "num_clients=True must be an integer"),
    ],
)
def test_config_validation(fields, message):
    base = {"num_clients": 5, "vector_length": 3, "threshold": 3}
    with pytest.raises(SecAggConfigError, match=message):
        SecAggConfig(**{**base, **fields})


def test_config_is_frozen_keyword_only_and_has_named_constructor():
    config = SecAggConfig.secagg_plus(num_clients=100, vector_length=10)
    assert config.num_neighbours == 14 and config.threshold == 8
    with pytest.raises(TypeError):
        SecAggConfig(5, 3, 3)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        config.threshold = 2  # type: ignore[misc]
