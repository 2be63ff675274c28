"""Consistency round (issue 18, attack 1 "split views"): an active server shows clients
different views of who dropped, unless keys are signed and every revealing client checks
that enough clients signed the very survivors set it signed
(``SecAggConfig(consistency_check=True)``; Bonawitz et al., CCS 2017, §4, Fig. 4).

The adversary is written here, on the protocol objects; no crypto is mocked. Complete
graph, n = 10, t = 6, victim 0:

* the server routes the victim only the shares of clients 1-5 (t - 1 senders: the victim
  accepts, 5 + itself = t), so the victim masks against those five only;
* after the masked inputs it gives each client its own alive/dropped lists, each passing
  that client's checks (at least t alive, itself alive, every sender listed): all say the
  victim is alive (they reveal shares of its self-mask seed b), and each sender is called
  dropped by at least t others (they reveal shares of that sender's masking key);
* it rebuilds b and the five senders' keys, hence every mask of the victim's vector.

Without the option the semi-honest protocol cannot tell: the attack recovers the victim's
input exactly (the test shows the gap). With it every client aborts before revealing any
share, and no unmask response exists.
"""

from __future__ import annotations

import dataclasses
import json
from types import MappingProxyType

import numpy as np
import pytest
from adversary import strip_masks
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fedkit.privacy.graph import key_digest
from fedkit.privacy.hazmat import shamir
from fedkit.privacy.hazmat.keys import KEY_SIZE, KeyPair
from fedkit.privacy.secagg import (
    AdvertiseKeys,
    ClientPolicy,
    ConsistencyRequest,
    ConsistencySignature,
    KeyList,
    KeysBroadcast,
    SecAggAbort,
    SecAggClient,
    SecAggConfig,
    SecAggConfigError,
    SecAggPolicyError,
    SecAggProtocolError,
    SecAggServer,
    SecAggStateError,
    SharesBroadcast,
    SigningIdentity,
    SigningKey,
    Stage,
    UnmaskRequest,
    decode_message,
    run_secagg,
)
from fedkit.privacy.secagg.signing import (
    generate_signing_keys,
    roster_statement,
    simulation_signing_keys,
    survivors_statement,
    write_signing_keys,
)

N, T = 10, 6
RUN, ROUND = 5, 3
VICTIM = 0
SENDERS = (1, 2, 3, 4, 5)  # the only clients whose shares reach the victim
OTHERS = (6, 7, 8, 9)
IDS = list(range(N))
VECTORS = {cid: np.random.default_rng(cid).uniform(-1, 1, 8) for cid in IDS}


def _config(consistency: bool, **changes) -> SecAggConfig:
    fields = dict(num_clients=N, vector_length=8, threshold=T, run_id=RUN, round_id=ROUND,
                  consistency_check=consistency)
    return SecAggConfig(**{**fields, **changes})


def _identities(ids=IDS) -> dict[int, SigningIdentity]:
    keys, key_list = generate_signing_keys(len(ids), client_ids=ids)
    return {cid: SigningIdentity(keys[cid], key_list) for cid in ids}


def _clients(config, identities=None, ids=IDS):
    identities = identities or (_identities(ids) if config.consistency_check else {})
    return {cid: SecAggClient(config, cid, rng=np.random.default_rng(cid),
                              identity=identities.get(cid)) for cid in ids}


def _to_masked_input(config, ids=IDS, *, identities=None, vectors=None, victim_senders=None):
    """A round up to the masked inputs, which the server receives, every message through its
    bytes. ``victim_senders(graph) -> ids``: the server routes the victim only those
    clients' shares. Returns ``(clients, server, roster, masked vectors, victim senders)``."""
    vectors = vectors or {cid: VECTORS[cid % N] for cid in ids}
    clients = _clients(config, identities, ids)
    server = SecAggServer(config, client_ids=ids)
    for c in clients.values():
        server.receive(decode_message(c.advertise_keys().to_bytes()))
    roster = server.broadcast_keys()
    for cid, c in clients.items():
        server.receive(c.share_keys(decode_message(server.keys_for(cid).to_bytes())))
    routed = dict(server.route_shares())
    senders = None
    if victim_senders is not None:
        senders = tuple(victim_senders(server._graph))  # the server computes the graph too
        routed[VICTIM] = SharesBroadcast(RUN, ROUND, VICTIM, MappingProxyType(
            {s: routed[VICTIM].ciphertexts[s] for s in senders}))
    masked = {}
    for cid, c in clients.items():
        message = c.masked_input(routed[cid], vectors[cid])
        masked[cid] = message.masked
        server.receive(message)
    return clients, server, roster, masked, senders


