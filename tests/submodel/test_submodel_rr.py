"""Double randomized response over the union: inclusion rates P5/P6, the permanent memo."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from fedkit.submodel import (
    PRESETS,
    DoubleRRParams,
    PermanentMemo,
    expected_perturbed_size,
    instantaneous_answer,
    permanent_answer,
    perturb,
    succinct_set,
)

ASYMMETRIC = DoubleRRParams(p1=0.9, p2=0.3, p3=0.8, p4=0.1)


def _within(count: int, trials: int, p: float, num_se: float = 4.0) -> bool:
    return abs(count / trials - p) <= num_se * math.sqrt(p * (1 - p) / trials)


@pytest.mark.parametrize("params", [PRESETS["cpp3"], ASYMMETRIC], ids=["cpp3", "asymmetric"])
def test_inclusion_frequencies_match_p5_and_p6(params):
    rng = np.random.default_rng(11)
    union = np.arange(5_000) * 7 + 3
    real = union[rng.choice(union.size, 1_000, replace=False)]
    num_clients = 40  # fresh clients: independent permanent answers
    hits_in = hits_out = 0
    sizes = []
    for _ in range(num_clients):
        reported, _ = perturb(real, union, PermanentMemo(), params, rng)
        assert np.isin(reported, union).all() and np.all(np.diff(reported) > 0)
        inside = np.isin(reported, real)
        hits_in += int(inside.sum())
        hits_out += int((~inside).sum())
        sizes.append(reported.size)
    num_in, num_out = num_clients * real.size, num_clients * (union.size - real.size)
    assert _within(hits_in, num_in, params.p5), hits_in / num_in
    assert _within(hits_out, num_out, params.p6), hits_out / num_out
    mean = expected_perturbed_size(real.size, union.size, params.p5, params.p6)
    variance = real.size * params.p5 * (1 - params.p5) + (union.size - real.size) * params.p6 * (
        1 - params.p6)
    assert abs(np.mean(sizes) - mean) <= 4 * math.sqrt(variance / num_clients)


def test_permanent_answer_frequencies_and_instantaneous_given_memo():
    rng = np.random.default_rng(12)
    union = np.arange(20_000)
    real = np.arange(0, 20_000, 4)
    permanent, memo = permanent_answer(real, union, PermanentMemo(), ASYMMETRIC, rng)
    in_real = np.isin(permanent, real)
    assert _within(int(in_real.sum()), real.size, ASYMMETRIC.p1)
    assert _within(int((~in_real).sum()), union.size - real.size, ASYMMETRIC.p2)
    # with the memo fixed, each round includes j w.p. p3 if j in S', p4 otherwise
    rounds = 20
    counts = np.zeros(union.size, dtype=np.int64)
    for _ in range(rounds):
        reported, memo_after = perturb(real, union, memo, ASYMMETRIC, rng)
        counts[reported] += 1
        assert memo_after == memo
    in_permanent = np.isin(union, memo.included)
    assert _within(int(counts[in_permanent].sum()), rounds * int(in_permanent.sum()), 0.8)
    assert _within(int(counts[~in_permanent].sum()), rounds * int((~in_permanent).sum()), 0.1)


def test_memo_is_stable_when_the_union_grows():
    rng = np.random.default_rng(13)
    real = np.array([1, 5, 9, 30, 31])
    first, memo1 = permanent_answer(real, np.arange(20), PermanentMemo(), PRESETS["cpp4"], rng)
    np.testing.assert_array_equal(memo1.seen, np.arange(20))
    second, memo2 = permanent_answer(real, np.arange(10, 40), memo1, PRESETS["cpp4"], rng)
    np.testing.assert_array_equal(memo2.seen, np.arange(40))
    # old answers unchanged, new items answered once, report restricted to the union
    np.testing.assert_array_equal(memo2.included[memo2.included < 20], memo1.included)
    np.testing.assert_array_equal(first, memo1.included)
    np.testing.assert_array_equal(second, memo2.included[memo2.included >= 10])
    third, memo3 = permanent_answer(real, np.arange(10, 40), memo2, PRESETS["cpp4"], rng)
    np.testing.assert_array_equal(third, second)
    assert memo3 == memo2 and memo3 != memo1


def test_deterministic_given_the_generator():
    args = ([2, 4, 6], np.arange(50), PermanentMemo(), PRESETS["eps1"])
    a, memo_a = perturb(*args, np.random.default_rng(7))
    b, memo_b = perturb(*args, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert memo_a == memo_b


def test_state_dict_round_trip_through_npz():
    rng = np.random.default_rng(14)
    _, memo = perturb(np.arange(0, 100, 3), np.arange(100), PermanentMemo(), PRESETS["cpp2"], rng)
    state = memo.state_dict()
    assert set(state) == {"in", "out"} and all(a.dtype == np.int64 for a in state.values())
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    restored = PermanentMemo.from_state_dict(dict(np.load(buffer)))
    assert restored == memo and restored.seen.size == 100
    state["in"][:] = -1  # the memo never aliases its state arrays
    assert memo.included.min() >= 0


def test_extreme_parameters():
    union, real = np.arange(30), np.array([3, 4, 5])
    no_privacy, _ = perturb(real, union, PermanentMemo(), PRESETS["cpp1"], np.random.default_rng(0))
    np.testing.assert_array_equal(no_privacy, real)
    everything, _ = perturb(real, union, PermanentMemo(), PRESETS["cpp5"], np.random.default_rng(0))
    np.testing.assert_array_equal(everything, union)
    empty, memo = perturb([], [], PermanentMemo(), PRESETS["cpp2"], np.random.default_rng(0))
    assert empty.size == 0 and memo.seen.size == 0


def test_succinct_set_and_instantaneous_answer():
    np.testing.assert_array_equal(succinct_set([5, 1, 3], [3, 4, 5, 6]), [3, 5])
    reported = instantaneous_answer([1, 2], [1, 2, 3], DoubleRRParams.symmetric(1.0),
                                    np.random.default_rng(0))
    np.testing.assert_array_equal(reported, [1, 2])


def test_rejects_invalid_input():
    with pytest.raises(ValueError, match=r"p3=1.5 must be a probability in \[0, 1\]"):
        DoubleRRParams(p1=0.5, p2=0.5, p3=1.5, p4=0.5)
    with pytest.raises(ValueError, match="keep=-0.1"):
        DoubleRRParams.symmetric(-0.1)
    with pytest.raises(ValueError, match="p1=True"):
        DoubleRRParams(p1=True, p2=0.5, p3=0.5, p4=0.5)
    with pytest.raises(ValueError, match="'included' must hold sorted, unique"):
        PermanentMemo(np.array([3, 1]))
    with pytest.raises(ValueError, match="'excluded' must hold sorted, unique, non-negative"):
        PermanentMemo(np.array([1]), np.array([-2, 4]))
    with pytest.raises(ValueError, match=r"'included' has shape \(1, 2\)"):
        PermanentMemo(np.array([[1, 2]]))
    with pytest.raises(ValueError, match="overlap"):
        PermanentMemo(np.array([1, 2]), np.array([2, 3]))
    with pytest.raises(ValueError, match=r"lacks \['out'\]"):
        PermanentMemo.from_state_dict({"in": np.array([1])})
    with pytest.raises(TypeError, match="rng has type RandomState"):
        perturb([1], [1], PermanentMemo(), PRESETS["cpp2"], np.random.RandomState(0))
    with pytest.raises(ValueError, match="union contain the negative value"):
        perturb([1], [-1, 1], PermanentMemo(), PRESETS["cpp2"], np.random.default_rng(0))
    with pytest.raises(ValueError, match="expected ids below 2\\^63"):
        perturb([1], np.array([2**63], dtype=np.uint64), PermanentMemo(), PRESETS["cpp2"],
                np.random.default_rng(0))
