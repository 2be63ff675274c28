"""Epsilons, presets and the privacy ledger (docs/submodel.md, "Privacy ledger")."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from fedkit.submodel import (
    PRESETS,
    DoubleRRParams,
    PrivacyLedger,
    epsilon_after,
    epsilon_long_term,
    epsilon_round,
    expected_perturbed_size,
    params_for_round_epsilon,
    rr_epsilon,
)


@pytest.mark.parametrize(
    ("name", "p5", "p6", "eps_round", "eps_inf"),
    [
        ("cpp2", 0.8828, 0.1172, 2.019, 2.708),
        ("cpp3", 0.7813, 0.2188, 1.273, 1.946),
        ("cpp4", 0.625, 0.375, 0.511, 1.099),
    ],
)
def test_presets_known_answers(name, p5, p6, eps_round, eps_inf):
    params = PRESETS[name]
    assert params.p5 == pytest.approx(p5, abs=1e-4) and params.p6 == pytest.approx(p6, abs=1e-4)
    assert round(epsilon_round(params), 3) == eps_round
    assert round(epsilon_long_term(params), 3) == eps_inf


def test_closed_forms_of_the_table():
    assert epsilon_round(PRESETS["cpp2"]) == pytest.approx(math.log(226 / 30))
    assert epsilon_long_term(PRESETS["cpp2"]) == pytest.approx(math.log(15))
    assert epsilon_round(PRESETS["cpp3"]) == pytest.approx(math.log(50 / 14))
    assert epsilon_round(PRESETS["cpp4"]) == pytest.approx(math.log(5 / 3))


def test_infinities_and_zeros():
    assert epsilon_round(PRESETS["cpp1"]) == math.inf
    assert epsilon_long_term(PRESETS["cpp1"]) == math.inf
    assert epsilon_round(PRESETS["cpp5"]) == 0.0 and epsilon_long_term(PRESETS["cpp5"]) == 0.0
    assert rr_epsilon(0.3, 0.0) == math.inf  # p2 = 0
    assert rr_epsilon(1.0, 0.7) == math.inf  # 1 - p1 = 0
    assert rr_epsilon(0.4, 0.4) == 0.0  # p1 = p2
    assert rr_epsilon(0.0, 0.0) == 0.0 and rr_epsilon(1.0, 1.0) == 0.0
    assert rr_epsilon(0.2, 0.6) == rr_epsilon(0.6, 0.2)  # both directions
    same = DoubleRRParams(p1=0.9, p2=0.1, p3=0.5, p4=0.5)  # S'' independent of S'
    assert epsilon_round(same) == 0.0 and epsilon_after(same, 10) == 0.0
    assert epsilon_after(PRESETS["cpp1"], 3) == math.inf
    assert epsilon_after(PRESETS["cpp5"], 3) == 0.0
    assert epsilon_after(PRESETS["cpp2"], 0) == 0.0


def test_epsilon_presets():
    assert epsilon_round(PRESETS["eps1"]) == pytest.approx(1.0, abs=1e-12)
    assert epsilon_round(PRESETS["eps2.7"]) == pytest.approx(2.7, abs=1e-12)
    assert PRESETS["eps2"] == PRESETS["cpp2"]
    assert round(epsilon_long_term(PRESETS["eps1"]), 3) == 1.657
    assert round(epsilon_long_term(PRESETS["eps2.7"]), 3) == 3.392
    cpp2 = params_for_round_epsilon(math.log(226 / 30))
    assert cpp2.p1 == pytest.approx(15 / 16) and cpp2.p4 == pytest.approx(1 / 16)
    for epsilon in (0.1, 1.0, 2.0, 5.0):
        assert epsilon_round(params_for_round_epsilon(epsilon)) == pytest.approx(epsilon)


def _brute_force_epsilon(params: DoubleRRParams, num_rounds: int) -> float:
    """Enumerate every output sequence of ``num_rounds`` reports of one item (no zero
    probabilities in the parameters used)."""
    worst = 0.0
    for outputs in itertools.product((0, 1), repeat=num_rounds):
        x = math.prod(params.p3 if o else 1 - params.p3 for o in outputs)
        y = math.prod(params.p4 if o else 1 - params.p4 for o in outputs)
        p_in = params.p1 * x + (1 - params.p1) * y
        p_out = params.p2 * x + (1 - params.p2) * y
        worst = max(worst, abs(math.log(p_in / p_out)))
    return worst


@pytest.mark.parametrize(
    "params",
    [PRESETS["cpp2"], PRESETS["eps1"], DoubleRRParams(p1=0.9, p2=0.3, p3=0.8, p4=0.1)],
    ids=["cpp2", "eps1", "asymmetric"],
)
def test_epsilon_after_is_exact_monotone_and_bounded(params):
    for num_rounds in range(1, 8):
        assert epsilon_after(params, num_rounds) == pytest.approx(
            _brute_force_epsilon(params, num_rounds), rel=1e-9)
    assert epsilon_after(params, 1) == pytest.approx(epsilon_round(params))
    values = [epsilon_after(params, t) for t in range(1, 200, 7)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values))
    assert values[-1] <= epsilon_long_term(params) + 1e-12
    assert epsilon_after(params, 2000) == pytest.approx(epsilon_long_term(params), rel=1e-6)


def test_expected_perturbed_size():
    params = PRESETS["cpp2"]
    assert expected_perturbed_size(100, 1000, params.p5, params.p6) == pytest.approx(
        100 * 0.8828125 + 900 * 0.1171875)
    with pytest.raises(ValueError, match=r"num_real=5 must lie in \[0, num_union=4\]"):
        expected_perturbed_size(5, 4, 0.5, 0.5)


def test_ledger_records_reports_and_round_trips():
    ledger = PrivacyLedger(PRESETS["cpp3"])
    ledger = ledger.record(1, [3, 1]).record(2, [3]).record(5, np.array([3, 9]))
    assert ledger.rounds == {1: (1,), 3: (1, 2, 5), 9: (5,)}
    report = ledger.report(3)
    assert report.rounds == (1, 2, 5) and round(report.epsilon_round, 3) == 1.273
    assert report.epsilon_spent == pytest.approx(epsilon_after(PRESETS["cpp3"], 3))
    assert report.epsilon_round <= report.epsilon_spent <= report.epsilon_long_term
    assert ledger.report(42).epsilon_spent == 0.0 and ledger.report(42).rounds == ()
    assert [r.client_id for r in ledger.reports()] == [1, 3, 9]
    state = ledger.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert PrivacyLedger.from_state_dict(state) == ledger
    assert PrivacyLedger.from_state_dict(PrivacyLedger(PRESETS["cpp2"]).state_dict()).rounds == {}


def test_ledger_is_frozen_and_rejects_bad_input():
    ledger = PrivacyLedger(PRESETS["cpp2"]).record(1, [4])
    with pytest.raises(TypeError):
        ledger.rounds[5] = (1,)  # type: ignore[index]
    with pytest.raises(ValueError, match="client 4 already has round 1 recorded"):
        ledger.record(1, [4])
    with pytest.raises(ValueError, match="server_round=-2 must be a non-negative int"):
        ledger.record(-2, [4])
    state = ledger.state_dict()
    with pytest.raises(ValueError, match=r"lacks \['rounds'\]"):
        PrivacyLedger.from_state_dict({k: v for k, v in state.items() if k != "rounds"})
    with pytest.raises(ValueError, match="1 client ids, 1 round counts summing to 1 and 2 rounds"):
        PrivacyLedger.from_state_dict({**state, "rounds": np.array([1, 2])})
    with pytest.raises(ValueError, match="'params' has 3 values"):
        PrivacyLedger.from_state_dict({**state, "params": np.array([0.5, 0.5, 0.5])})
    with pytest.raises(ValueError, match="num_rounds=-1 must be a non-negative int"):
        epsilon_after(PRESETS["cpp2"], -1)
    with pytest.raises(ValueError, match="epsilon=0.0 must be a positive finite number"):
        params_for_round_epsilon(0.0)
    with pytest.raises(ValueError, match="epsilon=inf"):
        params_for_round_epsilon(math.inf)
