"""Fixed-point quantisation (headroom, centring, unbiased rounding) and the SecAgg+ graph."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedkit.privacy.graph import communication_graph, graph_seed, key_digest, neighbourhood_size
from fedkit.privacy.quantize import (
    HeadroomError,
    check_headroom,
    dequantize,
    max_scale,
    quantize,
)


def test_headroom_refusal_names_n_range_and_ring():
    check_headroom(1000, 1.0, 2.0**21, 32)
    with pytest.raises(
        HeadroomError, match=r"num_clients=1000 .*clip=1.0 x scale=4194304.0.*Z_2\^32"
    ):
        check_headroom(1000, 1.0, 2.0**22, 32)
    check_headroom(1000, 1.0, 2.0**22, 64)
    with pytest.raises(HeadroomError, match=r"Z_2\^64"):
        check_headroom(1 << 20, 8.0, 2.0**50, 64)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 1.0, 1.0, 32), "num_clients=0 must be a positive integer"),
        ((3, 0.0, 1.0, 32), "clip=0.0 must be positive"),
        ((3, float("nan"), 1.0, 32), "clip=nan must be a finite number"),
        ((3, 1.0, -2.0, 32), "scale=-2.0 must be positive"),
        ((3, 1.0, 1.0, 16), "bits=16 unsupported"),
    ],
)
def test_headroom_validates_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        check_headroom(*args)


@pytest.mark.parametrize(("n", "clip", "bits"), [(1000, 1.0, 32), (7, 3.5, 32), (100, 8.0, 64)])
def test_max_scale_is_largest_power_of_two_that_fits(n, clip, bits):
    scale = max_scale(n, clip, bits)
    check_headroom(n, clip, scale, bits)
    with pytest.raises(HeadroomError):
        check_headroom(n, clip, 2 * scale, bits)


def test_max_scale_refuses_when_nothing_fits():
    with pytest.raises(HeadroomError, match="num_clients=3"):
        max_scale(3, 2.0**31, 32)


@pytest.mark.parametrize("bits", [32, 64])
def test_extreme_sum_decodes_without_wrapping(bits):
    n, clip = 50, 2.0
    scale = max_scale(n, clip, bits)
    rng = np.random.default_rng(0)
    for value in (clip, -clip):
        total = sum(
            quantize(np.full(4, value), clip=clip, scale=scale, bits=bits, rng=rng)
            for _ in range(n)
        )
        assert np.allclose(dequantize(total, scale=scale, bits=bits), n * value, atol=n / scale)


def test_dequantize_centres_twos_complement():
    ring = np.array([2**32 - 4, 4, 0, 2**31 - 1], dtype=np.uint32)
    assert dequantize(ring, scale=4.0, bits=32).tolist() == [-1.0, 1.0, 0.0, (2**31 - 1) / 4]


def test_quantize_clips_does_not_mutate_and_rejects_nan():
    x = np.array([5.0, -5.0, 0.25])
    q = quantize(x, clip=1.0, scale=4.0, bits=32, rng=np.random.default_rng(0))
    assert x.tolist() == [5.0, -5.0, 0.25]
    assert dequantize(q, scale=4.0, bits=32).tolist() == [1.0, -1.0, 0.25]
    with pytest.raises(ValueError, match="NaN or infinity"):
        quantize(np.array([np.nan]), clip=1.0, scale=4.0, bits=32, rng=np.random.default_rng(0))


def test_stochastic_rounding_is_unbiased():
    x = np.full(200_000, 0.3)
    q = quantize(x, clip=1.0, scale=1.0, bits=32, rng=np.random.default_rng(1))
    decoded = dequantize(q, scale=1.0, bits=32)
    assert set(np.unique(decoded)) == {0.0, 1.0}
    assert abs(decoded.mean() - 0.3) < 0.005  # ~5 standard errors


def _keys(ids):
    return {cid: (cid.to_bytes(32, "big"), (cid + 1000).to_bytes(32, "big")) for cid in ids}


def _digests(keys):
    return {cid: key_digest(*pair) for cid, pair in keys.items()}


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 40), k=st.integers(1, 45), data=st.data())
def test_graph_is_regular_symmetric_and_complete_when_k_large(n, k, data):
    ids = data.draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True))
    seed = graph_seed(_digests(_keys(ids)), run_id=0, round_id=1)
    graph = communication_graph(ids, k, seed)
    degree = neighbourhood_size(n, k)
    assert set(graph) == set(ids)
    for cid, neighbours in graph.items():
        assert cid not in neighbours
        assert len(neighbours) == degree
        assert all(cid in graph[v] for v in neighbours)
    if k >= n - 1:
        assert all(len(v) == n - 1 for v in graph.values())
    assert graph == communication_graph(list(reversed(ids)), k, seed)


def test_graph_seed_depends_on_every_key_and_round():
    keys = _keys(range(10))
    seed = graph_seed(_digests(keys), run_id=0, round_id=1)
    assert seed == graph_seed(dict(reversed(_digests(keys).items())), run_id=0, round_id=1)
    assert seed != graph_seed(_digests(keys), run_id=0, round_id=2)
    for part in (0, 1):  # either key of any client
        changed = dict(keys)
        changed[3] = tuple(bytes(32) if i == part else key for i, key in enumerate(keys[3]))
        assert seed != graph_seed(_digests(changed), run_id=0, round_id=1)
    seeds = [graph_seed(_digests(keys), run_id=0, round_id=r) for r in range(20)]
    graphs = {tuple(sorted(communication_graph(range(30), 4, s)[0])) for s in seeds}
    assert len(graphs) > 1  # the labelling follows the seed


def test_graph_rejects_bad_arguments():
    with pytest.raises(ValueError, match="distinct"):
        communication_graph([1, 1, 2], 2, bytes(32))
    with pytest.raises(ValueError, match="num_neighbours=0"):
        communication_graph([1, 2, 3], 0, bytes(32))
    with pytest.raises(ValueError, match="seed must be 32 bytes"):
        communication_graph([1, 2, 3], 2, bytes(3))
