"""Tampered, replayed, reordered and misrouted messages are rejected with a clear error."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import numpy as np
import pytest

from fedkit.privacy.graph import key_digest
from fedkit.privacy.hazmat import aead, shamir
from fedkit.privacy.secagg import (
    AdvertiseKeys,
    KeysBroadcast,
    MaskedInput,
    SecAggAbort,
    SecAggClient,
    SecAggConfig,
    SecAggProtocolError,
    SecAggServer,
    SecAggStateError,
    ShareKeys,
    SharesBroadcast,
    Stage,
    UnmaskRequest,
    UnmaskResponse,
    decode_message,
    run_secagg,
)

CONFIG = SecAggConfig(num_clients=5, vector_length=4, threshold=3, round_id=2, run_id=9)
VECTORS = {cid: np.full(4, 0.1 * cid) for cid in range(5)}


def _setup(config=CONFIG, ids=range(5)):
    clients = {cid: SecAggClient(config, cid, rng=np.random.default_rng(cid)) for cid in ids}
    server = SecAggServer(config, client_ids=ids)
    return clients, server


def _through_share_keys(config=CONFIG):
    clients, server = _setup(config)
    for c in clients.values():
        server.receive(c.advertise_keys())
    keys = server.broadcast_keys()
    for c in clients.values():
        server.receive(c.share_keys(keys))
    return clients, server, keys, server.route_shares()


def _honest_sum(report, weights=None):
    survivors = report.result.survivors
    return sum(VECTORS[c] * (1.0 if weights is None else weights[c]) for c in survivors)


def _tamper(target_stage, target_client, direction, edit):
    def fn(stage, way, cid, data):
        if stage is target_stage and cid == target_client and way == direction:
            return edit(data)
        return data

    return fn


def test_wrong_length_vector_rejected_by_client_and_server_round_continues():
    clients, server, _, routed = _through_share_keys()
    with pytest.raises(
        SecAggProtocolError, match=r"input vector has shape \(3,\), expected \(4,\)"
    ):
        clients[0].masked_input(routed[0], np.zeros(3))

    def shorten(data):
        msg = decode_message(data)
        return dataclasses.replace(msg, masked=msg.masked[:-1]).to_bytes()

    fn = _tamper(Stage.MASKED_INPUT, 3, "up", shorten)
    total, report = run_secagg(VECTORS, None, CONFIG, tamper_fn=fn)
    assert [(s, c) for s, c, _ in report.rejected] == [(Stage.MASKED_INPUT, 3)]
    assert "has shape (4,)" in report.rejected[0][2] and "expected (5,)" in report.rejected[0][2]
    assert 3 in report.result.dropped
    assert np.allclose(total, _honest_sum(report), atol=1e-6)


def test_replayed_and_reordered_messages_rejected_by_server():
    clients, server = _setup()
    first = clients[0].advertise_keys()
    server.receive(first)
    with pytest.raises(SecAggProtocolError, match="duplicate AdvertiseKeys from client 0"):
        server.receive(first)
    for c in list(clients.values())[1:]:
        server.receive(c.advertise_keys())
    keys = server.broadcast_keys()
    share = clients[1].share_keys(keys)
    with pytest.raises(
        SecAggProtocolError, match="expected ShareKeys during share_keys, got AdvertiseKeys"
    ):
        server.receive(first)
    server.receive(share)
    with pytest.raises(SecAggProtocolError, match="duplicate ShareKeys from client 1"):
        server.receive(share)
    with pytest.raises(SecAggStateError, match="cannot close masked_input: it is in share_keys"):
        server.request_unmask()


def test_stage_message_from_another_round_rejected():
    other = dataclasses.replace(CONFIG, round_id=1)
    stale = SecAggClient(other, 0).advertise_keys()
    _, server = _setup()
    with pytest.raises(SecAggProtocolError, match="for run 9 round 1: expected run 9 round 2"):
        server.receive(stale)
    clients, _, keys, routed = _through_share_keys()
    old = dataclasses.replace(routed[0], round_id=1)
    with pytest.raises(
        SecAggProtocolError, match="client 0 rejected SharesBroadcast for run 9 round 1"
    ):
        clients[0].masked_input(old, np.zeros(4))


def test_client_refuses_replayed_and_out_of_order_stages():
    clients, server, keys, routed = _through_share_keys()
    with pytest.raises(
        SecAggStateError, match="client 0 refused share_keys: it expects masked_input next"
    ):
        clients[0].share_keys(keys)
    fresh = SecAggClient(CONFIG, 7)
    with pytest.raises(SecAggStateError, match="refused masked_input: it expects advertise_keys"):
        fresh.masked_input(routed[0], np.zeros(4))
    fresh.advertise_keys()  # an out-of-order call changes nothing
    with pytest.raises(SecAggProtocolError, match="expected run 9 round 2"):
        fresh.share_keys(dataclasses.replace(keys, round_id=5))
    with pytest.raises(SecAggStateError, match="client 7 stopped after a failed check"):
        fresh.share_keys(keys)  # a failed check stops the client for good


def test_corrupted_ciphertext_rejected_and_honest_sum_still_correct():
    def flip(data):
        msg = decode_message(data)
        boxes = dict(msg.ciphertexts)
        blob = boxes[1]
        boxes[1] = blob[:-1] + bytes([blob[-1] ^ 0x01])
        return dataclasses.replace(msg, ciphertexts=MappingProxyType(boxes)).to_bytes()

    fn = _tamper(Stage.MASKED_INPUT, 4, "down", flip)
    total, report = run_secagg(VECTORS, None, CONFIG, tamper_fn=fn)
    assert [(s, c) for s, c, _ in report.rejected] == [(Stage.MASKED_INPUT, 4)]
    assert "from client 1" in report.rejected[0][2]
    assert "failed AES-GCM authentication" in report.rejected[0][2]
    assert report.result.dropped == (4,)
    assert np.allclose(total, _honest_sum(report), atol=1e-6)


def test_share_encrypted_for_the_wrong_round_rejected():
    clients, _, keys, routed = _through_share_keys()
    sender, receiver = clients[1], clients[0]
    key = sender._share_keys[0]  # noqa: SLF001 - the test forges a sender's ciphertext
    plaintext = bytes(32 + 132)
    wrong_ad = aead.associated_data(run_id=9, round_id=1, sender=1, receiver=0)
    forged = dict(routed[0].ciphertexts)
    forged[1] = aead.encrypt(key, plaintext, associated=wrong_ad)
    message = dataclasses.replace(routed[0], ciphertexts=MappingProxyType(forged))
    with pytest.raises(
        SecAggProtocolError,
        match=r"share ciphertext from client 1 \(run 9, "
        r"round 2\) rejected: .*another round",
    ):
        receiver.masked_input(message, np.zeros(4))
    # right associated data, but the plaintext names round 1
    clients, _, keys, routed = _through_share_keys()
    key = clients[1]._share_keys[0]  # noqa: SLF001
    header = (9).to_bytes(8, "big") + (1).to_bytes(8, "big") + (1).to_bytes(8, "big") + bytes(8)
    right_ad = aead.associated_data(run_id=9, round_id=2, sender=1, receiver=0)
    forged = dict(routed[0].ciphertexts)
    forged[1] = aead.encrypt(key, header + bytes(132), associated=right_ad)
    message = dataclasses.replace(routed[0], ciphertexts=MappingProxyType(forged))
    with pytest.raises(SecAggProtocolError, match="names the wrong round or ids"):
        clients[0].masked_input(message, np.zeros(4))


def test_unknown_client_ids_rejected():
    clients, server = _setup()
    with pytest.raises(SecAggProtocolError, match="AdvertiseKeys from unknown client id 99"):
        server.receive(SecAggClient(CONFIG, 99).advertise_keys())
    clients, server, keys, routed = _through_share_keys()
    intruder = MaskedInput(9, 2, 42, np.zeros(5, np.uint32))
    with pytest.raises(SecAggProtocolError, match="MaskedInput from unknown client id 42"):
        server.receive(intruder)
    for c in clients.values():
        server.receive(c.masked_input(routed[c.client_id], np.zeros(4)))
    request = server.request_unmask()
    bad = dataclasses.replace(request, alive=(*request.alive, 77))
    with pytest.raises(SecAggProtocolError, match=r"unknown client ids \[77\]"):
        clients[0].unmask(bad)


def test_stray_sender_and_misaddressed_shares_rejected():
    clients, _, keys, routed = _through_share_keys()
    with pytest.raises(SecAggProtocolError, match="client 0 received shares addressed to client 1"):
        clients[0].masked_input(routed[1], np.zeros(4))
    stray = dataclasses.replace(routed[1], ciphertexts=MappingProxyType({1: b"x" * 40}))
    with pytest.raises(SecAggProtocolError, match=r"client 1: shares from non-neighbour clients"):
        clients[1].masked_input(stray, np.zeros(4))


def test_client_refuses_overlapping_alive_and_dropped():
    clients, server, keys, routed = _through_share_keys()
    for c in clients.values():
        server.receive(c.masked_input(routed[c.client_id], np.zeros(4)))
    request = server.request_unmask()
    evil = dataclasses.replace(request, dropped=(2,))
    with pytest.raises(
        SecAggProtocolError,
        match=r"clients \[2\] listed both alive and dropped; "
        "refusing to reveal both",
    ):
        clients[0].unmask(evil)
    not_me = UnmaskRequest(9, 2, (0, 2, 3, 4), (1,))
    with pytest.raises(SecAggProtocolError, match="does not list this client as alive"):
        clients[1].unmask(not_me)
    with pytest.raises(SecAggAbort, match=r"only 2 clients alive, below threshold t=3"):
        clients[2].unmask(UnmaskRequest(9, 2, (2, 3), (0, 1, 4)))
    unlisted = UnmaskRequest(9, 2, (0, 2, 3), (1,))
    with pytest.raises(SecAggProtocolError, match=r"clients \[4\] shared keys but are neither"):
        clients[3].unmask(unlisted)


def test_client_checks_roster():
    clients, server = _setup()
    messages = [c.advertise_keys() for c in clients.values()]
    for m in messages:
        server.receive(m)
    keys = server.broadcast_keys()
    altered = dict(keys.public_keys)
    altered[0] = altered[1]
    with pytest.raises(SecAggProtocolError, match="own public keys are missing or altered"):
        clients[0].share_keys(dataclasses.replace(keys, public_keys=MappingProxyType(altered)))
    with pytest.raises(
        SecAggProtocolError,
        match=r"not distinct \(clients 1 and 0\)|"
        r"not distinct \(clients 0 and 1\)",
    ):
        clients[2].share_keys(dataclasses.replace(keys, public_keys=MappingProxyType(altered)))
    small = {cid: keys.public_keys[cid] for cid in (3, 4)}
    with pytest.raises(SecAggAbort, match=r"roster has 2 clients, below threshold t=3"):
        clients[3].share_keys(dataclasses.replace(keys, public_keys=MappingProxyType(small)))


SECAGG_PLUS = SecAggConfig(num_clients=12, vector_length=4, threshold=3, round_id=2, run_id=9,
                           num_neighbours=4)


def _plus_through_advertise():
    clients, server = _setup(SECAGG_PLUS, range(12))
    for c in clients.values():
        server.receive(c.advertise_keys())
    server.broadcast_keys()
    return clients, server


def test_secagg_plus_client_gets_its_neighbours_keys_and_everyone_elses_digest():
    clients, server = _plus_through_advertise()
    vectors = {cid: np.full(4, 0.01 * cid) for cid in range(12)}
    total, report = run_secagg(vectors, None, SECAGG_PLUS)
    np.testing.assert_allclose(total, sum(vectors.values()), atol=1e-6)
    for cid in range(12):
        message = server.keys_for(cid)
        assert len(message.public_keys) == 5 and len(message.digests) == 7  # k = 4, itself
        assert cid in message.public_keys
        # header 22, two counts, 76 bytes per full entry, 28 per digest (12 x 76 in full)
        assert len(message.to_bytes()) == 22 + 4 + 5 * 76 + 4 + 7 * 28
        # and the client finds its graph neighbours among the keys it was given
        share = clients[cid].share_keys(message)
        assert set(share.ciphertexts) == set(message.public_keys) - {cid}
    with pytest.raises(SecAggProtocolError, match="client 99 is not in the roster"):
        server.keys_for(99)


def test_client_refuses_digests_in_place_of_its_neighbours_keys():
    clients, server = _plus_through_advertise()
    message = server.keys_for(0)
    neighbour = min(set(message.public_keys) - {0})
    keys = {c: k for c, k in message.public_keys.items() if c != neighbour}
    # the neighbour's true digest: the graph stays the same, but its keys are missing
    real = dict(message.digests)
    real[neighbour] = key_digest(message.public_keys[neighbour][:32],
                                 message.public_keys[neighbour][32:])
    with pytest.raises(SecAggProtocolError, match=rf"only key digests for its graph neighbours "
                                                  rf"\[{neighbour}\]"):
        clients[0].share_keys(KeysBroadcast(9, 2, MappingProxyType(keys),
                                            MappingProxyType(dict(sorted(real.items())))))


def test_roster_naming_a_client_with_both_keys_and_digest_is_refused():
    clients, server = _plus_through_advertise()
    message = server.keys_for(0)
    other = min(message.digests)
    both = KeysBroadcast(9, 2, MappingProxyType({**message.public_keys,
                                                 other: bytes(64)}), message.digests)
    with pytest.raises(SecAggProtocolError, match=rf"clients \[{other}\] both with keys"):
        KeysBroadcast.from_bytes(both.to_bytes())
    with pytest.raises(SecAggProtocolError, match=rf"clients \[{other}\] both with keys"):
        clients[0].share_keys(both)


def test_corrupted_key_share_detected_by_public_key_check():
    def corrupt(data):
        msg = decode_message(data)
        # holders 0, 1, 2 (x = 1, 2, 3) reconstruct; l_1(0) = 3, so adding 3^-1 to
        # holder 0's share adds exactly 1 to the recovered 32-byte key
        delta = pow(3, -1, shamir.PRIME)
        shares = {
            owner: ((int.from_bytes(blob, "big") + delta) % shamir.PRIME).to_bytes(66, "big")
            for owner, blob in msg.key_shares.items()
        }
        return dataclasses.replace(msg, key_shares=MappingProxyType(shares)).to_bytes()

    fn = _tamper(Stage.UNMASK, 0, "up", corrupt)
    with pytest.raises(SecAggAbort, match="does not match its published public key"):
        run_secagg(VECTORS, None, CONFIG, {Stage.MASKED_INPUT: {4}}, tamper_fn=fn)


def test_server_rejects_incomplete_unmask_response():
    def drop_one(data):
        msg = decode_message(data)
        shares = dict(msg.self_mask_shares)
        shares.pop(max(shares))
        return dataclasses.replace(msg, self_mask_shares=MappingProxyType(shares)).to_bytes()

    fn = _tamper(Stage.UNMASK, 1, "up", drop_one)
    total, report = run_secagg(VECTORS, None, CONFIG, tamper_fn=fn)
    assert "self-mask shares for clients [0, 1, 2, 3]" in report.rejected[0][2]
    assert np.allclose(total, _honest_sum(report), atol=1e-6)  # the others' shares suffice


def test_bad_weight_and_nan_rejected_by_client():
    clients, _, _, routed = _through_share_keys()
    with pytest.raises(SecAggProtocolError, match=r"weight=2.0 must be in \[0, max_weight=1.0\]"):
        clients[0].masked_input(routed[0], np.zeros(4), weight=2.0)
    with pytest.raises(ValueError, match="NaN or infinity"):
        clients[1].masked_input(routed[1], np.array([0.0, np.nan, 0.0, 0.0]))


@pytest.mark.parametrize(
    "message",
    [
        AdvertiseKeys(9, 2, 5, bytes(range(32)), bytes(32)),
        KeysBroadcast(9, 2, MappingProxyType({1: bytes(64), 7: bytes(range(64))})),
        KeysBroadcast(9, 2, MappingProxyType({1: bytes(64)}), MappingProxyType({4: bytes(16)})),
        ShareKeys(9, 2, 3, MappingProxyType({1: b"abc", 4: b""})),
        SharesBroadcast(9, 2, 3, MappingProxyType({0: b"xyz"})),
        MaskedInput(9, 2, 3, np.arange(5, dtype=np.uint32)),
        MaskedInput(9, 2, 3, np.arange(5, dtype=np.uint64) << np.uint64(40)),
        UnmaskRequest(9, 2, (1, 2, 5), (3,)),
        UnmaskResponse(9, 2, 1, MappingProxyType({1: bytes(66)}), MappingProxyType({})),
    ],
)
def test_wire_format_round_trip(message):
    data = message.to_bytes()
    assert data[:5] == b"FKSA\x02"
    decoded = decode_message(data)
    assert type(decoded) is type(message)
    for field in dataclasses.fields(message):
        a, b = getattr(message, field.name), getattr(decoded, field.name)
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b) and a.dtype == b.dtype
        else:
            assert a == b
    with pytest.raises(SecAggProtocolError, match="trailing bytes"):
        type(message).from_bytes(data + b"\x00")
    with pytest.raises(SecAggProtocolError, match="truncated"):
        type(message).from_bytes(data[:-1] if len(data) > 30 else data[:20])


def test_wire_format_refusals():
    data = AdvertiseKeys(9, 2, 5, bytes(32), bytes(32)).to_bytes()
    with pytest.raises(SecAggProtocolError, match="lacks the FKSA magic"):
        AdvertiseKeys.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(SecAggProtocolError, match="wire version 1 unsupported, expected 2"):
        AdvertiseKeys.from_bytes(data[:4] + b"\x01" + data[5:])
    with pytest.raises(
        SecAggProtocolError, match="expected a ShareKeys message, got AdvertiseKeys"
    ):
        ShareKeys.from_bytes(data)
    with pytest.raises(SecAggProtocolError, match="unknown message type 99"):
        decode_message(data[:5] + b"\x63" + data[6:])
    unsorted = UnmaskRequest(9, 2, (1, 2), ()).to_bytes()
    swapped = unsorted[:30] + unsorted[38:46] + unsorted[30:38] + unsorted[46:]
    with pytest.raises(SecAggProtocolError, match="unsorted or duplicate client ids"):
        UnmaskRequest.from_bytes(swapped)


def test_reprs_redact_secrets():
    clients, server, keys, routed = _through_share_keys()
    client = clients[0]
    text = repr(client)
    assert "redacted" in text and client._self_seed.hex()[:8] not in text  # noqa: SLF001
    for c in clients.values():
        server.receive(c.masked_input(routed[c.client_id], np.zeros(4)))
    request = server.request_unmask()
    response = clients[0].unmask(request)
    assert "redacted" in repr(response)
    assert all(blob.hex()[:16] not in repr(response) for blob in response.self_mask_shares.values())
