"""Committed graph (issue 18, attack 2 "graph grinding"): a malicious server with colluding
clients chooses an honest client's SecAgg+ neighbours by re-rolling a colluder's keys, unless
the graph seed is fixed by commit-reveal (``SecAggConfig(committed_graph=True)``).

The adversary is written here, on the protocol objects and fedkit's own graph functions; no
crypto is mocked. n = 30, k = 10, t = 6, six colluders (ids 24-29) against victim 0.

* Without the option the seed hashes the key digests, so the server, who sees every key
  first, re-rolls the keys of one colluder until all six are the victim's neighbours (on
  average 1 / 4.4e-4 = 2,262 tries), and the colluders' six shares rebuild the victim's
  input from its masked vector.
* With the option the colluders still choose their keys and commitments after seeing the
  honest keys and commitments, but the seed also hashes the honest nonces, revealed only
  once the roster is committed: over 200 instances the victim's neighbourhood holds as many
  colluders as in a random graph (hypergeometric), whatever the re-rolling.
* A nonce that does not match its commitment, a roster changed after the commitment, a
  withheld reveal: refused by the clients or aborted by the server.

Statistical checks are two-sided at p = 1e-6 (randomness comes from ``secrets``, as in the
protocol, so runs differ).
"""

from __future__ import annotations

import dataclasses
import math
import secrets
from types import MappingProxyType

import numpy as np
import pytest
from adversary import strip_masks

from fedkit.privacy.graph import (
    DIGEST_SIZE,
    NONCE_SIZE,
    committed_graph_seed,
    communication_graph,
    graph_seed,
    key_digest,
    nonce_commitment,
    roster_root,
)
from fedkit.privacy.hazmat import shamir
from fedkit.privacy.hazmat.keys import KEY_SIZE, KeyPair
from fedkit.privacy.secagg import (
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencySignature,
    KeysBroadcast,
    RevealNonce,
    RosterCommitment,
    SecAggAbort,
    SecAggClient,
    SecAggConfig,
    SecAggProtocolError,
    SecAggServer,
    SecAggStateError,
    Stage,
    UnmaskRequest,
    decode_message,
    run_secagg,
)

N, K, T = 30, 10, 6
RUN, ROUND = 4, 7
VICTIM = 0
COLLUDERS = frozenset(range(24, 30))
GRINDER = 29  # the colluder whose keys are re-rolled
IDS = list(range(N))
# P(all six colluders among the victim's 10 neighbours of 29 others) = C(23, 4) / C(29, 10)
P_ALL = math.comb(N - 1 - len(COLLUDERS), K - len(COLLUDERS)) / math.comb(N - 1, K)
# the attack needs 1 / P_ALL = 2,262 tries on average and fails to succeed within MAX_TRIES
# with probability (1 - P_ALL) ** MAX_TRIES = 2e-8
MAX_TRIES = 40_000
INSTANCES, REROLLS = 200, 32
P_VALUE = 1e-6


def _config(committed: bool, **changes) -> SecAggConfig:
    fields = dict(num_clients=N, vector_length=8, threshold=T, num_neighbours=K, run_id=RUN,
                  round_id=ROUND, committed_graph=committed)
    return SecAggConfig(**{**fields, **changes})


def _hypergeometric(x: int) -> float:
    """P(x colluders among the victim's K neighbours) in a random graph."""
    others, bad = N - 1, len(COLLUDERS)
    return math.comb(bad, x) * math.comb(others - bad, K - x) / math.comb(others, K)


def _binomial_bounds(trials: int, p: float, alpha: float) -> tuple[int, int]:
    """The central range of Binomial(trials, p) outside which each tail is < alpha / 2."""
    pmf = [math.comb(trials, j) * p**j * (1 - p) ** (trials - j) for j in range(trials + 1)]
    low, acc = 0, 0.0
    while acc + pmf[low] < alpha / 2:
        acc += pmf[low]
        low += 1
    high, acc = trials, 0.0
    while acc + pmf[high] < alpha / 2:
        acc += pmf[high]
        high -= 1
    return low, high