# -- the split-view attack -------------------------------------------------------------------
def _split_views() -> dict[int, tuple[frozenset[int], frozenset[int]]]:
    """Each client's (alive, dropped): every view has the victim alive and t clients alive,
    and each sender of the victim is dropped in at least t views of holders of its shares."""
    views = {VICTIM: ({VICTIM, *OTHERS, SENDERS[0]}, set(SENDERS[1:]))}
    for j, other in enumerate(OTHERS):  # other j keeps sender j + 1 alive, drops the rest
        views[other] = ({VICTIM, *OTHERS, SENDERS[j]}, set(SENDERS) - {SENDERS[j]})
    for sender in SENDERS:
        views[sender] = ({VICTIM, sender, *OTHERS}, set(SENDERS) - {sender})
    return {cid: (frozenset(a), frozenset(d)) for cid, (a, d) in views.items()}




def _attack(config: SecAggConfig):
    """The malicious server, on real client objects. Returns ``(masked victim vector, the
    roster, unmask responses by client, errors by client)``."""
    clients, _, roster, masked, _ = _to_masked_input(config, victim_senders=lambda g: SENDERS)
    assert clients[VICTIM]._senders == frozenset(SENDERS)  # the victim accepted t - 1 senders
    views = _split_views()
    signatures: dict[int, bytes] = {}
    errors: dict[int, Exception] = {}
    if config.consistency_check:  # the server shows each client its own survivors set
        for cid in IDS:
            request = ConsistencyRequest(RUN, ROUND, cid, tuple(sorted(views[cid][0])))
            try:
                reply = clients[cid].consistency_check(decode_message(request.to_bytes()))
            except (SecAggProtocolError, SecAggAbort) as exc:
                errors[cid] = exc
                continue
            signatures[cid] = reply.signature
    responses = {}
    for cid in IDS:
        if cid in errors:
            continue
        alive, dropped = views[cid]
        # the best it can forward: every signature it has from a member of this view
        forwarded = {s: sig for s, sig in signatures.items() if s in alive}
        request = UnmaskRequest(RUN, ROUND, tuple(sorted(alive)), tuple(sorted(dropped)),
                                MappingProxyType(forwarded))
        try:
            responses[cid] = clients[cid].unmask(decode_message(request.to_bytes()))
        except (SecAggProtocolError, SecAggAbort) as exc:
            errors[cid] = exc
    return masked[VICTIM], roster, responses, errors


def _strip_victim(config, masked, roster, responses, senders=SENDERS) -> np.ndarray:
    """Rebuild the victim's self-mask seed and its senders' masking keys from t shares each,
    then remove every mask from its vector."""
    keys = {cid: (blob[:KEY_SIZE], blob[KEY_SIZE:]) for cid, blob in roster.public_keys.items()}
    position = {cid: i + 1 for i, cid in enumerate(sorted(keys))}  # share x-coordinates
    t = config.threshold

    def secret(owner: int, kind: str) -> bytes:
        shares = [shamir.Share(position[h], int.from_bytes(
            (r.self_mask_shares if kind == "b" else r.key_shares)[owner], "big"))
            for h, r in sorted(responses.items())
            if owner in (r.self_mask_shares if kind == "b" else r.key_shares)]
        assert len(shares) >= t, (owner, kind, len(shares))
        return shamir.combine(shares[:t], t)

    secrets = []
    for sender in senders:
        pair = KeyPair.from_private_bytes(secret(sender, "key"))
        assert pair.public == keys[sender][1]  # the sender's real masking key
        secrets.append((sender, pair.exchange(keys[VICTIM][1])))
    return strip_masks(config, masked, VICTIM, secret(VICTIM, "b"), secrets)


def test_without_the_option_split_views_expose_the_victims_input():
    # the semi-honest protocol cannot stop this: every client's own checks pass
    config = _config(False)
    masked, roster, responses, errors = _attack(config)
    assert errors == {} and sorted(responses) == IDS  # nobody noticed anything
    assert all(VICTIM in r.self_mask_shares for r in responses.values())
    recovered = _strip_victim(config, masked, roster, responses)
    step = 1 / config.resolved_scale
    np.testing.assert_allclose(recovered[:-1], VECTORS[VICTIM], rtol=0, atol=2 * step)
    assert recovered[-1] == pytest.approx(1.0, abs=2 * step)  # and its weight


