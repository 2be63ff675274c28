"""The server's copy of the key list (``SecAggServer(key_list=...)``): robustness, not trust.

With the consistency round every client refuses a roster holding one entry its key list
does not vouch for, so one bad client stops the round. A server given the operator's public
key list checks each advertised entry against it -- the same statement the clients check --
and leaves a bad client out of the roster; the round completes with the others. Clients
still check every entry against their own list: a server whose list disagrees with theirs
cannot make them accept an entry. Real Ed25519 throughout, nothing mocked.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fedkit.privacy.graph import key_digest
from fedkit.privacy.secagg import (
    KeyList,
    SecAggAbort,
    SecAggClient,
    SecAggConfig,
    SecAggConfigError,
    SecAggProtocolError,
    SecAggServer,
    SigningIdentity,
    SigningKey,
    Stage,
    decode_message,
    run_secagg,
)
from fedkit.privacy.secagg.signing import generate_signing_keys, roster_statement

N, T = 10, 6
RUN, ROUND = 5, 3
HONEST = list(range(N))
BAD = 3  # the bad client of the cases that keep ids 0..9
STRANGER = N  # the client outside the key list: id 10
VECTORS = {cid: np.random.default_rng(50 + cid).uniform(-1, 1, 4) for cid in range(N + 1)}
WEIGHTS = {cid: float(cid % 4 + 1) / 4 for cid in range(N + 1)}


def _config(**changes) -> SecAggConfig:
    fields = dict(num_clients=N + 1, vector_length=4, threshold=T, run_id=RUN,
                  round_id=ROUND, consistency_check=True)
    return SecAggConfig(**{**fields, **changes})


def _honest_keys():
    """Signing keys of clients 0..9 and the operator's list of exactly them."""
    return generate_signing_keys(N, client_ids=HONEST)


def _own_list(key_list: KeyList, cid: int, key: SigningKey) -> KeyList:
    """A bad node's own (misconfigured) list: the operator's, but ``cid`` -> ``key``."""
    return KeyList({**dict(key_list), cid: key.public}, source="its own key list")


def _strip_signature(stage, way, cid, data):
    if stage is Stage.ADVERTISE_KEYS and way == "up" and cid == BAD:
        return dataclasses.replace(decode_message(data), signature=b"").to_bytes()
    return data


def _case(kind: str):
    """``(identities, tamper_fn, the honest ids)`` of a round with one bad client:

    * ``forged`` -- client 3 signs with a key that is not the one the list gives it (a node
      with the wrong key file, its own list naming that key);
    * ``missing`` -- client 3's advertised keys carry no signature;
    * ``outside`` -- client 10, whom the operator's list does not hold, joins with a key and
      a list of its own.
    """
    keys, key_list = _honest_keys()
    identities = {cid: SigningIdentity(keys[cid], key_list) for cid in HONEST}
    tamper = None
    if kind == "forged":
        other = SigningKey.generate()
        identities[BAD] = SigningIdentity(other, _own_list(key_list, BAD, other))
        return identities, tamper, [c for c in HONEST if c != BAD]
    if kind == "missing":
        return identities, _strip_signature, [c for c in HONEST if c != BAD]
    stranger = SigningKey.generate()
    identities[STRANGER] = SigningIdentity(stranger, _own_list(key_list, STRANGER, stranger))
    return identities, tamper, HONEST


def _ids(kind: str) -> list[int]:
    return [*HONEST, STRANGER] if kind == "outside" else HONEST


REASONS = {
    "forged": "AdvertiseKeys from client 3 rejected: its key signature does not verify under "
              "the key the server's generated key list lists for it",
    "missing": "AdvertiseKeys from client 3 has no key signature, but this instance runs the "
               "consistency check",
    "outside": "AdvertiseKeys from client 10 rejected: client 10 is not in the server's "
               "generated key list; the round continues without it",
}


@pytest.mark.parametrize("kind", ["forged", "missing", "outside"])
def test_with_a_server_key_list_the_bad_client_is_dropped_and_the_sum_is_exact(
        reference, kind):
    expected_ring_sum, _ = reference
    identities, tamper, honest = _case(kind)
    key_list = identities[0].key_list  # the operator's list: the server holds a copy
    config = _config()
    vectors = {cid: VECTORS[cid] for cid in _ids(kind)}
    total, report = run_secagg(vectors, WEIGHTS, config, rng=np.random.default_rng(9),
                               tamper_fn=tamper, identities=identities, key_list=key_list)
    bad = STRANGER if kind == "outside" else BAD
    assert [(stage, cid) for stage, cid, _ in report.rejected] == [(Stage.ADVERTISE_KEYS, bad)]
    assert REASONS[kind] in report.rejected[0][2]
    assert report.result.survivors == tuple(honest)
    assert np.array_equal(report.result.ring_sum,
                          expected_ring_sum(vectors, WEIGHTS, config, tuple(honest), 9))
    step = config.max_weight / config.resolved_scale  # one quantum per client
    np.testing.assert_allclose(total, sum(WEIGHTS[c] * VECTORS[c] for c in honest), rtol=0,
                               atol=len(honest) * step)


