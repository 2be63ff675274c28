"""Secure sum of vectors already in the ring (private set union inputs): exact mod 2^bits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fedkit.privacy.secagg import (
    MaskedInput,
    SecAggAbort,
    SecAggClient,
    SecAggConfig,
    SecAggProtocolError,
    SecAggServer,
    SecAggStateError,
    Stage,
    run_secagg_ring,
)
from fedkit.submodel import random_valued_filter

# the stages of an instance without optional stages
STAGES = list(SecAggConfig(num_clients=2, vector_length=1, threshold=2).stages)


def _ring_vectors(ids, length, bits, seed):
    rng = np.random.default_rng(seed)
    dtype = np.uint32 if bits == 32 else np.uint64
    return {cid: rng.integers(0, 2**bits, length, dtype=dtype) for cid in ids}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(3, 9),
    m=st.integers(1, 20),
    bits=st.sampled_from([32, 64]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_ring_sum_exact_mod_2_bits_with_dropouts_or_abort(n, m, bits, seed, data):
    """Random ring vectors: the sum over the survivors is exact, whatever stage clients drop at."""
    t = data.draw(st.integers(2, n), label="threshold")
    ids = list(range(20, 20 + n))
    dropouts = {
        stage: set(data.draw(st.lists(st.sampled_from(ids), max_size=n // 2), label=stage.value))
        for stage in STAGES
    }
    config = SecAggConfig(num_clients=n, vector_length=m, threshold=t, bits=bits, round_id=5)
    vectors = _ring_vectors(ids, config.wire_length, bits, seed)
    alive, ok = set(ids), True
    for stage in STAGES:
        alive -= dropouts[stage]
        ok = ok and len(alive) >= t
    event("abort" if not ok else "sum")
    if not ok:
        with pytest.raises(SecAggAbort, match=r"below threshold t=\d+"):
            run_secagg_ring(vectors, config, dropouts)
        return
    total, report = run_secagg_ring(vectors, config, dropouts)
    survivors = set(ids) - dropouts[Stage.ADVERTISE_KEYS] - dropouts[Stage.SHARE_KEYS]
    survivors -= dropouts[Stage.MASKED_INPUT]
    assert report.rejected == []
    assert set(report.result.survivors) == survivors
    expected = [sum(int(vectors[c][i]) for c in survivors) % 2**bits for i in range(m + 1)]
    assert total.dtype == np.dtype(f"<u{bits // 8}")
    assert total.tolist() == expected
    assert np.array_equal(report.result.ring_sum, total)


def test_random_valued_bloom_filters_give_the_union_with_a_dropout():
    """The private set union use: filters summed mod 2^32, one client drops after sharing keys."""
    config = SecAggConfig(num_clients=5, vector_length=64, threshold=3)
    rng = np.random.default_rng(3)
    sets = {cid: rng.choice(1000, size=6, replace=False) for cid in range(5)}
    vectors = {
        cid: np.append(random_valued_filter(ids, 64, 2, rng), np.uint32(1))
        for cid, ids in sets.items()
    }
    total, report = run_secagg_ring(vectors, config, {Stage.MASKED_INPUT: {4}})
    expected = sum(vectors[c].astype(np.uint64) for c in range(4)) % 2**32
    assert np.array_equal(total, expected.astype(np.uint32))
    assert int(total[-1]) == 4  # the last element counted the contributors
    assert report.result.dropped == (4,)


def _clients_at_masked_input(config, ids):
    """Clients and the shares routed to them, ready for the masked-input stage."""
    clients = {cid: SecAggClient(config, cid) for cid in ids}
    server = SecAggServer(config, client_ids=ids)
    for client in clients.values():
        server.receive(client.advertise_keys())
    keys = server.broadcast_keys()
    for client in clients.values():
        server.receive(client.share_keys(keys))
    return clients, server, server.route_shares()


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (np.zeros(3, np.uint32), r"ring vector has shape \(3,\), expected \(4,\)"),
        (np.zeros(4, np.float64), "ring vector has dtype float64, expected an integer dtype"),
        (np.array([0, 1, -1, 0], np.int64), r"elements outside \[0, 2\^32\)"),
        (np.array([0, 1, 2**32, 0], np.int64), r"elements outside \[0, 2\^32\)"),
    ],
)
def test_ring_input_validation(vector, message):
    config = SecAggConfig(num_clients=3, vector_length=3, threshold=2)
    clients, _, shares = _clients_at_masked_input(config, [1, 2, 3])
    with pytest.raises(SecAggProtocolError, match=message):
        clients[1].masked_ring_input(shares[1], vector)
    assert clients[1].stage is None  # a failed check stops the client


def test_ring_input_is_masked_and_not_modified():
    config = SecAggConfig(num_clients=3, vector_length=5, threshold=3)
    clients, server, shares = _clients_at_masked_input(config, [1, 2, 3])
    vectors = {cid: np.arange(6, dtype=np.uint32) * cid for cid in clients}
    copies = {cid: v.copy() for cid, v in vectors.items()}
    for cid, client in clients.items():
        message = client.masked_ring_input(shares[cid], vectors[cid])
        assert isinstance(message, MaskedInput)
        assert not np.array_equal(message.masked, vectors[cid])
        assert np.array_equal(vectors[cid], copies[cid])
        server.receive(MaskedInput.from_bytes(message.to_bytes()))
    request = server.request_unmask()
    for client in clients.values():
        server.receive(client.unmask(request))
    result = server.aggregate()
    assert result.ring_sum.tolist() == (np.arange(6) * 6).tolist()


def test_ring_and_real_inputs_mix_only_as_ring_elements():
    """A real-valued masked input in a ring round is just another ring vector to the server."""
    config = SecAggConfig(num_clients=3, vector_length=2, threshold=3, scale=4.0)
    clients, server, shares = _clients_at_masked_input(config, [1, 2, 3])
    server.receive(clients[1].masked_ring_input(shares[1], np.array([1, 2, 3], np.uint32)))
    server.receive(clients[2].masked_ring_input(shares[2], np.array([4, 5, 6], np.uint32)))
    server.receive(clients[3].masked_input(shares[3], np.array([0.0, -0.5]), weight=1.0))
    request = server.request_unmask()
    for client in clients.values():
        server.receive(client.unmask(request))
    ring = server.aggregate().ring_sum
    # fixed point: 0 -> 0, -0.5 * 4 = -2 (exact, no rounding), weight fraction 1 -> 4
    assert ring.tolist() == [5, (7 - 2) % 2**32, 9 + 4]


def test_neighbourhood_unmask_requests_list_only_neighbours_and_recover_the_exact_sum():
    # SecAgg+ on 12 clients, k = 4: each client gets the alive/dropped lists of itself and its
    # 4 neighbours only (5 ids instead of 12), and the sum with two dropped clients is exact.
    ids = list(range(12))
    config = SecAggConfig.secagg_plus(num_clients=12, vector_length=3, num_neighbours=4)
    clients, server, shares = _clients_at_masked_input(config, ids)
    vectors = _ring_vectors(ids, config.wire_length, 32, seed=9)
    for cid in ids[2:]:  # clients 0 and 1 drop before their masked input
        server.receive(clients[cid].masked_ring_input(shares[cid], vectors[cid]))
    full = server.request_unmask()
    assert full.dropped == (0, 1)
    for cid in ids[2:]:
        request = server.unmask_request_for(cid)
        near = {cid, *shares[cid].ciphertexts}  # itself and the neighbours that sent it shares
        assert set(request.alive) | set(request.dropped) == near and len(near) == 5
        assert set(request.dropped) == near & {0, 1}
        server.receive(clients[cid].unmask(request))
    result = server.aggregate()
    expected = sum(vectors[c].astype(np.uint64) for c in ids[2:]) % 2**32
    assert np.array_equal(result.ring_sum, expected.astype(np.uint32))


def test_neighbourhood_unmask_request_needs_the_unmask_stage_and_a_roster_client():
    config = SecAggConfig(num_clients=3, vector_length=2, threshold=2)
    clients, server, shares = _clients_at_masked_input(config, [1, 2, 3])
    with pytest.raises(SecAggStateError, match="not collecting unmask responses"):
        server.unmask_request_for(1)
    for cid, client in clients.items():
        server.receive(client.masked_ring_input(shares[cid], np.zeros(3, np.uint32)))
    server.request_unmask()
    with pytest.raises(SecAggProtocolError, match="client 9 is not in the roster"):
        server.unmask_request_for(9)