# -- without the option: the attack works ---------------------------------------------------
def _grind(config: SecAggConfig, advertised: dict[int, AdvertiseKeys]):
    """The malicious server has every other client's keys; it re-rolls the grinder's key
    pairs until the graph makes every colluder a neighbour of the victim.

    Returns:
        ``(grinder client, its advertise-keys message, number of tries)``.
    """
    digests = {cid: key_digest(m.enc_public, m.mask_public) for cid, m in advertised.items()}
    for tries in range(1, MAX_TRIES + 1):
        candidate = SecAggClient(config, GRINDER)  # fresh key pairs: one re-roll
        message = candidate.advertise_keys()
        digests[GRINDER] = key_digest(message.enc_public, message.mask_public)
        seed = graph_seed(digests, run_id=RUN, round_id=ROUND)
        if COLLUDERS <= communication_graph(IDS, K, seed)[VICTIM]:
            return candidate, message, tries
    raise AssertionError(f"grinding found no graph in {MAX_TRIES} tries")


def _rebuild_input(config: SecAggConfig, keys: dict[int, tuple[bytes, bytes]],
                   masked: np.ndarray, held: dict[int, tuple[int, int]]) -> np.ndarray:
    """What the colluders do with the shares of the victim's secrets they received: rebuild
    its self-mask seed and masking key (t shares each), strip every mask from its vector."""
    position = {cid: i + 1 for i, cid in enumerate(sorted(keys))}
    self_seed = shamir.combine([shamir.Share(position[h], b) for h, (b, _) in held.items()], T)
    private = shamir.combine([shamir.Share(position[h], k) for h, (_, k) in held.items()], T)
    pair = KeyPair.from_private_bytes(private)
    assert pair.public == keys[VICTIM][1]  # the victim's real masking key
    digests = {cid: key_digest(*pair_) for cid, pair_ in keys.items()}
    neighbours = communication_graph(list(keys), K, graph_seed(digests, run_id=RUN,
                                                               round_id=ROUND))[VICTIM]
    return strip_masks(config, masked, VICTIM, self_seed,
                       [(w, pair.exchange(keys[w][1])) for w in sorted(neighbours)])


def test_without_the_option_re_rolling_one_colluders_keys_exposes_the_victims_input():
    config = _config(False)
    vectors = {cid: np.random.default_rng(cid).uniform(-1, 1, 8) for cid in IDS}
    clients = {cid: SecAggClient(config, cid, rng=np.random.default_rng(cid))
               for cid in IDS if cid != GRINDER}
    advertised = {cid: c.advertise_keys() for cid, c in clients.items()}
    clients[GRINDER], advertised[GRINDER], tries = _grind(config, advertised)
    assert 1 <= tries <= MAX_TRIES
    # the server now runs the round as usual: nothing the victim checks is out of place
    server = SecAggServer(config, client_ids=IDS)
    for cid in IDS:
        server.receive(advertised[cid])
    roster = server.broadcast_keys()
    for cid in IDS:
        server.receive(clients[cid].share_keys(server.keys_for(cid)))
    assert COLLUDERS <= clients[VICTIM]._neighbours  # the victim accepted the ground graph
    routed = server.route_shares()
    masked = {}
    for cid in IDS:
        message = clients[cid].masked_input(routed[cid], vectors[cid])
        masked[cid] = message.masked
        server.receive(message)
    # each colluder decrypted the victim's share pair addressed to it (its own memory)
    held = {cid: clients[cid]._received[VICTIM] for cid in sorted(COLLUDERS)}
    server.request_unmask()
    for cid in IDS:
        server.receive(clients[cid].unmask(server.unmask_request_for(cid)))
    assert server.aggregate().survivors == tuple(IDS)  # the round itself looks normal
    keys = {cid: (blob[:KEY_SIZE], blob[KEY_SIZE:]) for cid, blob in roster.public_keys.items()}
    recovered = _rebuild_input(config, keys, masked[VICTIM], held)
    step = 1 / config.resolved_scale
    np.testing.assert_allclose(recovered[:-1], vectors[VICTIM], rtol=0, atol=2 * step)
    assert recovered[-1] == pytest.approx(1.0, abs=2 * step)  # its weight, too