def test_with_the_option_every_client_aborts_before_revealing_a_share():
    masked, roster, responses, errors = _attack(_config(True))
    assert responses == {}  # no unmask response at all, so none with the victim's shares
    assert sorted(errors) == IDS
    # the victim already refuses the survivors set: clients 6-9 never shared keys with it
    assert isinstance(errors[VICTIM], SecAggProtocolError)
    assert "lists neighbours [6, 7, 8, 9] that never shared keys" in str(errors[VICTIM])
    for cid in IDS[1:]:  # the others signed a set that at most one other client signed
        assert isinstance(errors[cid], SecAggAbort), cid
        assert "valid consistency signatures on the survivors set it signed" in str(
            errors[cid])
        assert "below threshold t=6; reveals nothing" in str(errors[cid])


# -- SecAgg+: one consistent view that calls the victim's only senders dropped ---------------
def _drop_the_senders(consistency: bool):
    """SecAgg+ (n = 16, k = 8, t = 5): the server routes the victim the shares of t - 1 of its
    neighbours only, then tells everyone -- consistently -- that exactly those four dropped.
    Returns ``(config, masked victim vector, roster, senders, responses, errors)``."""
    config = SecAggConfig(vector_length=8, run_id=RUN, round_id=ROUND,
                          consistency_check=consistency, **PLUS)
    ids = list(range(config.num_clients))
    clients, server, roster, masked, senders = _to_masked_input(
        config, ids, victim_senders=lambda g: sorted(g[VICTIM])[:config.threshold - 1])
    graph = server._graph
    survivors = frozenset(ids) - set(senders)
    asked = sorted(survivors)
    signatures, errors, responses = {}, {}, {}
    if consistency:
        for cid in asked:
            try:
                signatures[cid] = clients[cid].consistency_check(ConsistencyRequest(
                    RUN, ROUND, cid, tuple(sorted(survivors)))).signature
            except (SecAggProtocolError, SecAggAbort) as exc:
                errors[cid] = exc
    for cid in asked:
        if cid in errors:
            continue
        near = graph[cid] | {cid}
        request = UnmaskRequest(RUN, ROUND, tuple(sorted(survivors & near)),
                                tuple(sorted(set(senders) & near)), MappingProxyType(
                                    {s: sig for s, sig in signatures.items()
                                     if s in near or graph[s] & near}))
        try:
            responses[cid] = clients[cid].unmask(request)
        except (SecAggProtocolError, SecAggAbort) as exc:
            errors[cid] = exc
    return config, masked[VICTIM], roster, senders, responses, errors


def test_without_the_option_calling_the_victims_few_senders_dropped_exposes_it():
    config, masked, roster, senders, responses, errors = _drop_the_senders(False)
    assert errors == {}  # one view for everyone, and each client's checks pass
    recovered = _strip_victim(config, masked, roster, responses, senders)
    step = 1 / config.resolved_scale
    np.testing.assert_allclose(recovered[:-1], VECTORS[VICTIM], rtol=0, atol=2 * step)


def test_with_the_option_the_victim_refuses_and_its_neighbourhood_reveals_nothing():
    config, masked, roster, senders, responses, errors = _drop_the_senders(True)
    # the victim: the set lists neighbours that never shared keys with it (it did not mask
    # against them); its other neighbours: too few signers in the victim's neighbourhood
    assert "that never shared keys with this client" in str(errors[VICTIM])
    assert not any(VICTIM in r.self_mask_shares for r in responses.values())
    assert any("from the neighbourhood of client 0, below threshold t=5" in str(e)
               for e in errors.values())


# -- honest rounds, then one deviation ------------------------------------------------------
def _sign(clients, survivors_of) -> dict[int, bytes]:
    return {cid: c.consistency_check(ConsistencyRequest(RUN, ROUND, cid,
                                                        tuple(sorted(survivors_of(cid))))
                                     ).signature for cid, c in clients.items()}


def test_a_server_that_sends_different_survivor_sets_is_refused_by_everyone():
    config = _config(True)
    clients, server, *_ = _to_masked_input(config)
    server.request_consistency()
    everyone = frozenset(IDS)
    # five are told client 9's input arrived, four that it did not (client 9 is not asked):
    # five and four signers, t = 6
    signatures = _sign({c: clients[c] for c in range(9)},
                       lambda cid: everyone if cid < 5 else everyone - {9})
    for cid in range(9):
        alive = everyone if cid < 5 else everyone - {9}
        request = UnmaskRequest(RUN, ROUND, tuple(sorted(alive)),
                                tuple(sorted(everyone - alive)), MappingProxyType(signatures))
        with pytest.raises(SecAggAbort, match=rf"only {5 if cid < 5 else 4} valid consistency "
                                              r"signatures .* "
                                              r"below threshold t=6; reveals nothing"):
            clients[cid].unmask(request)
        assert clients[cid].stage is None  # stopped: nothing more can be asked of it


