"""A client serialised between stages (as a Flower node's context.state holds it) still works."""

from __future__ import annotations

import numpy as np
import pytest

from fedkit.privacy.secagg import (
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    SecAggStateError,
    decode_message,
)


def _round_with_restores(config: SecAggConfig, vectors: dict[int, np.ndarray]):
    """Run one round where every client is rebuilt from bytes before each stage."""
    server = SecAggServer(config, client_ids=sorted(vectors))
    states = {}
    for cid in vectors:
        client = SecAggClient(config, cid)
        server.receive(decode_message(client.advertise_keys().to_bytes()))
        states[cid] = client.to_state()
    keys = server.broadcast_keys()
    for cid in vectors:
        client = SecAggClient.from_state(config, states[cid])
        server.receive(decode_message(client.share_keys(keys).to_bytes()))
        states[cid] = client.to_state()
    routed = server.route_shares()
    for cid in vectors:
        client = SecAggClient.from_state(config, states[cid])
        server.receive(decode_message(client.masked_input(routed[cid], vectors[cid]).to_bytes()))
        states[cid] = client.to_state()
    request = server.request_unmask()
    for cid in vectors:
        client = SecAggClient.from_state(config, states[cid])
        server.receive(decode_message(client.unmask(request).to_bytes()))
        assert client.stage is None
    return server.aggregate()


def test_restored_clients_give_the_exact_sum():
    rng = np.random.default_rng(0)
    vectors = {cid: rng.uniform(-1, 1, 50) for cid in (3, 7, 11, 19, 23)}
    config = SecAggConfig.secagg_plus(num_clients=5, vector_length=50, num_neighbours=2,
                                      round_id=4, run_id=9)
    result = _round_with_restores(config, vectors)
    assert result.survivors == (3, 7, 11, 19, 23)
    expected = sum(vectors.values())
    assert np.allclose(result.weighted_sum, expected, atol=5 / config.resolved_scale)


def test_state_refuses_changed_parameters_and_garbage():
    config = SecAggConfig(num_clients=3, vector_length=4, threshold=2, round_id=1)
    state = SecAggClient(config, 1).to_state()
    other_round = SecAggConfig(num_clients=3, vector_length=4, threshold=2, round_id=2)
    with pytest.raises(SecAggStateError, match="parameters changed between stages"):
        SecAggClient.from_state(other_round, state)
    with pytest.raises(SecAggStateError, match="unreadable"):
        SecAggClient.from_state(config, b"\x00not json")


def test_restored_client_keeps_its_stage_order():
    config = SecAggConfig(num_clients=3, vector_length=4, threshold=2)
    client = SecAggClient(config, 1)
    client.advertise_keys()
    restored = SecAggClient.from_state(config, client.to_state())
    with pytest.raises(SecAggStateError, match="expects share_keys next|each stage runs once"):
        restored.advertise_keys()