# -- with the option: the graph is uniform whatever the colluders do ------------------------
def _instance(committed: bool) -> tuple[int, int]:
    """One instance of the attack, on the graph only (key digests stand in for keys).

    Every client but the grinder advertises; the server then tries REROLLS candidate (keys,
    nonce) pairs for the grinder and keeps the one whose predicted graph puts the most
    colluders next to the victim. Without the option its prediction is exact. With it, the
    server knows every key and commitment and its colluders' nonces, not the honest nonces:
    it predicts with zeros in their place.

    Returns:
        ``(colluders next to the victim as predicted, as the clients compute the graph)``.
    """
    digests = {cid: secrets.token_bytes(DIGEST_SIZE) for cid in IDS}
    nonces = {cid: secrets.token_bytes(NONCE_SIZE) for cid in IDS}

    def seed_of(digest: dict[int, bytes], nonce: dict[int, bytes]) -> bytes:
        if not committed:
            return graph_seed(digest, run_id=RUN, round_id=ROUND)
        entries = {cid: (digest[cid], nonce_commitment(nonce[cid], client_id=cid, run_id=RUN,
                                                       round_id=ROUND)) for cid in IDS}
        root = roster_root(entries, run_id=RUN, round_id=ROUND)
        return committed_graph_seed(root, nonce, run_id=RUN, round_id=ROUND)

    def colluders_next_to_victim(seed: bytes) -> int:
        return len(COLLUDERS & communication_graph(IDS, K, seed)[VICTIM])

    known = {cid: nonces[cid] if cid in COLLUDERS else bytes(NONCE_SIZE) for cid in IDS}
    best = (-1, b"", b"")
    for _ in range(REROLLS):
        digest, nonce = secrets.token_bytes(DIGEST_SIZE), secrets.token_bytes(NONCE_SIZE)
        predicted = colluders_next_to_victim(seed_of({**digests, GRINDER: digest},
                                                     {**known, GRINDER: nonce}))
        best = max(best, (predicted, digest, nonce))
    predicted, digests[GRINDER], nonces[GRINDER] = best
    return predicted, colluders_next_to_victim(seed_of(digests, nonces))


def test_with_the_option_re_rolling_leaves_the_victims_neighbourhood_random():
    # X = colluders among the victim's neighbours; in a random graph X is hypergeometric
    # (mean 60 / 29 = 2.07) and X >= 4 has probability p = 0.086
    p = sum(_hypergeometric(x) for x in range(4, len(COLLUDERS) + 1))
    low, high = _binomial_bounds(INSTANCES, p, P_VALUE)
    mean = sum(x * _hypergeometric(x) for x in range(len(COLLUDERS) + 1))
    variance = sum((x - mean) ** 2 * _hypergeometric(x) for x in range(len(COLLUDERS) + 1))
    z = 5.3  # two-sided 1e-7 normal quantile, for the mean over INSTANCES
    committed = [_instance(True) for _ in range(INSTANCES)]
    real = [x for _, x in committed]
    assert low <= sum(x >= 4 for x in real) <= high
    assert abs(np.mean(real) - mean) <= z * math.sqrt(variance / INSTANCES)
    assert sum(x == len(COLLUDERS) for x in real) <= _binomial_bounds(
        INSTANCES, P_ALL, P_VALUE)[1]
    # the server's choice looked good to it (the best of 32 predictions) and meant nothing
    assert np.mean([x for x, _ in committed]) > mean + 1.5
    # the same adversary without the option: the test has the power to see grinding
    ground = [x for _, x in (_instance(False) for _ in range(INSTANCES))]
    assert sum(x >= 4 for x in ground) > high