def test_fewer_than_t_signatures_abort_and_the_lists_must_be_those_of_the_signed_set():
    config = _config(True)
    clients, server, *_ = _to_masked_input(config)
    survivors = server.request_consistency()
    signatures = _sign(clients, lambda cid: survivors)
    few = MappingProxyType({c: signatures[c] for c in IDS[:T - 1]})
    with pytest.raises(SecAggAbort, match=r"only 5 valid consistency signatures"):
        clients[0].unmask(UnmaskRequest(RUN, ROUND, tuple(IDS), (), few))
    # a client whose own signature is missing: the server sent another set than it signed
    others = MappingProxyType({c: signatures[c] for c in IDS if c != 1})
    with pytest.raises(SecAggProtocolError, match="its own consistency signature is missing"):
        clients[1].unmask(UnmaskRequest(RUN, ROUND, tuple(IDS), (), others))
    # lists that disagree with the signed set
    with pytest.raises(SecAggProtocolError, match="alive/dropped lists disagree with the "
                                                  "survivors set it signed"):
        clients[2].unmask(UnmaskRequest(RUN, ROUND, tuple(IDS[:-1]), (9,),
                                        MappingProxyType(signatures)))
    # a signature from outside the set
    stranger = MappingProxyType({**signatures, 42: bytes(64)})
    with pytest.raises(SecAggProtocolError, match=r"signatures from clients \[42\]"):
        clients[3].unmask(UnmaskRequest(RUN, ROUND, tuple(IDS), (), stranger))
    # forged signatures do not count: five good ones and five of garbage
    forged = MappingProxyType({c: (signatures[c] if c < 5 else bytes(64)) for c in IDS})
    with pytest.raises(SecAggAbort, match=r"only 5 valid consistency signatures"):
        clients[4].unmask(UnmaskRequest(RUN, ROUND, tuple(IDS), (), forged))
    # and the honest request passes
    for cid, sig in signatures.items():
        server.receive(ConsistencySignature(RUN, ROUND, cid, sig))
    server.request_unmask()
    response = clients[5].unmask(server.unmask_request_for(5))
    assert set(response.self_mask_shares) == set(IDS)


def test_survivor_sets_are_checked_before_signing():
    config = _config(True)
    clients, server, *_ = _to_masked_input(config)
    everyone = tuple(IDS)
    with pytest.raises(SecAggProtocolError, match=r"names clients \[77\] that are not in "
                                                  "the roster"):
        clients[0].consistency_check(ConsistencyRequest(RUN, ROUND, 0, (*everyone, 77)))
    with pytest.raises(SecAggProtocolError, match="does not list this client"):
        clients[1].consistency_check(ConsistencyRequest(RUN, ROUND, 1, everyone[2:]))
    with pytest.raises(SecAggAbort, match="only 5 of its neighbourhood survived, below "
                                          "threshold t=6"):
        clients[2].consistency_check(ConsistencyRequest(RUN, ROUND, 2, everyone[:5]))
    with pytest.raises(SecAggProtocolError, match="addressed to client 4"):
        clients[3].consistency_check(ConsistencyRequest(RUN, ROUND, 4, everyone))
    with pytest.raises(SecAggProtocolError, match="expected a ConsistencyRequest"):
        clients[5].consistency_check(UnmaskRequest(RUN, ROUND, everyone, ()))
    with pytest.raises(SecAggProtocolError, match="run 5 round 4"):
        clients[6].consistency_check(ConsistencyRequest(RUN, ROUND + 1, 6, everyone))
    with pytest.raises(SecAggStateError, match="stopped after a failed check"):
        clients[6].unmask(UnmaskRequest(RUN, ROUND, everyone, ()))


# -- signed keys ------------------------------------------------------------------------------
def _roster_for(victim: int, edit):
    config = _config(True)
    identities = _identities()
    clients = _clients(config, identities)
    server = SecAggServer(config, client_ids=IDS)
    for c in clients.values():
        server.receive(c.advertise_keys())
    server.broadcast_keys()
    message = edit(server.keys_for(victim))
    return clients, lambda: clients[victim].share_keys(decode_message(message.to_bytes()))


def _with(msg: KeysBroadcast, **changes) -> KeysBroadcast:
    return dataclasses.replace(msg, **changes)