@pytest.mark.parametrize("kind", ["forged", "outside"])
def test_without_a_server_key_list_the_bad_client_stops_the_round(kind):
    identities, tamper, _ = _case(kind)
    vectors = {cid: VECTORS[cid] for cid in _ids(kind)}
    # the server relays the bad entry; every honest client refuses the roster
    with pytest.raises(SecAggAbort, match="aborted at share_keys: 1 clients responded, below "
                                          "threshold t=6"):
        run_secagg(vectors, WEIGHTS, _config(), tamper_fn=tamper, identities=identities)


def test_a_missing_signature_is_refused_with_or_without_the_key_list():
    # the consistency check itself makes the server refuse an unsigned entry
    identities, tamper, honest = _case("missing")
    _, report = run_secagg({c: VECTORS[c] for c in HONEST}, None, _config(), tamper_fn=tamper,
                           identities=identities)
    assert [(s, c) for s, c, _ in report.rejected] == [(Stage.ADVERTISE_KEYS, BAD)]
    assert report.result.survivors == tuple(honest)


def test_the_server_key_list_does_not_change_what_clients_accept():
    # client 3 holds a key the operator never listed; the server's list agrees with client 3,
    # the honest clients' lists do not: the server lets the entry through, the clients refuse
    identities, _, _ = _case("forged")
    server_list = identities[BAD].key_list
    with pytest.raises(SecAggAbort, match="aborted at share_keys: 1 clients responded"):
        run_secagg({c: VECTORS[c] for c in HONEST}, None, _config(), identities=identities,
                   key_list=server_list)
    # step by step: the server accepts every entry, client 0 refuses client 3's
    config = _config()
    clients = {cid: SecAggClient(config, cid, identity=identities[cid]) for cid in HONEST}
    server = SecAggServer(config, client_ids=HONEST, key_list=server_list)
    for c in clients.values():
        server.receive(c.advertise_keys())
    server.broadcast_keys()
    assert server.roster == tuple(HONEST)
    with pytest.raises(SecAggProtocolError, match="the roster entry of client 3 has no valid "
                                                  "signature under its key in the generated "
                                                  "key list"):
        clients[0].share_keys(decode_message(server.keys_for(0).to_bytes()))


def test_the_server_checks_the_statement_the_clients_sign():
    keys, key_list = _honest_keys()
    config = _config(committed_graph=True)
    client = SecAggClient(config, 4, identity=SigningIdentity(keys[4], key_list))
    message = client.advertise_keys()
    statement = roster_statement(config, 4, key_digest(message.enc_public, message.mask_public),
                                 message.commitment)
    assert key_list.verify(4, message.signature, statement)
    SecAggServer(config, key_list=key_list).receive(message)  # accepted
    # the same entry under another client's listed key, or replayed from another round
    for changed in (dataclasses.replace(message, signature=keys[5].sign(statement)),
                    dataclasses.replace(message, commitment=bytes(32))):
        with pytest.raises(SecAggProtocolError, match="client 4 rejected: its key signature "
                                                      "does not verify"):
            SecAggServer(config, key_list=key_list).receive(changed)
    other_round = SecAggClient(_config(committed_graph=True, round_id=ROUND + 1), 4,
                               identity=SigningIdentity(keys[4], key_list)).advertise_keys()
    with pytest.raises(SecAggProtocolError, match="does not verify"):
        SecAggServer(config, key_list=key_list).receive(
            dataclasses.replace(other_round, round_id=ROUND))


def test_a_key_list_without_the_option_is_accepted_and_unused():
    _, key_list = _honest_keys()
    config = _config(consistency_check=False)
    vectors = {cid: VECTORS[cid] for cid in [*HONEST, STRANGER]}  # 10 is not in the list
    total, report = run_secagg(vectors, None, config, key_list=key_list,
                               rng=np.random.default_rng(1))
    assert report.rejected == [] and report.result.survivors == tuple(vectors)
    np.testing.assert_allclose(total, sum(vectors.values()), rtol=0,
                               atol=len(vectors) * config.max_weight / config.resolved_scale)


def test_a_key_list_must_be_a_key_list():
    keys, key_list = _honest_keys()
    with pytest.raises(SecAggConfigError, match="SecAggServer key_list is a dict, expected a "
                                                "KeyList"):
        SecAggServer(_config(), key_list=dict(key_list))