def test_with_the_option_the_seed_changes_with_any_honest_nonce():
    digests = {cid: secrets.token_bytes(DIGEST_SIZE) for cid in IDS}
    nonces = {cid: secrets.token_bytes(NONCE_SIZE) for cid in IDS}
    entries = {cid: (digests[cid], nonce_commitment(nonces[cid], client_id=cid, run_id=RUN,
                                                    round_id=ROUND)) for cid in IDS}
    root = roster_root(entries, run_id=RUN, round_id=ROUND)
    seed = committed_graph_seed(root, nonces, run_id=RUN, round_id=ROUND)
    for honest in (VICTIM, 11):
        other = {**nonces, honest: secrets.token_bytes(NONCE_SIZE)}
        assert committed_graph_seed(root, other, run_id=RUN, round_id=ROUND) != seed
    # and the root binds every key digest and commitment, the round and the run
    for change in ({"run_id": RUN + 1}, {"round_id": ROUND + 1}):
        assert roster_root(entries, **{"run_id": RUN, "round_id": ROUND, **change}) != root
    assert roster_root({**entries, GRINDER: (secrets.token_bytes(DIGEST_SIZE),
                                              entries[GRINDER][1])},
                       run_id=RUN, round_id=ROUND) != root


# -- commit-reveal checks on the real protocol -----------------------------------------------
SMALL = _config(True, num_clients=10, num_neighbours=4, threshold=3, vector_length=4)
SMALL_VECTORS = {cid: np.full(4, 0.05 * cid) for cid in range(10)}


def _tamper(stage, direction, client_id, edit):
    def fn(s, way, cid, data):
        if s is stage and way == direction and (client_id is None or cid == client_id):
            return edit(data)
        return data

    return fn


def _replace(data: bytes, **changes) -> bytes:
    return dataclasses.replace(decode_message(data), **changes).to_bytes()


def _honest(report, vectors=SMALL_VECTORS):
    return sum(vectors[c] for c in report.result.survivors)


def test_a_round_with_the_option_runs_five_stages_and_sums_exactly():
    total, report = run_secagg(SMALL_VECTORS, None, SMALL, rng=np.random.default_rng(0))
    assert report.rejected == []
    assert list(report.client_stage_seconds[3]) == list(SMALL.stages) == [
        Stage.ADVERTISE_KEYS, Stage.REVEAL_NONCE, Stage.SHARE_KEYS, Stage.MASKED_INPUT,
        Stage.UNMASK]
    np.testing.assert_allclose(total, _honest(report), atol=1e-6)
    # what the option costs on the wire, per client
    assert report.bytes_up[3][Stage.ADVERTISE_KEYS] == 22 + 8 + 64 + 32
    assert report.bytes_down[3][Stage.REVEAL_NONCE] == 22 + 8 + 4 + 32
    assert report.bytes_up[3][Stage.REVEAL_NONCE] == 22 + 8 + NONCE_SIZE


def test_a_substituted_nonce_is_refused_by_the_client():
    def swap_nonce_of_5(data):
        msg = decode_message(data)
        return _replace(data, nonces=MappingProxyType(
            {**msg.nonces, 5: secrets.token_bytes(NONCE_SIZE)}))

    total, report = run_secagg(SMALL_VECTORS, None, SMALL,
                               tamper_fn=_tamper(Stage.SHARE_KEYS, "down", 2, swap_nonce_of_5))
    ((stage, cid, reason),) = report.rejected
    assert (stage, cid) == (Stage.SHARE_KEYS, 2)
    assert "do not reproduce the roster root the server committed to" in reason
    assert "a nonce that does not match its commitment" in reason
    np.testing.assert_allclose(total, _honest(report), atol=1e-6)  # the others go on
    assert 2 not in report.result.survivors


def test_a_client_refuses_a_roster_that_lists_another_nonce_for_itself():
    def swap_own_nonce(data):
        msg = decode_message(data)
        return _replace(data, nonces=MappingProxyType(
            {**msg.nonces, 4: secrets.token_bytes(NONCE_SIZE)}))

    _, report = run_secagg(SMALL_VECTORS, None, SMALL,
                           tamper_fn=_tamper(Stage.SHARE_KEYS, "down", 4, swap_own_nonce))
    assert "another nonce for this client than the one it revealed" in report.rejected[0][2]


def test_a_reveal_that_does_not_match_its_commitment_aborts_the_instance():
    def flip(data):
        return data[:-1] + bytes([data[-1] ^ 1])

    with pytest.raises(SecAggAbort, match=r"clients \[3\] of the committed roster did not "
                                          r"reveal a nonce matching their commitment"):
        run_secagg(SMALL_VECTORS, None, SMALL,
                   tamper_fn=_tamper(Stage.REVEAL_NONCE, "up", 3, flip))