def test_a_forged_key_signature_is_refused():
    outsider = SigningKey.generate()  # a key the key list does not hold for client 5

    def forge(msg):
        statement = roster_statement(_config(True), 5, key_digest(
            msg.public_keys[5][:KEY_SIZE], msg.public_keys[5][KEY_SIZE:]))
        return _with(msg, signatures=MappingProxyType(
            {**msg.signatures, 5: outsider.sign(statement)}))

    _, share = _roster_for(2, forge)
    with pytest.raises(SecAggProtocolError, match="roster entry of client 5 has no valid "
                                                  "signature under its key"):
        share()


def test_missing_key_signatures_are_refused():
    _, share = _roster_for(2, lambda msg: _with(msg, signatures=MappingProxyType({})))
    with pytest.raises(SecAggProtocolError, match=r"roster entries of clients \[0, 1, 2, 3, "
                                                  r"4, 5, 6, 7, 8, 9\] carry no signature"):
        share()


def test_substituted_keys_under_an_honest_signature_are_refused():
    new = KeyPair.generate().public + KeyPair.generate().public
    _, share = _roster_for(2, lambda msg: _with(msg, public_keys=MappingProxyType(
        {**msg.public_keys, 7: new})))
    with pytest.raises(SecAggProtocolError, match="roster entry of client 7 has no valid"):
        share()


def test_a_key_entry_replayed_from_another_round_is_refused():
    # client 7's entry of the previous round: its keys and its (valid, then) signature,
    # rewrapped by the server into this round's message
    config, identities = _config(True), _identities()
    earlier = SecAggClient(_config(True, round_id=ROUND - 1), 7, identity=identities[7])
    old = earlier.advertise_keys()
    clients = _clients(config, identities)
    server = SecAggServer(config, client_ids=IDS)
    with pytest.raises(SecAggProtocolError, match="for run 5 round 2: expected run 5 round 3"):
        server.receive(old)  # as it is, the server itself refuses it
    for cid, c in clients.items():
        server.receive(dataclasses.replace(old, round_id=ROUND) if cid == 7
                       else c.advertise_keys())
    msg = server.broadcast_keys()
    # the server does not hold the key list: it lets the replayed entry through ...
    assert msg.public_keys[7] == old.enc_public + old.mask_public
    with pytest.raises(SecAggProtocolError, match="roster entry of client 7 has no valid "
                                                  "signature .* replayed"):
        clients[2].share_keys(server.keys_for(2))


def test_a_client_outside_the_key_list_is_refused():
    config = _config(True, num_clients=11)
    identities = _identities()
    clients = _clients(config, identities)
    sybil_keys, sybil_list = generate_signing_keys(1, client_ids=[99])
    sybil = SecAggClient(config, 99, identity=SigningIdentity(sybil_keys[99], sybil_list))
    server = SecAggServer(config)
    for c in [*clients.values(), sybil]:
        server.receive(c.advertise_keys())
    server.broadcast_keys()
    for cid in (0, 4):
        with pytest.raises(SecAggProtocolError, match=r"roster clients \[99\] are not in its "
                                                      "generated key list"):
            clients[cid].share_keys(server.keys_for(cid))


def test_every_client_refuses_a_bad_entry_and_the_round_aborts():
    def drop_signature_of_3(stage, way, cid, data):
        if stage is Stage.SHARE_KEYS and way == "down":
            msg = decode_message(data)
            bad = {**msg.signatures, 3: bytes(64)}
            return _with(msg, signatures=MappingProxyType(bad)).to_bytes()
        return data

    with pytest.raises(SecAggAbort, match="aborted at share_keys: 0 clients responded"):
        run_secagg(VECTORS, None, _config(True), tamper_fn=drop_signature_of_3)


def test_identities_are_checked_when_a_client_starts():
    config = _config(True)
    with pytest.raises(SecAggConfigError, match="needs this client's signing key and the "
                                                "operator's key list"):
        SecAggClient(config, 1)
    identities = _identities()
    with pytest.raises(SecAggConfigError, match="client 2: its signing key is not the key "
                                                "its generated key list lists for client 2"):
        SecAggClient(config, 2, identity=identities[3])
    with pytest.raises(SecAggConfigError, match="client 12 is not in its generated key list"):
        SecAggClient(_config(True, num_clients=13), 12, identity=identities[3])
    SecAggClient(_config(False), 2)  # without the option no identity is needed


def test_the_server_refuses_keys_with_a_missing_or_unexpected_signature():
    on, off = SecAggServer(_config(True)), SecAggServer(_config(False))
    bare = AdvertiseKeys(RUN, ROUND, 1, bytes(32), bytes(range(32)))
    with pytest.raises(SecAggProtocolError, match="has no key signature, but this instance "
                                                  "runs the consistency check"):
        on.receive(bare)
    with pytest.raises(SecAggProtocolError, match="carries a key signature, but this instance "
                                                  "has no consistency check"):
        off.receive(dataclasses.replace(bare, signature=bytes(64)))
    with pytest.raises(SecAggStateError, match="no consistency check"):
        off.request_consistency()


