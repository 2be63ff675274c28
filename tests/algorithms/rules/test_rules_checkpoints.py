"""state_dict() -> from_state_dict() round trips, and resuming continues bit for bit."""

import io

import numpy as np
import pytest

from fedkit.algorithms.rules import (
    FedAUState,
    FedLaAvgState,
    FedVARPState,
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
    longest_waiting,
    mifa_init,
    mifa_step,
    table_init,
    table_update,
)

N, D, ROUNDS = 6, 3, 25


def _through_npz(state_dict):
    """A checkpoint as a real file would hold it (np.savez; scalars become 0-d arrays)."""
    buffer = io.BytesIO()
    np.savez(buffer, **state_dict)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        va, vb = np.asarray(sa[key]), np.asarray(sb[key])
        assert va.dtype == vb.dtype and va.shape == vb.shape, key
        assert va.tobytes() == vb.tobytes(), key


def _fedlaavg(server_table):
    g_old = np.zeros((N, D))  # client-side memory, not part of the server checkpoint

    def step(x, state, r, rng):
        online = np.flatnonzero(rng.random(N) < 0.5).tolist()
        chosen = longest_waiting(state.last_round, online, 2, seed=9, server_round=r)
        g_new = rng.normal(size=(len(chosen), D))
        if server_table:
            state = fold_latest(state, chosen, g_new, r)
        else:
            state = fold_deltas(state, chosen, g_new - g_old[chosen], r)
            g_old[chosen] = g_new
        return apply_update(x, state, 0.1), state

    return fedlaavg_init(N, D, server_table=server_table), step, FedLaAvgState


def _mifa(wait_for_all):
    def step(x, state, r, rng):
        ids = np.flatnonzero(rng.random(N) < 0.4).tolist()
        return mifa_step(x, state, ids, rng.normal(size=(len(ids), D)), 0.1 / r, r)

    return mifa_init(N, D, wait_for_all=wait_for_all), step, MifaState


def _fedau():
    def step(x, state, r, rng):
        ids = np.flatnonzero(rng.random(N) < 0.3).tolist()
        x, state = fedau_step(x, state, ids, rng.normal(size=(len(ids), D)), 0.5)
        return x, fedau_observe(state, ids, r)

    return fedau_init(N, cutoff=4), step, FedAUState


def _fedvarp():
    def step(x, state, r, rng):
        ids = np.flatnonzero(rng.random(N) < 0.3).tolist()
        return fedvarp_step(x, state, ids, rng.normal(size=(len(ids), D)), 0.5)

    return fedvarp_init(N, D), step, FedVARPState


def _table():
    def step(x, state, r, rng):
        ids = np.flatnonzero(rng.random(N) < 0.3).tolist()
        state = table_update(state, ids, rng.normal(size=(len(ids), D)), r)
        return x + state.mean, state

    return table_init(N, D), step, LatestUpdateTable


RULES = {
    "fedlaavg-client-delta": lambda: _fedlaavg(False),
    "fedlaavg-server-table": lambda: _fedlaavg(True),
    "mifa-wait": lambda: _mifa(True),
    "mifa-no-wait": lambda: _mifa(False),
    "fedau": _fedau,
    "fedvarp": _fedvarp,
    "latest-table": _table,
}


def _run(rule, restore_at=None):
    state, step, cls = RULES[rule]()
    x = np.linspace(-1.0, 1.0, D)
    for r in range(1, ROUNDS + 1):
        if r == restore_at:
            saved = state.state_dict()
            restored = cls.from_state_dict(_through_npz(saved))
            assert_same_state(restored, state)
            assert_same_state(cls.from_state_dict(saved), state)
            state = restored
        x, state = step(x, state, r, np.random.default_rng([r, 17]))
    return x, state


@pytest.mark.parametrize("rule", sorted(RULES))
def test_resume_from_checkpoint_gives_the_identical_trajectory(rule):
    x_ref, state_ref = _run(rule)
    for restore_at in (1, 2, 11, ROUNDS):
        x, state = _run(rule, restore_at)
        assert x.tobytes() == x_ref.tobytes()
        assert_same_state(state, state_ref)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_restored_state_is_read_only(rule):
    _, state = _run(rule)
    restored = type(state).from_state_dict(state.state_dict())
    arrays = [v for v in vars(restored).values() if isinstance(v, np.ndarray)]
    own = restored if isinstance(restored, LatestUpdateTable) else None
    table = getattr(restored, "table", own)
    if table is not None:
        arrays += [table.mean, table.seen, table.last_round, *table.rows]
    assert arrays and not any(a.flags.writeable for a in arrays)