def test_a_dropout_at_reveal_nonce_aborts_and_says_why():
    with pytest.raises(SecAggAbort, match=r"aborted at reveal_nonce: clients \[5, 8\] .*every "
                                          r"member must reveal, otherwise the server could "
                                          r"choose the graph by choosing whose nonce counts"):
        run_secagg(SMALL_VECTORS, None, SMALL, {Stage.REVEAL_NONCE: {5, 8}})


def _through_reveal(config=SMALL):
    ids = range(config.num_clients)
    clients = {cid: SecAggClient(config, cid) for cid in ids}
    server = SecAggServer(config, client_ids=ids)
    for c in clients.values():
        server.receive(c.advertise_keys())
    root = server.commit_roster()
    for cid, c in clients.items():
        server.receive(c.reveal_nonce(server.roster_commitment_for(cid)))
    return clients, server, root


def test_a_server_that_drops_a_member_after_the_reveal_is_refused():
    # the server saw every nonce and would now leave client 9 out of the graph
    clients, server, _ = _through_reveal()
    server.broadcast_keys()
    strangers = [cid for cid in range(9) if 9 in server.keys_for(cid).digests]
    assert len(strangers) >= 4  # k = 4 of 9 others: 9 is a stranger to five clients
    for victim in strangers[:2]:
        msg = server.keys_for(victim)
        without_9 = dataclasses.replace(
            msg, digests=MappingProxyType({c: d for c, d in msg.digests.items() if c != 9}),
            nonces=MappingProxyType({c: n for c, n in msg.nonces.items() if c != 9}))
        with pytest.raises(SecAggProtocolError, match="the committed roster 10; refusing"):
            clients[victim].share_keys(decode_message(without_9.to_bytes()))


def test_a_server_that_re_rolls_a_key_after_the_reveal_is_refused():
    # a colluder's new keys after the nonces are known: its digest no longer matches the root
    clients, server, _ = _through_reveal()
    server.broadcast_keys()
    msg = server.keys_for(0)
    other = next(c for c in msg.digests)
    new = KeyPair.generate().public + KeyPair.generate().public
    rerolled = dataclasses.replace(msg, digests=MappingProxyType(
        {**msg.digests, other: key_digest(new[:KEY_SIZE], new[KEY_SIZE:])}))
    with pytest.raises(SecAggProtocolError, match="do not reproduce the roster root"):
        clients[0].share_keys(rerolled)


def test_a_roster_without_nonces_is_refused():
    clients, server, _ = _through_reveal()
    server.broadcast_keys()
    bare = dataclasses.replace(server.keys_for(2), nonces=MappingProxyType({}))
    with pytest.raises(SecAggProtocolError, match="gives nonces for 0 of its 10 clients"):
        clients[2].share_keys(decode_message(bare.to_bytes()))


def test_the_honest_server_cannot_skip_a_missing_reveal():
    clients, server = {}, SecAggServer(SMALL, client_ids=range(10))
    for cid in range(10):
        clients[cid] = SecAggClient(SMALL, cid)
        server.receive(clients[cid].advertise_keys())
    server.commit_roster()
    for cid in range(9):  # client 9 never reveals
        server.receive(clients[cid].reveal_nonce(server.roster_commitment_for(cid)))
    with pytest.raises(SecAggAbort, match=r"clients \[9\] of the committed roster"):
        server.broadcast_keys()
    assert server.stage is None  # the instance is over


@pytest.mark.parametrize("stage", [Stage.SHARE_KEYS, Stage.MASKED_INPUT, Stage.UNMASK])
def test_sums_are_exact_with_dropouts_after_the_reveal(reference, stage):
    expected_ring_sum, _ = reference
    weights = {cid: float(cid % 4) / 4 for cid in range(10)}
    dropped = {2, 7}  # at most degree + 1 - t = 2 in total
    total, report = run_secagg(SMALL_VECTORS, weights, SMALL, {stage: dropped},
                               rng=np.random.default_rng(5))
    assert report.rejected == []
    expected = set(range(10)) - (set() if stage is Stage.UNMASK else dropped)
    assert set(report.result.survivors) == expected
    ring = expected_ring_sum(SMALL_VECTORS, weights, SMALL, report.result.survivors, 5)
    assert np.array_equal(report.result.ring_sum, ring)
    np.testing.assert_allclose(total, sum(weights[c] * SMALL_VECTORS[c] for c in expected),
                               atol=1e-6)