def test_a_client_without_the_option_refuses_signatures():
    config = _config(False)
    clients = _clients(config)
    server = SecAggServer(config)
    for c in clients.values():
        server.receive(c.advertise_keys())
    server.broadcast_keys()
    msg = server.keys_for(0)
    signed = _with(msg, signatures=MappingProxyType({cid: bytes(64) for cid in IDS}))
    with pytest.raises(SecAggProtocolError, match="carries key signatures, but this instance "
                                                  "has no consistency check"):
        clients[0].share_keys(decode_message(signed.to_bytes()))


# -- exact sums under dropouts ------------------------------------------------------------------
PLUS = dict(num_clients=16, num_neighbours=8, threshold=5)  # SecAgg+: k = 8, t = 5 of 9
COMPLETE = dict(num_clients=10, threshold=6)
CASES = [(graph, committed, stage)
         for graph in ("complete", "plus") for committed in (False, True)
         for stage in SecAggConfig(num_clients=10, vector_length=1, threshold=6,
                                   consistency_check=True, committed_graph=committed).stages]


@pytest.mark.parametrize(("graph", "committed", "stage"), CASES)
def test_sums_are_exact_with_dropouts_at_every_stage(reference, graph, committed, stage):
    expected_ring_sum, _ = reference
    fields = PLUS if graph == "plus" else COMPLETE
    config = SecAggConfig(vector_length=4, run_id=RUN, round_id=ROUND, consistency_check=True,
                          committed_graph=committed, **fields)
    n = config.num_clients
    vectors = {cid: np.random.default_rng(100 + cid).uniform(-1, 1, 4) for cid in range(n)}
    weights = {cid: float(cid % 4 + 1) / 4 for cid in range(n)}
    dropped = {2, 7}  # within degree + 1 - t in every neighbourhood
    if stage is Stage.REVEAL_NONCE:  # by design: every member of the committed roster reveals
        with pytest.raises(SecAggAbort, match=r"clients \[2, 7\] of the committed roster did "
                                              "not reveal"):
            run_secagg(vectors, weights, config, {stage: dropped})
        return
    total, report = run_secagg(vectors, weights, config, {stage: dropped},
                               rng=np.random.default_rng(5))
    assert report.rejected == []
    inputs_in = stage in (Stage.CONSISTENCY_CHECK, Stage.UNMASK)
    expected = set(range(n)) - (set() if inputs_in else dropped)
    assert set(report.result.survivors) == expected
    ring = expected_ring_sum(vectors, weights, config, report.result.survivors, 5)
    assert np.array_equal(report.result.ring_sum, ring)
    np.testing.assert_allclose(total, sum(weights[c] * vectors[c] for c in expected),
                               atol=1e-6)
    assert list(report.client_stage_seconds[0]) == list(config.stages)


def test_a_round_with_the_option_costs_these_bytes():
    config = _config(True)
    _, report = run_secagg(VECTORS, None, config, rng=np.random.default_rng(0))
    header = 22
    assert report.bytes_up[3][Stage.ADVERTISE_KEYS] == header + 8 + 64 + 64
    assert report.bytes_up[3][Stage.CONSISTENCY_CHECK] == header + 8 + 64
    assert report.bytes_down[3][Stage.CONSISTENCY_CHECK] == header + 8 + 4 + 8 * N
    _, plain = run_secagg(VECTORS, None, _config(False), rng=np.random.default_rng(0))
    assert (report.bytes_down[3][Stage.SHARE_KEYS] - plain.bytes_down[3][Stage.SHARE_KEYS]
            == 4 + 64 * N)  # every roster signature
    assert (report.bytes_down[3][Stage.UNMASK] - plain.bytes_down[3][Stage.UNMASK]
            == 4 + (8 + 64) * N)  # every consistency signature (complete graph)


def test_under_secagg_plus_a_client_gets_the_signatures_of_its_two_hop_neighbourhood():
    config = SecAggConfig(vector_length=4, run_id=RUN, round_id=ROUND, consistency_check=True,
                          **{**PLUS, "num_clients": 30})
    ids = list(range(30))
    clients, server, *_ = _to_masked_input(config, ids,
                                           vectors=dict.fromkeys(ids, np.zeros(4)))
    for cid in server.request_consistency():
        server.receive(clients[cid].consistency_check(server.consistency_request_for(cid)))
    server.request_unmask()
    graph = server._graph
    request = server.unmask_request_for(0)
    reach = {0} | graph[0] | {w for v in graph[0] for w in graph[v]}
    assert set(request.signatures) == reach and len(reach) < 30
    response = clients[0].unmask(request)
    assert set(response.self_mask_shares) == graph[0] | {0}


