"""Submodel-aware secure aggregation: per-row sums and counts, dropouts, masking, checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fedkit.privacy.graph import neighbourhood_size
from fedkit.privacy.quantize import quantize
from fedkit.privacy.secagg import MaskedInput, SecAggAbort, SecAggConfig, Stage
from fedkit.privacy.submodel import (
    SubmodelSecAggConfig,
    SubmodelUpdate,
    row_average,
    run_submodel_secagg,
)

# the stages of an instance without optional stages
STAGES = list(SecAggConfig(num_clients=2, vector_length=1, threshold=2).stages)
CLIP = 1.0
MAX_WEIGHT = 64.0  # a power of two: integer weights then travel exactly


def _config(**fields):
    # the row floor off: these tests check the mask arithmetic over every survivor's block
    # (the self mask then covers the blocks, as before the floor); the floor itself, its
    # per-row masks and what it withholds are tested in tests/submodel/test_row_crowds.py
    base = {
        "min_row_holders": 1,
        "num_clients": 4,
        "num_rows": 6,
        "row_width": 2,
        "vector_length": 2,
        "threshold": 3,
        "clip": CLIP,
        "max_weight": MAX_WEIGHT,
    }
    return SubmodelSecAggConfig(**{**base, **fields})


def _updates(ids, num_rows, width, dense_length, seed, density=0.5):
    """Random S'' sets (possibly empty), 0/1 counts, values beyond the clip, integer weights."""
    rng = np.random.default_rng(seed)
    out = {}
    for cid in ids:
        rows = np.flatnonzero(rng.random(num_rows) < density)
        out[cid] = SubmodelUpdate(
            rows=rows,
            row_values=rng.uniform(-1.5 * CLIP, 1.5 * CLIP, (rows.size, width)),
            row_counts=rng.integers(0, 2, rows.size),
            dense=rng.uniform(-1.5 * CLIP, 1.5 * CLIP, dense_length),
            weight=float(rng.integers(0, int(MAX_WEIGHT) + 1)),
        )
    return out


def _expected_ring(updates, config, survivors, seed):
    """The survivors' quantised layouts scattered by row id, drawn as run_submodel_secagg does.

    An independent spelling of the layout: per row of S''_u (increasing id) the block
    ``[clip(values) * count, count]``, then ``[clip(dense) * f, f]`` with f = n_u / max_weight.
    """
    ids = sorted(updates)
    children = dict(zip(ids, np.random.default_rng(seed).spawn(len(ids)), strict=True))
    dtype = np.dtype(f"<u{config.bits // 8}")
    table = np.zeros((config.num_rows, config.row_width + 1), dtype=dtype)
    dense = np.zeros(config.vector_length + 1, dtype=dtype)
    for cid in survivors:
        u = updates[cid]
        fraction = u.weight / config.max_weight
        plain = []
        for values, count in zip(u.row_values, u.row_counts, strict=True):
            plain.extend(np.clip(values, -config.clip, config.clip) * count)
            plain.append(0.0)
        plain.extend(np.clip(u.dense, -config.clip, config.clip) * fraction)
        plain.append(fraction)
        ring = quantize(
            np.array(plain),
            clip=config.element_bound,
            scale=config.resolved_scale,
            bits=config.bits,
            rng=children[cid],
        )
        width = config.row_width + 1
        for i, row in enumerate(u.rows):
            block = ring[i * width : (i + 1) * width].copy()
            block[-1] = u.row_counts[i]
            table[row] += block
        dense += ring[u.rows.size * width :]
    return table, dense


def _plaintext(updates, config, survivors):
    """Float reference: per-row sums of count * clip(values), count sums, dense sum, weight."""
    sums = np.zeros((config.num_rows, config.row_width))
    counts = np.zeros(config.num_rows, dtype=np.int64)
    dense = np.zeros(config.vector_length)
    for cid in survivors:
        u = updates[cid]
        clipped = np.clip(u.row_values, -config.clip, config.clip) * u.row_counts[:, None]
        np.add.at(sums, u.rows, clipped)
        np.add.at(counts, u.rows, u.row_counts)
        dense += np.clip(u.dense, -config.clip, config.clip) * u.weight
    return sums, counts, dense, sum(updates[c].weight for c in survivors)


def _check(updates, config, seed, result):
    survivors = result.survivors
    table, dense = _expected_ring(updates, config, survivors, seed)
    assert np.array_equal(result.ring_rows, table)  # every mask cancelled or was removed
    assert np.array_equal(result.ring_dense, dense)
    sums, counts, dense_sum, weight = _plaintext(updates, config, survivors)
    step = 1.0 / config.resolved_scale
    assert np.array_equal(result.row_counts, counts)
    assert np.allclose(result.row_sums, sums, rtol=0, atol=len(survivors) * step + 1e-12)
    assert np.allclose(
        result.dense_sum, dense_sum, rtol=0, atol=len(survivors) * MAX_WEIGHT * step + 1e-9
    )
    assert result.total_weight == weight  # exact: integer weights, power-of-two max_weight
    reference = np.zeros_like(sums)
    used = counts > 0
    reference[used] = sums[used] / counts[used, None]
    assert np.allclose(result.row_mean, reference, rtol=0, atol=len(survivors) * step + 1e-12)
    assert not result.row_sums[~used].any()  # rows nobody truly used: exactly zero


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(3, 8),
    num_rows=st.integers(1, 12),
    width=st.integers(1, 3),
    dense_length=st.integers(1, 3),
    bits=st.sampled_from([32, 64]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_row_sums_counts_and_dense_exact_or_abort_with_dropouts(
    n, num_rows, width, dense_length, bits, seed, data
):
    """Complete graph, dropouts at every stage: exact ring sums iff every stage keeps >= t."""
    t = data.draw(st.integers(2, n), label="threshold")
    ids = list(range(10, 10 + n))
    dropouts = {
        stage: set(data.draw(st.lists(st.sampled_from(ids), max_size=n // 2), label=stage.value))
        for stage in STAGES
    }
    config = _config(
        num_clients=n,
        num_rows=num_rows,
        row_width=width,
        vector_length=dense_length,
        threshold=t,
        bits=bits,
        round_id=4,
        run_id=9,
    )
    density = data.draw(st.sampled_from([0.2, 0.6, 1.0]), label="density")
    updates = _updates(ids, num_rows, width, dense_length, seed, density)
    alive, ok = set(ids), True
    for stage in STAGES:
        alive -= dropouts[stage]
        ok = ok and len(alive) >= t
    event("abort" if not ok else "sum")
    rng = np.random.default_rng(seed)
    if not ok:
        with pytest.raises(SecAggAbort, match=r"below threshold t=\d+"):
            run_submodel_secagg(updates, config, dropouts, rng=rng)
        return
    result, report = run_submodel_secagg(updates, config, dropouts, rng=rng)
    assert report.rejected == []
    survivors = set(ids) - dropouts[Stage.ADVERTISE_KEYS] - dropouts[Stage.SHARE_KEYS]
    survivors -= dropouts[Stage.MASKED_INPUT]
    assert set(result.survivors) == survivors
    event("dropped after sharing keys" if result.dropped else "no key recovery")
    _check(updates, config, seed, result)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(4, 8),
    num_rows=st.integers(1, 10),
    width=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_dropouts_after_sharing_keys_are_unmasked_row_by_row(n, num_rows, width, seed, data):
    """Clients that shared keys but sent no masked input: their streams are removed per row."""
    t = data.draw(st.integers(2, n - 1), label="threshold")
    ids = list(range(n))
    late = data.draw(
        st.lists(st.sampled_from(ids), min_size=1, max_size=n - t, unique=True), label="late"
    )
    rest = [c for c in ids if c not in late]
    at_unmask = data.draw(
        st.lists(st.sampled_from(rest), max_size=len(rest) - t, unique=True), label="unmask"
    )
    config = _config(
        num_clients=n, num_rows=num_rows, row_width=width, vector_length=1, threshold=t
    )
    updates = _updates(ids, num_rows, width, 1, seed, density=0.7)
    dropouts = {Stage.MASKED_INPUT: set(late), Stage.UNMASK: set(at_unmask)}
    result, report = run_submodel_secagg(updates, config, dropouts, rng=np.random.default_rng(seed))
    assert report.rejected == []
    assert result.dropped == tuple(sorted(late))
    _check(updates, config, seed, result)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(5, 10),
    k=st.integers(2, 4),
    num_rows=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_k_regular_graph_with_tolerable_dropouts(n, k, num_rows, seed, data):
    """SecAgg+ graph: at most degree + 1 - t dropouts in total never break a round."""
    degree = neighbourhood_size(n, k)
    t = data.draw(st.integers(2, degree + 1), label="threshold")
    ids = list(range(n))
    victims = data.draw(
        st.lists(st.sampled_from(ids), max_size=degree + 1 - t, unique=True), label="victims"
    )
    dropouts = {stage: set() for stage in STAGES}
    for cid in victims:
        dropouts[data.draw(st.sampled_from(STAGES), label=f"stage of {cid}")].add(cid)
    config = _config(num_clients=n, num_rows=num_rows, threshold=t, num_neighbours=k)
    updates = _updates(ids, num_rows, 2, 2, seed)
    result, report = run_submodel_secagg(updates, config, dropouts, rng=np.random.default_rng(seed))
    assert report.rejected == []
    _check(updates, config, seed, result)


def _fixed_updates():
    """Row 0: used by 0 and 1; row 1: in S'' of 0 and 2, used by nobody; row 2: used by 2 only;
    row 3: in nobody's S''; row 4: used by 1 and 3, in S'' of 2 (fake); row 5: in 3's only."""
    spec = {
        0: ([0, 1], [1, 0]),
        1: ([0, 4], [1, 1]),
        2: ([1, 2, 4], [0, 1, 0]),
        3: ([4, 5], [1, 1]),
    }
    return {
        cid: SubmodelUpdate(
            rows=np.array(rows),
            row_values=np.full((len(rows), 2), 0.25 * (cid + 1)),
            row_counts=np.array(counts),
            dense=np.array([0.5, -0.5]),
            weight=float(8 * (cid + 1)),
        )
        for cid, (rows, counts) in spec.items()
    }


def test_unused_rows_get_count_zero_and_stay_unchanged_by_row_average():
    config = _config()
    updates = _fixed_updates()
    result, _ = run_submodel_secagg(updates, config, rng=np.random.default_rng(1))
    assert result.row_counts.tolist() == [2, 0, 1, 0, 2, 1]
    # row 0: (0.25 + 0.5) / 2; row 2: 0.75; row 4: (0.5 + 1.0) / 2; row 5: 1.0
    expected = np.array([0.375, 0.0, 0.75, 0.0, 0.75, 1.0])
    assert np.allclose(result.row_mean[:, 0], expected, atol=4 / config.resolved_scale)
    table = np.arange(12.0).reshape(6, 2)
    updated = table + row_average(result.row_sums, result.row_counts)
    assert np.array_equal(updated[[1, 3]], table[[1, 3]])  # fake-only row, row in no S''
    assert not np.array_equal(updated[[0, 2, 4, 5]], table[[0, 2, 4, 5]])
    assert result.total_weight == 80.0
    assert np.allclose(result.dense_mean, [0.5, -0.5], atol=1e-6)


def test_row_average_hand_derived_and_validation():
    sums = np.array([[3.0, -6.0], [0.0, 0.0], [1.0, 1.0]])
    averaged = row_average(sums, np.array([3, 0, 4]))
    assert averaged.tolist() == [[1.0, -2.0], [0.0, 0.0], [0.25, 0.25]]
    assert row_average(np.array([2.0, 5.0]), np.array([2, 0])).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="one count per row"):
        row_average(sums, np.array([1, 2]))
    with pytest.raises(ValueError, match="sum_counts has dtype float64, expected integers"):
        row_average(sums, np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="negative entry -1"):
        row_average(sums, np.array([1, -1, 3]))
    assert sums.tolist() == [[3.0, -6.0], [0.0, 0.0], [1.0, 1.0]]  # input untouched


@pytest.mark.parametrize("stage", STAGES)
def test_abort_below_threshold_at_every_stage(stage):
    config = _config()
    with pytest.raises(SecAggAbort, match=r"below threshold t=3"):
        run_submodel_secagg(_fixed_updates(), config, {stage: {0, 1}})


def _masked_bytes_with(change_fn):
    def tamper(stage, direction, cid, data):
        if stage is Stage.MASKED_INPUT and direction == "up" and cid == 1:
            message = MaskedInput.from_bytes(data)
            return MaskedInput(
                message.run_id, message.round_id, cid, change_fn(message.masked)
            ).to_bytes()
        return data

    return tamper


@pytest.mark.parametrize(
    "change_fn",
    [lambda m: m[:-1], lambda m: np.append(m, m[:3]), lambda m: m.astype(np.uint64)],
    ids=["short", "long", "wrong-dtype"],
)
def test_wrong_length_masked_vector_rejected_and_honest_sum_exact(change_fn):
    config = _config(num_clients=5)
    updates = _fixed_updates()
    updates[4] = SubmodelUpdate(np.array([0, 3]), np.ones((2, 2)), np.array([1, 1]), np.ones(2))
    seed = 5
    result, report = run_submodel_secagg(
        updates, config, rng=np.random.default_rng(seed), tamper_fn=_masked_bytes_with(change_fn)
    )
    [(stage, cid, message)] = report.rejected
    assert (stage, cid) == (Stage.MASKED_INPUT, 1)
    assert "masked vector from client 1 has shape" in message
    assert "expected (9,)" in message and "2 rows x (row_width 2 + 1 count)" in message
    assert result.dropped == (1,)
    _check(updates, config, seed, result)


def test_masked_vector_is_not_its_plaintext():
    """Capture what client 0 uploads: its block of row 0 (shared with client 1) is masked."""
    config = _config()
    updates = _fixed_updates()
    seen = {}

    def record(stage, direction, cid, data):
        if stage is Stage.MASKED_INPUT and direction == "up":
            seen[cid] = MaskedInput.from_bytes(data).masked.copy()
        return data

    seed = 2
    result, _ = run_submodel_secagg(
        updates, config, rng=np.random.default_rng(seed), tamper_fn=record
    )
    # client 0's plaintext layout: its expected ring contribution, row 0 then row 1, then tail
    alone_table, alone_dense = _expected_ring(updates, config, (0,), seed)
    plain = np.concatenate([alone_table[0], alone_table[1], alone_dense])
    masked = seen[0]
    assert masked.shape == plain.shape == (config.layout_length(2),)
    assert not np.array_equal(masked[:3], plain[:3])  # row 0 block, values and count
    assert masked[2] != 1  # the count of row 0 does not travel in clear
    assert (masked != plain).mean() > 0.9
    # the sum over everyone is exact, so the masks cancelled
    _check(updates, config, seed, result)
