"""Every validation branch of the rules raises a ValueError that names the bad value."""

import numpy as np
import pytest

from fedkit.algorithms.rules import (
    FedAUState,
    FedLaAvgState,
    LatestUpdateTable,
    MifaState,
    apply_update,
    fedau_init,
    fedau_observe,
    fedau_step,
    fedlaavg_init,
    fedvarp_init,
    fedvarp_step,
    fold_deltas,
    fold_latest,
    gradient_sum,
    longest_waiting,
    mifa_init,
    mifa_step,
    table_init,
    table_update,
)

T = table_init(3, 2)
T1 = table_update(T, [0], [[1.0, 1.0]], 4)
DELTA = fedlaavg_init(3, 2, server_table=False)
TABLE = fedlaavg_init(3, 2, server_table=True)
X = np.zeros(2)
ROW = [[1.0, 2.0]]


def _sd(state, **changes):
    out = dict(state.state_dict())
    for key, value in changes.items():
        if value is None:
            del out[key]
        else:
            out[key] = value
    return out


CASES = {
    # counts
    "num_clients=0": (lambda: table_init(0, 2), r"num_clients = 0, expected an integer >= 1"),
    "dim=0": (lambda: fedlaavg_init(3, 0, server_table=False), r"dim = 0, expected"),
    "num_clients float": (lambda: mifa_init(2.0, 2), r"num_clients = 2\.0, expected an integer"),
    "num_clients bool": (lambda: fedvarp_init(True, 2), r"num_clients = True, expected"),
    "cutoff=0": (lambda: fedau_init(3, cutoff=0), r"cutoff = 0, expected an integer >= 1"),
    "k=0": (lambda: longest_waiting(np.array([-1, -1]), [0, 1], 0, seed=0, server_round=1),
            r"k = 0, expected an integer >= 1"),
    # rounds
    "round<0": (lambda: table_update(T, [0], ROW, -1), r"server_round = -1, expected"),
    "round float": (lambda: fold_deltas(DELTA, [0], ROW, 1.5), r"server_round = 1\.5"),
    "round repeated": (lambda: table_update(T1, [0], ROW, 4),
                       r"clients \[0\] were already folded in round \[4\]"),
    "round backwards": (lambda: fold_latest(fold_latest(TABLE, [1], ROW, 5), [1], ROW, 3),
                        r"clients \[1\] were already folded in round \[5\], expected "
                        r"server_round = 3"),
    "fedau round skipped": (lambda: fedau_observe(fedau_init(2, cutoff=2), [], 2),
                            r"server_round = 2, expected 1: fedau_observe must be called once"),
    "fedau round repeated": (
        lambda: fedau_observe(fedau_observe(fedau_init(2, cutoff=2), [], 1), [0], 1),
        r"server_round = 1, expected 2"),
    # learning rates
    "lr=0": (lambda: apply_update(X, DELTA, 0.0), r"lr = 0\.0, expected a finite number > 0"),
    "lr<0": (lambda: mifa_step(X, mifa_init(3, 2), [], np.zeros((0, 2)), -1.0, 1),
             r"lr = -1\.0, expected a finite number > 0"),
    "lr nan": (lambda: gradient_sum(X, X, float("nan")), r"lr = nan, expected"),
    "lr inf": (lambda: apply_update(X, DELTA, float("inf")), r"lr = inf, expected"),
    "lr str": (lambda: apply_update(X, DELTA, "0.1"), r"lr = '0\.1', expected"),
    "server_lr=0 fedau": (lambda: fedau_step(X, fedau_init(3, cutoff=2), [], np.zeros((0, 2)),
                                             0), r"server_lr = 0, expected"),
    "server_lr<0 fedvarp": (lambda: fedvarp_step(X, fedvarp_init(3, 2), [0], ROW, -0.5),
                            r"server_lr = -0\.5, expected"),
    # client ids
    "id not int": (lambda: table_update(T, [1.5], ROW, 1), r"client ids \[1\.5\] are not integers"),
    "id too large": (lambda: fold_deltas(DELTA, [3], ROW, 1),
                     r"client ids \[3\] out of range, expected 0\.\.2 \(num_clients = 3\)"),
    "id negative": (lambda: fedau_step(X, fedau_init(3, cutoff=2), [-1], ROW, 1.0),
                    r"client ids \[-1\] out of range"),
    "ids duplicate": (lambda: table_update(T, [2, 0, 2], np.ones((3, 2)), 1),
                      r"duplicate client ids \[2\] in \[2, 0, 2\]"),
    "available duplicate": (
        lambda: longest_waiting(np.array([-1, -1, 0]), [1, 1], 1, seed=0, server_round=1),
        r"duplicate client ids \[1\]"),
    "available out of range": (
        lambda: longest_waiting(np.array([-1, -1]), [0, 5], 1, seed=0, server_round=1),
        r"client ids \[5\] out of range, expected 0\.\.1"),
    "fedau observe bad id": (lambda: fedau_observe(fedau_init(2, cutoff=2), [2], 1),
                             r"client ids \[2\] out of range"),
    # shapes and values
    "rows shape": (lambda: table_update(T, [0, 1], ROW, 1),
                   r"new_values has shape \(1, 2\), expected \(2, 2\)"),
    "rows dim": (lambda: fold_latest(TABLE, [0], [[1.0, 2.0, 3.0]], 1),
                 r"g_new has shape \(1, 3\), expected \(1, 2\)"),
    "deltas nan": (lambda: fold_deltas(DELTA, [0, 1], [[1.0, 2.0], [np.nan, 0.0]], 1),
                   r"deltas rows \[1\] hold NaN or inf"),
    "fedvarp deltas shape": (lambda: fedvarp_step(X, fedvarp_init(3, 2), [0, 1], ROW, 1.0),
                             r"deltas has shape \(1, 2\), expected \(2, 2\)"),
    "fedau deltas shape": (lambda: fedau_step(X, fedau_init(3, cutoff=2), [0], [[1.0]], 1.0),
                           r"deltas has shape \(1, 1\), expected \(1, 2\)"),
    "x shape": (lambda: apply_update(np.zeros(3), DELTA, 0.1),
                r"x has shape \(3,\), expected \(2,\)"),
    "x inf": (lambda: fedvarp_step(np.array([0.0, np.inf]), fedvarp_init(3, 2), [], [], 1.0),
              r"x holds NaN or inf"),
    "x 2-D fedau": (lambda: fedau_step(np.zeros((1, 2)), fedau_init(3, cutoff=2), [], [], 1.0),
                    r"x has shape \(1, 2\), expected a non-empty 1-D vector"),
    "x_global 2-D": (lambda: gradient_sum(np.zeros((2, 2)), np.zeros((2, 2)), 0.1),
                     r"x_global has shape \(2, 2\), expected a non-empty 1-D vector"),
    "x_local shape": (lambda: gradient_sum(X, np.zeros(3), 0.1),
                      r"x_local has shape \(3,\), expected \(2,\)"),
    "last_round 2-D": (lambda: longest_waiting(np.zeros((2, 2), int), [0], 1, seed=0,
                                               server_round=1),
                       r"last_round has shape \(2, 2\) and dtype int64, expected a non-empty"),
    "last_round float": (lambda: longest_waiting(np.zeros(3), [0], 1, seed=0, server_round=1),
                         r"dtype float64, expected a non-empty 1-D integer array"),
    # modes
    "fold_deltas on table": (lambda: fold_deltas(TABLE, [0], ROW, 1),
                             r"fold_deltas got a server-table state, expected fold_latest"),
    "fold_latest on delta": (lambda: fold_latest(DELTA, [0], ROW, 1),
                             r"fold_latest got a client-delta state, expected fold_deltas"),
    # checkpoints
    "sd missing key": (lambda: FedLaAvgState.from_state_dict(_sd(DELTA, g_bar=None)),
                       r"state dict lacks key 'g_bar'"),
    "sd bad shape": (lambda: FedLaAvgState.from_state_dict(_sd(DELTA, versions=np.zeros(4, int))),
                     r"'versions' has shape \(4,\), expected \(3,\)"),
    "sd float for int": (lambda: FedAUState.from_state_dict(
        _sd(fedau_init(3, cutoff=2), counters=np.zeros(3))),
        r"'counters' has dtype float64, expected"),
    "sd int not int": (lambda: MifaState.from_state_dict(_sd(mifa_init(3, 2), num_steps=1.0)),
                       r"'num_steps' = array\(1\.\), expected an integer"),
    "sd bool not bool": (lambda: MifaState.from_state_dict(_sd(mifa_init(3, 2), wait_for_all=1)),
                         r"'wait_for_all' = array\(1\), expected a bool"),
    "sd empty table": (lambda: LatestUpdateTable.from_state_dict(
        _sd(T, values=np.zeros((0, 2)))), r"'values' has shape \(0, 2\), expected \(N >= 1"),
    "sd seen vs round": (lambda: LatestUpdateTable.from_state_dict(
        _sd(T1, seen=np.zeros(3, bool))), r"'seen' and 'last_round' disagree"),
    "sd table dims": (lambda: FedLaAvgState.from_state_dict(
        _sd(TABLE, g_bar=np.zeros(5))), r"table is \(3, 2\), expected \(3, 5\)"),
    "sd cutoff": (lambda: FedAUState.from_state_dict(_sd(fedau_init(3, cutoff=2), cutoff=0)),
                  r"cutoff = 0, expected an integer >= 1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validation_branch(case):
    call, match = CASES[case]
    with pytest.raises(ValueError, match=match):
        call()


def test_failed_call_leaves_state_unchanged():
    with pytest.raises(ValueError):
        table_update(T1, [1, 0], [[5.0, 5.0], [6.0, 6.0]], 4)  # client 0 already in round 4
    np.testing.assert_array_equal(T1.values, [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(T1.last_round, [4, -1, -1])