# -- state, config, policy, wire format ---------------------------------------------------------
def test_a_restored_client_needs_its_identity_again_and_keeps_its_signed_set():
    config = _config(True)
    identities = _identities()
    clients, server, *_ = _to_masked_input(config, identities=identities)
    survivors = server.request_consistency()
    states = {}
    for cid, c in clients.items():
        restored = SecAggClient.from_state(None, c.to_state(), identity=identities[cid])
        server.receive(restored.consistency_check(server.consistency_request_for(cid)))
        states[cid] = restored.to_state()
    assert json.loads(states[0])["survivors"] == list(survivors)
    with pytest.raises(SecAggConfigError, match="needs this client's signing key"):
        SecAggClient.from_state(None, states[0])
    server.request_unmask()
    for cid in IDS:
        restored = SecAggClient.from_state(config, states[cid], identity=identities[cid])
        server.receive(restored.unmask(server.unmask_request_for(cid)))
    result = server.aggregate()
    np.testing.assert_allclose(result.weighted_sum, sum(VECTORS.values()), atol=1e-6)


def test_state_decoding_errors_name_the_problem():
    config = _config(True)
    identity = _identities()[4]
    state = json.loads(SecAggClient(config, 4, identity=identity).to_state())
    assert state["version"] == 4
    old = json.dumps({**state, "version": 3}).encode()
    with pytest.raises(SecAggStateError, match="has version 3, expected 4"):
        SecAggClient.from_state(None, old, identity=identity)
    lacking = json.dumps({k: v for k, v in state.items() if k != "survivors"}).encode()
    with pytest.raises(SecAggStateError, match="missing or malformed field: KeyError "
                                               "'survivors'"):
        SecAggClient.from_state(None, lacking, identity=identity)
    no_config = json.dumps({k: v for k, v in state.items() if k != "config"}).encode()
    with pytest.raises(SecAggStateError, match="lacks the parameters it started with"):
        SecAggClient.from_state(None, no_config, identity=identity)
    with pytest.raises(SecAggStateError, match="unreadable"):
        SecAggClient.from_state(None, b"[1, 2", identity=identity)


@pytest.mark.parametrize("option", ["committed_graph", "consistency_check"])
def test_an_option_that_is_off_is_left_out_of_the_fields(option):
    fields = dict(num_clients=N, vector_length=8, threshold=T, run_id=RUN, round_id=ROUND)
    on, off = SecAggConfig(**fields, **{option: True}), SecAggConfig(**fields)
    assert option not in off.to_fields()  # encodes exactly as before the option
    assert on.to_fields()[option] is True
    assert SecAggConfig.from_fields(on.to_fields()).to_fields() == on.to_fields()
    assert getattr(SecAggConfig.from_fields(on.to_fields()), option) is True
    old = SecAggConfig.from_fields(off.to_fields())  # a field set of before the option
    assert getattr(old, option) is False and old.to_fields() == off.to_fields()
    with pytest.raises(SecAggConfigError, match=f"{option}=1 must be a bool"):
        SecAggConfig(**fields, **{option: 1})


def test_config_stages():
    on, off = _config(True), _config(False)
    assert on.stages == (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS, Stage.MASKED_INPUT,
                         Stage.CONSISTENCY_CHECK, Stage.UNMASK)
    both = _config(True, committed_graph=True)
    assert both.stages == (Stage.ADVERTISE_KEYS, Stage.REVEAL_NONCE, Stage.SHARE_KEYS,
                           Stage.MASKED_INPUT, Stage.CONSISTENCY_CHECK, Stage.UNMASK)
    assert Stage.CONSISTENCY_CHECK not in off.stages
    with pytest.raises(ValueError, match=r"dropouts at \['consistency_check'\]: not a stage"):
        run_secagg(VECTORS, None, off, {Stage.CONSISTENCY_CHECK: {1}})
    client = SecAggClient(off, 1)
    with pytest.raises(SecAggStateError, match="consistency_check: not a stage of this"):
        client.consistency_check(ConsistencyRequest(RUN, ROUND, 1, tuple(IDS)))