def test_a_client_restored_between_stages_keeps_its_nonce_and_commitment():
    clients, server, _ = _through_reveal()
    restored = {cid: SecAggClient.from_state(None, c.to_state()) for cid, c in clients.items()}
    server.broadcast_keys()
    for cid, c in restored.items():
        server.receive(c.share_keys(server.keys_for(cid)))
    routed = server.route_shares()
    for cid, c in restored.items():
        server.receive(c.masked_input(routed[cid], SMALL_VECTORS[cid]))
    server.request_unmask()
    for cid, c in restored.items():
        server.receive(c.unmask(server.unmask_request_for(cid)))
    result = server.aggregate()
    np.testing.assert_allclose(result.weighted_sum, sum(SMALL_VECTORS.values()), atol=1e-6)


# -- the reveal-nonce request and the option's boundaries ------------------------------------
def test_reveal_requests_are_checked():
    config = SMALL
    client = SecAggClient(config, 3)
    client.advertise_keys()
    root = bytes(32)
    with pytest.raises(SecAggProtocolError, match="addressed to client 4"):
        client.reveal_nonce(RosterCommitment(RUN, ROUND, 4, 10, root))
    client = SecAggClient(config, 3)
    client.advertise_keys()
    with pytest.raises(SecAggProtocolError, match="11 clients, expected at most num_clients=10"):
        client.reveal_nonce(RosterCommitment(RUN, ROUND, 3, 11, root))
    client = SecAggClient(config, 3)
    client.advertise_keys()
    with pytest.raises(SecAggAbort, match="committed roster has 2 clients, below threshold"):
        client.reveal_nonce(RosterCommitment(RUN, ROUND, 3, 2, root))
    client = SecAggClient(config, 3)
    client.advertise_keys()
    with pytest.raises(SecAggProtocolError, match="expected a RosterCommitment"):
        client.reveal_nonce(RevealNonce(RUN, ROUND, 3, bytes(NONCE_SIZE)))
    with pytest.raises(SecAggStateError, match="stopped after a failed check"):
        client.reveal_nonce(RosterCommitment(RUN, ROUND, 3, 10, root))


def test_without_the_option_there_is_no_reveal_stage():
    config = _config(False, num_clients=10, num_neighbours=4, threshold=3)
    assert Stage.REVEAL_NONCE not in config.stages
    client = SecAggClient(config, 3)
    keys = client.advertise_keys()
    assert keys.commitment == b"" and len(keys.to_bytes()) == 22 + 8 + 64  # as before
    with pytest.raises(SecAggStateError, match="reveal_nonce: not a stage of this instance"):
        client.reveal_nonce(RosterCommitment(RUN, ROUND, 3, 10, bytes(32)))
    server = SecAggServer(config)
    with pytest.raises(SecAggStateError, match="no committed graph"):
        server.commit_roster()
    with pytest.raises(ValueError, match=r"dropouts at \['reveal_nonce'\]: not a stage"):
        run_secagg([np.zeros(8)] * 10, None, config, {Stage.REVEAL_NONCE: {1}})


def test_the_server_refuses_keys_with_a_missing_or_unexpected_commitment():
    on, off = SecAggServer(SMALL), SecAggServer(_config(False, num_clients=10, num_neighbours=4,
                                                            threshold=3, vector_length=4))
    bare = AdvertiseKeys(RUN, ROUND, 1, bytes(32), bytes(range(32)))
    with pytest.raises(SecAggProtocolError, match="has no nonce commitment"):
        on.receive(bare)
    with pytest.raises(SecAggProtocolError, match="carries a nonce commitment"):
        off.receive(dataclasses.replace(bare, commitment=bytes(32)))
    off_client = SecAggClient(off.config, 1)
    msg = KeysBroadcast(RUN, ROUND, MappingProxyType({}), nonces=MappingProxyType({}))
    off_client.advertise_keys()
    with pytest.raises(SecAggProtocolError, match="own public keys are missing"):
        off_client.share_keys(msg)