def test_the_policy_can_require_the_option():
    policy = ClientPolicy(require_consistency_check=True)
    with pytest.raises(SecAggPolicyError, match=r"client 3 refuses the round: the consistency "
                                                r"check is off .*secagg-require-consistency"):
        policy.check(_config(False), client_id=3)
    policy.check(_config(True))
    assert ClientPolicy().require_consistency_check is False
    with pytest.raises(SecAggConfigError, match="require_consistency_check = 'yes', expected "
                                                "a bool"):
        ClientPolicy(require_consistency_check="yes")


def test_keys_broadcast_needs_one_signature_per_roster_client():
    msg = KeysBroadcast(9, 2, MappingProxyType({1: bytes(64)}), MappingProxyType({4: bytes(16)}),
                        signatures=MappingProxyType({1: bytes(64)}))
    with pytest.raises(SecAggProtocolError, match="one 64-byte signature per roster client"):
        msg.to_bytes()


# -- key lists and signing keys ---------------------------------------------------------------
def test_key_lists_round_trip_through_files(tmp_path):
    keys, key_list = generate_signing_keys(4)
    path = tmp_path / "keys.json"
    key_list.save(path)
    loaded = KeyList.load(path)
    assert dict(loaded) == dict(key_list) and list(loaded) == [0, 1, 2, 3]
    # a PEM public key is accepted in place of hex
    pem = Ed25519PublicKey.from_public_bytes(keys[2].public).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "2": pem}))
    assert KeyList.load(path)[2] == keys[2].public
    key_file = tmp_path / "client-2.pem"
    keys[2].save(key_file)
    assert SigningKey.load(key_file).public == keys[2].public
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert "private=<redacted>" in repr(keys[2])
    statement = survivors_statement(_config(True), [1, 2])
    assert loaded.verify(2, keys[2].sign(statement), statement)
    assert not loaded.verify(3, keys[2].sign(statement), statement)
    assert not loaded.verify(17, keys[2].sign(statement), statement)


@pytest.mark.parametrize(("text", "match"), [
    ("[1, 2]", "a JSON list, expected an object"),
    ("{not json", "not JSON"),
    ('{"x": "00"}', "entry 'x': client id must be a decimal integer"),
    ('{"3": "abcd"}', r"entry 3: public key 'abcd'\.\.\. is neither 64 hex digits nor a PEM"),
    ('{"3": 17}', "entry 3: public key is a int"),
    ('{"3": "-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----"}',
     "entry 3: unreadable PEM public key"),
])
def test_key_list_errors_name_the_bad_entry(tmp_path, text, match):
    path = tmp_path / "keys.json"
    path.write_text(text)
    with pytest.raises(SecAggConfigError, match=f"key list file {path}: {match}"):
        KeyList.load(path)


def test_key_list_refuses_a_shared_key_and_bad_ids(tmp_path):
    key = SigningKey.generate().public
    with pytest.raises(SecAggConfigError, match="entries 1 and 2 have the same public key"):
        KeyList({1: key, 2: key})
    with pytest.raises(SecAggConfigError, match="entry -1: client id must be an integer"):
        KeyList({-1: key})
    with pytest.raises(SecAggConfigError, match="entry 1: public key has 31 bytes"):
        KeyList({1: key[:31]})
    with pytest.raises(SecAggConfigError, match="cannot be read"):
        KeyList.load(tmp_path / "missing.json")
    with pytest.raises(SecAggConfigError, match="signing key file .* not an unencrypted PEM"):
        (tmp_path / "bad.pem").write_text("nonsense")
        SigningKey.load(tmp_path / "bad.pem")


def test_a_key_set_is_written_for_distribution(tmp_path):
    paths, list_path = write_signing_keys(tmp_path / "keys", 3)
    key_list = KeyList.load(list_path)
    assert sorted(paths) == [0, 1, 2] and list_path.name == "key-list.json"
    for cid, path in paths.items():
        SigningIdentity(SigningKey.load(path), key_list).check_owner(cid)
        assert path.stat().st_mode & 0o077 == 0


def test_simulation_keys_are_a_function_of_the_seed():
    keys, key_list = simulation_signing_keys(7, 5)
    again, same = simulation_signing_keys(7, 5)
    assert dict(key_list) == dict(same) and keys[3].public == again[3].public
    assert dict(simulation_signing_keys(8, 5)[1]) != dict(key_list)
    total, report = run_secagg({c: VECTORS[c] for c in range(5)}, None,
                               SecAggConfig(num_clients=5, vector_length=8, threshold=3,
                                            consistency_check=True),
                               identities={c: SigningIdentity(keys[c], key_list)
                                           for c in range(5)})
    assert report.rejected == []
    np.testing.assert_allclose(total, sum(VECTORS[c] for c in range(5)), atol=1e-6)