def test_a_client_without_the_option_refuses_a_roster_with_nonces():
    config = _config(False, num_clients=4, num_neighbours=None, threshold=3, vector_length=4)
    clients = {cid: SecAggClient(config, cid) for cid in range(4)}
    server = SecAggServer(config)
    for c in clients.values():
        server.receive(c.advertise_keys())
    server.broadcast_keys()
    msg = server.keys_for(0)
    with_nonces = dataclasses.replace(msg, nonces=MappingProxyType(
        {cid: bytes(NONCE_SIZE) for cid in msg.public_keys}))
    with pytest.raises(SecAggProtocolError, match="carries graph nonces, but this instance has "
                                                  "no committed graph"):
        clients[0].share_keys(decode_message(with_nonces.to_bytes()))


def test_config_stages():
    # the fields of both options: tests/privacy/test_consistency_check.py
    on, off = _config(True), _config(False)
    assert on.stages == (Stage.ADVERTISE_KEYS, Stage.REVEAL_NONCE, Stage.SHARE_KEYS,
                         Stage.MASKED_INPUT, Stage.UNMASK)
    assert off.stages == (Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS, Stage.MASKED_INPUT,
                          Stage.UNMASK)


@pytest.mark.parametrize("message", [
    AdvertiseKeys(9, 2, 5, bytes(range(32)), bytes(32), bytes(range(32, 64))),
    KeysBroadcast(9, 2, MappingProxyType({1: bytes(64)}), MappingProxyType({4: bytes(16)}),
                  MappingProxyType({1: bytes(range(16)), 4: bytes(16)})),
    RosterCommitment(9, 2, 3, 30, bytes(range(32))),
    RevealNonce(9, 2, 3, bytes(range(16))),
    # consistency_check (tests/privacy/test_consistency_check.py)
    AdvertiseKeys(9, 2, 5, bytes(range(32)), bytes(32), b"", bytes(range(64))),
    AdvertiseKeys(9, 2, 5, bytes(range(32)), bytes(32), bytes(range(1, 33)),
                  bytes(range(64))),
    KeysBroadcast(9, 2, MappingProxyType({1: bytes(64)}), MappingProxyType({4: bytes(16)}),
                  signatures=MappingProxyType({1: bytes(range(64)), 4: bytes(64)})),
    KeysBroadcast(9, 2, MappingProxyType({1: bytes(64)}), MappingProxyType({4: bytes(16)}),
                  MappingProxyType({1: bytes(range(16)), 4: bytes(16)}),
                  MappingProxyType({1: bytes(range(64)), 4: bytes(64)})),
    UnmaskRequest(9, 2, (1, 2, 5), (3,), MappingProxyType({1: bytes(64), 5: bytes(range(64))})),
    ConsistencyRequest(9, 2, 3, (1, 3, 8)),
    ConsistencySignature(9, 2, 3, bytes(range(64))),
])
def test_wire_format_round_trip_of_the_options_messages(message):
    data = message.to_bytes()
    decoded = decode_message(data)
    assert type(decoded) is type(message)
    for field in dataclasses.fields(message):
        assert getattr(decoded, field.name) == getattr(message, field.name)
    with pytest.raises(SecAggProtocolError, match="trailing bytes"):
        type(message).from_bytes(data + b"\x00")
    with pytest.raises(SecAggProtocolError, match="truncated|trailing bytes"):
        type(message).from_bytes(data[:-1])


def test_keys_broadcast_needs_one_nonce_per_roster_client():
    msg = KeysBroadcast(9, 2, MappingProxyType({1: bytes(64)}), MappingProxyType({4: bytes(16)}),
                        MappingProxyType({1: bytes(16)}))
    with pytest.raises(SecAggProtocolError, match="one 16-byte nonce per roster client"):
        msg.to_bytes()
