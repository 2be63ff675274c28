"""Rows released only in crowds (issue 18, attack 4).

Submodel-aware secure aggregation outputs per row the sum and the exact "truly used" count
over the surviving holders of the row. With one holder that is the client's update and its
true membership bit. These tests drive rounds of n = 10 clients whose S'' comes from double
randomized response with the eps2 preset, with an honest server and with adversaries that
keep every message they receive and remove every mask they can (``_Adversary``), and check
that a row's sum and count leave the protocol only from a crowd of at least
``min_row_holders`` holders, exactly, under dropouts at every stage, on the complete and on
a SecAgg+ graph, and that what is withheld shows in the round log.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fedkit.config import RunConfig
from fedkit.flower.apps.client_app import app as fedkit_app
from fedkit.flower.runtime.inprocess import InProcessGrid
from fedkit.flower.submodel.client import node_row_floor
from fedkit.flower.submodel.server import run_submodel_server
from fedkit.flower.submodel.task import initial_model, load_rec_data, real_set
from fedkit.privacy.graph import communication_graph, graph_seed, key_digest
from fedkit.privacy.hazmat import shamir
from fedkit.privacy.hazmat.keys import KeyPair, derive_key
from fedkit.privacy.hazmat.prg import expand_mask, expand_rows, row_seeds
from fedkit.privacy.secagg import (
    SecAggConfigError,
    SecAggPolicyError,
    SecAggProtocolError,
    Stage,
    UnmaskResponse,
)
from fedkit.privacy.submodel import (
    DEFAULT_MIN_ROW_HOLDERS,
    SUBMODEL_WIRE_VERSION,
    SubmodelSecAggClient,
    SubmodelSecAggConfig,
    SubmodelSecAggServer,
    SubmodelUnmaskResponse,
    SubmodelUpdate,
    decode_submodel_message,
)
from fedkit.submodel import PRESETS, PermanentMemo, perturb

N, T = 10, 6  # cohort and a strict-majority threshold
V, W, D = 40, 3, 2  # rows, row width, dense length
MAX_WEIGHT = 8.0  # a power of two: integer weights travel exactly


def _config(**fields) -> SubmodelSecAggConfig:
    base = dict(num_clients=N, num_rows=V, row_width=W, vector_length=D, threshold=T,
                max_weight=MAX_WEIGHT, run_id=3, round_id=7)
    return SubmodelSecAggConfig(**{**base, **fields})


def _updates(seed: int, n: int = N) -> dict[int, SubmodelUpdate]:
    """n clients: real sets S of 6 items (popular items more likely), U their union, S'' by
    double randomized response (eps2) over U; values are multiples of 1/8, so their ring
    encoding is exact (stochastic rounding leaves integers unchanged)."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / (1.0 + np.arange(V)) ** 0.7
    reals = {c: np.sort(rng.choice(V, 6, replace=False, p=popularity / popularity.sum()))
             for c in range(n)}
    union = np.unique(np.concatenate(list(reals.values())))
    out = {}
    for c in range(n):
        rows, _ = perturb(reals[c], union, PermanentMemo(), PRESETS["eps2"], rng)
        out[c] = SubmodelUpdate(
            rows=rows, row_values=rng.integers(-8, 9, (rows.size, W)) / 8,
            row_counts=np.isin(rows, reals[c]).astype(np.int64),
            dense=rng.integers(-8, 9, D) / 8, weight=float(rng.integers(1, 9)))
    return out


def _holders(updates, clients) -> np.ndarray:
    count = np.zeros(V, dtype=np.int64)
    for c in clients:
        count[updates[c].rows] += 1
    return count


def _block(config, update: SubmodelUpdate, row: int) -> np.ndarray:
    """The ring encoding of one client's block of ``row``: values x count, then the count."""
    i = int(np.searchsorted(update.rows, row))
    values = np.clip(update.row_values[i], -config.clip, config.clip) * update.row_counts[i]
    block = np.round(values * config.resolved_scale).astype(np.int64).astype(np.uint32)
    return np.append(block, np.uint32(update.row_counts[i]))


def _tail(config, update: SubmodelUpdate) -> np.ndarray:
    fraction = update.weight / config.max_weight
    values = np.append(np.clip(update.dense, -config.clip, config.clip) * fraction, fraction)
    return np.round(values * config.resolved_scale).astype(np.int64).astype(np.uint32)


@dataclasses.dataclass
class _Round:
    """Everything a server received in one round, and the honest aggregate."""

    config: SubmodelSecAggConfig
    updates: dict[int, SubmodelUpdate]
    advertised: dict[int, object]
    masked: dict[int, object]  # every masked input sent, withheld ones included
    responses: dict[int, SubmodelUnmaskResponse]
    server: SubmodelSecAggServer
    result: object


def _drive(config, updates, *, withhold=(), drop=None,
           server_cls=SubmodelSecAggServer) -> _Round:
    """One round through the wire format. ``drop[stage]``: clients that send nothing from
    that stage on; ``withhold``: clients whose masked input the server receives but hides
    from its state machine, so it declares them dropped and collects their key shares (the
    malicious server of attack 4)."""
    drop = {stage: set(ids) for stage, ids in (drop or {}).items()}
    gone: set[int] = set()
    clients = {c: SubmodelSecAggClient(config, c, u.rows, rng=np.random.default_rng(c),
                                       min_row_holders=config.min_row_holders)
               for c, u in updates.items()}
    server = server_cls(config, client_ids=list(updates))
    advertised, masked, responses = {}, {}, {}
    gone |= drop.get(Stage.ADVERTISE_KEYS, set())
    for c in sorted(set(clients) - gone):
        advertised[c] = decode_submodel_message(clients[c].advertise_keys().to_bytes())
        server.receive(advertised[c])
    server.broadcast_keys()
    gone |= drop.get(Stage.SHARE_KEYS, set())
    for c in sorted(set(server.roster) - gone):
        broadcast = decode_submodel_message(server.keys_for(c).to_bytes())
        server.receive(decode_submodel_message(clients[c].share_keys(broadcast).to_bytes()))
    routed = server.route_shares()
    gone |= drop.get(Stage.MASKED_INPUT, set())
    for c in sorted(set(routed) - gone):
        u = updates[c]
        shares = decode_submodel_message(routed[c].to_bytes())
        message = decode_submodel_message(clients[c].masked_input(
            shares, u.dense, u.weight, row_values=u.row_values,
            row_counts=u.row_counts).to_bytes())
        masked[c] = message
        if c not in withhold:
            server.receive(message)
    request = server.request_unmask()
    gone |= drop.get(Stage.UNMASK, set())
    for c in sorted(set(request.alive) - gone):
        own = decode_submodel_message(server.unmask_request_for(c).to_bytes())
        responses[c] = decode_submodel_message(clients[c].unmask(own).to_bytes())
        server.receive(responses[c])
    result = server.aggregate()
    return _Round(config, updates, advertised, masked, responses, server, result)


class _Adversary:
    """A server that keeps every message and removes every mask it can from one client's
    block: self-mask and masking keys rebuilt from the shares it was sent, the pairwise masks
    they give, and the row masks whose seeds it was sent. Only public hazmat functions."""

    def __init__(self, r: _Round) -> None:
        self.r, c = r, r.config
        ids = sorted(r.advertised)
        self.position = {cid: i + 1 for i, cid in enumerate(ids)}
        digests = {cid: key_digest(m.enc_public, m.mask_public) for cid, m in r.advertised.items()}
        seed = graph_seed(digests, run_id=c.run_id, round_id=c.round_id)
        self.graph = communication_graph(ids, c.num_neighbours, seed)

    def _secret(self, owner: int, kind: str) -> bytes | None:
        shares = [shamir.Share.from_bytes(self.position[h], getattr(resp, kind)[owner])
                  for h, resp in sorted(self.r.responses.items()) if owner in getattr(resp, kind)]
        if len(shares) < self.r.config.threshold:
            return None
        return shamir.combine(shares, self.r.config.threshold)

    def residual(self, u: int, row: int) -> np.ndarray:
        """u's block of ``row`` with every mask the adversary knows removed."""
        c, rows = self.r.config, self.r.updates[u].rows
        width = c.block_width
        masked = np.asarray(self.r.masked[u].masked)
        i = int(np.searchsorted(rows, row))
        block = masked[i * width:(i + 1) * width].copy()
        seed = self._secret(u, "self_mask_shares")
        if seed is not None and not c.row_floor:  # floor off: the self mask covers the rows
            self_seed = derive_key(seed, purpose="self-mask", run_id=c.run_id,
                                   round_id=c.round_id, u=u, v=u)
            block -= expand_mask(self_seed, masked.size)[i * width:(i + 1) * width]
        response = self.r.responses.get(u)
        if response is not None and row in response.rows:
            at = int(np.searchsorted(response.rows, row))
            seeds = np.frombuffer(response.row_seeds, np.uint8).reshape(-1, 16)
            block -= expand_rows(seeds[at:at + 1], width)[0]
        for v in sorted(self.graph[u]):
            key = self._secret(v, "key_shares")
            if key is None or row not in self.r.updates[v].rows:
                continue
            common = np.intersect1d(rows, self.r.updates[v].rows)
            pair_seed = derive_key(KeyPair.from_private_bytes(key).exchange(
                self.r.advertised[u].mask_public), purpose="mask", run_id=c.run_id,
                round_id=c.round_id, u=u, v=v)
            stream = expand_mask(pair_seed, c.layout_length(common.size))
            j = int(np.searchsorted(common, row))
            part = stream[j * width:(j + 1) * width]
            block = block - part if u < v else block + part
        return block


def _revealed(r: _Round, u: int) -> set[int]:
    return set(r.responses[u].rows.tolist()) if u in r.responses else set()


# -- honest server ----------------------------------------------------------------------
def test_honest_server_releases_no_row_below_the_floor_and_every_other_row_exactly():
    config = _config()
    assert config.min_row_holders == DEFAULT_MIN_ROW_HOLDERS == 2  # on by default
    updates = _updates(0)
    r = _drive(config, updates)
    holders = _holders(updates, range(N))
    single = np.flatnonzero(holders == 1)
    crowd = np.flatnonzero(holders >= 2)
    assert single.size >= 5 and crowd.size >= 10
    result = r.result
    assert not result.row_counts[single].any() and not result.row_sums[single].any()
    assert not result.ring_rows[single].any()
    assert result.rows_withheld == single.size == result.row_slots_withheld
    assert result.withheld_holders[single].tolist() == [1] * single.size
    adversary = _Adversary(r)
    for j in single:
        [u] = [c for c in range(N) if j in updates[c].rows]
        assert j not in _revealed(r, u)  # no seed: the block stays masked
        residual = adversary.residual(u, j)
        assert not np.array_equal(residual, _block(config, updates[u], j))
        assert int(residual[-1]) not in (0, 1)  # no count: the true bit is under a mask
    # every other row: the plaintext sum and count, exactly (values are exact in the ring)
    table = np.zeros((V, W + 1), np.uint32)
    for u in updates.values():
        for j in u.rows:
            if holders[j] >= 2:
                table[j] += _block(config, u, j)
    assert np.array_equal(result.ring_rows, table)
    assert result.row_holders[crowd].tolist() == holders[crowd].tolist()
    expected_counts = np.zeros(V, np.int64)
    for u in updates.values():
        np.add.at(expected_counts, u.rows, u.row_counts)
    assert result.row_counts[crowd].tolist() == expected_counts[crowd].tolist()
    assert np.array_equal(result.ring_dense, sum(_tail(config, u) for u in updates.values()))
    assert result.total_weight == sum(u.weight for u in updates.values())


def test_without_the_floor_an_honest_server_sees_every_single_holder_row_in_clear():
    # the attack as reported: with the floor off every single-holder row is one client's
    # exact update and true bit (the adversary's residual is the plaintext block)
    config = _config(min_row_holders=1)
    updates = _updates(0)
    r = _drive(config, updates)
    adversary = _Adversary(r)
    single = np.flatnonzero(_holders(updates, range(N)) == 1)
    revealed = 0
    for j in single:
        [u] = [c for c in range(N) if j in updates[c].rows]
        revealed += np.array_equal(adversary.residual(u, j), _block(config, updates[u], j))
    assert revealed == single.size >= 5
    assert r.result.rows_withheld == 0


# -- a malicious server: liveness lies --------------------------------------------------
def _targets(updates, low, high):
    holders = _holders(updates, range(N))
    return [j for j in range(V) if low <= holders[j] <= high]


@pytest.mark.parametrize("floor", [1, 2, 3])
def test_declaring_the_other_holders_dropped_yields_neither_count_nor_sum(floor):
    # For each row held by 2..5 clients (dropping the others leaves >= t = 6 alive), the
    # server withholds the masked inputs of all holders but the first, declares them
    # dropped, rebuilds their masking keys and strips their pairwise masks from the first
    # holder's block. Without the floor it learns that client's update and true bit.
    updates = _updates(1)
    config = _config(min_row_holders=floor)
    targets = _targets(updates, 2, 1 + N - T)[:8]
    assert len(targets) >= 5
    learned = 0
    for j in targets:
        holders = [c for c in range(N) if j in updates[c].rows]
        victim, others = holders[0], holders[1:]
        r = _drive(config, updates, withhold=others)
        assert set(r.result.dropped) == set(others)
        plain = _block(config, updates[victim], j)
        residual = _Adversary(r).residual(victim, j)
        learned += np.array_equal(residual, plain)
        if floor > 1:
            assert j not in _revealed(r, victim)
            assert int(residual[-1]) not in (0, 1)
            assert r.result.row_counts[j] == 0 and not r.result.row_sums[j].any()
            assert r.result.withheld_holders[j] == 1 and r.result.row_holders[j] == 0
    assert learned == (len(targets) if floor == 1 else 0)


def test_a_server_can_shrink_a_crowd_to_the_floor_and_then_gets_only_the_crowd_sum():
    # What remains (docs/submodel.md): dropping all holders but two leaves a crowd of 2 =
    # the floor; the row is released as the sum of the two, but neither block alone: the
    # pairwise mask joining them stays on each.
    updates = _updates(2)
    config = _config()
    targets = _targets(updates, 3, 2 + N - T)
    assert targets
    for j in targets[:4]:
        holders = [c for c in range(N) if j in updates[c].rows]
        a, b, others = holders[0], holders[1], holders[2:]
        r = _drive(config, updates, withhold=others)
        assert j in _revealed(r, a) and j in _revealed(r, b)
        pair = _block(config, updates[a], j) + _block(config, updates[b], j)
        assert np.array_equal(r.result.ring_rows[j], pair)
        assert r.result.row_holders[j] == 2
        adversary = _Adversary(r)
        for u in (a, b):
            assert not np.array_equal(adversary.residual(u, j), _block(config, updates[u], j))


# -- dropouts ------------------------------------------------------------------------------
@pytest.mark.parametrize("floor", [2, 3])
@pytest.mark.parametrize("stage", _config().stages, ids=lambda s: s.value)
def test_exact_under_dropouts_at_every_stage(stage, floor):
    # Complete graph: a row's crowd is all its alive holders; it is released when it has at
    # least `floor` of them and every one answered the unmask request (a client that drops
    # after its masked input reveals no seed: its crowds are withheld, its dense part is
    # still recovered from the shares of its self mask).
    updates = _updates(3)
    config = _config(min_row_holders=floor)
    dropped = {1, 6}
    r = _drive(config, updates, drop={stage: dropped})
    alive = set(range(N)) - (dropped if stage is not Stage.UNMASK else set())
    responders = set(range(N)) - dropped
    assert set(r.result.survivors) == alive
    holders = _holders(updates, alive)
    table = np.zeros((V, W + 1), np.uint32)
    withheld = np.zeros(V, np.int64)
    for j in range(V):
        crowd = [c for c in alive if j in updates[c].rows]
        if len(crowd) >= floor and set(crowd) <= responders:
            for c in crowd:
                table[j] += _block(config, updates[c], j)
        else:
            withheld[j] = len(crowd)
    assert np.array_equal(r.result.ring_rows, table)
    assert r.result.withheld_holders.tolist() == withheld.tolist()
    assert r.result.row_holders.tolist() == (holders - withheld).tolist()
    assert np.array_equal(r.result.ring_dense, sum(_tail(config, updates[c]) for c in alive))
    if stage is Stage.UNMASK:  # the dropouts' rows are withheld, their dense part is not
        assert all(withheld[updates[c].rows].all() for c in dropped)


# -- a SecAgg+ graph: crowds are connected neighbour holders ------------------------------
@pytest.mark.parametrize("floor", [2, 3])
def test_on_a_secagg_plus_graph_whole_crowds_of_at_least_the_floor_are_released(floor):
    n = 16
    updates = _updates(4, n)
    config = _config(num_clients=n, num_neighbours=4, threshold=3, min_row_holders=floor)
    r = _drive(config, updates)
    graph = _Adversary(r).graph
    table = np.zeros((V, W + 1), np.uint32)
    released_crowds = withheld_blocks = 0
    for j in range(V):
        crowd_of = {c: {c} for c in range(n) if j in updates[c].rows}
        for c in crowd_of:  # connected components of the holders in the graph
            for v in graph[c]:
                if v in crowd_of and crowd_of[v] is not crowd_of[c]:
                    merged = crowd_of[c] | crowd_of[v]
                    for x in merged:
                        crowd_of[x] = merged
        for crowd in {id(s): s for s in crowd_of.values()}.values():
            # each member counts itself and its neighbours in the crowd
            if all(1 + len(graph[c] & crowd) >= floor for c in crowd):
                assert len(crowd) >= floor
                released_crowds += 1
                for c in crowd:
                    assert j in _revealed(r, c)
                    table[j] += _block(config, updates[c], j)
            else:
                withheld_blocks += len(crowd)
    assert np.array_equal(r.result.ring_rows, table)
    assert r.result.row_slots_withheld == withheld_blocks > 0 and released_crowds > 0
    for c in range(n):  # a client reveals exactly the rows where its crowd meets the floor
        crowd = {j for j in updates[c].rows.tolist()
                 if 1 + sum(j in updates[v].rows for v in graph[c]) >= floor}
        assert _revealed(r, c) == crowd


# -- the client's own floor -----------------------------------------------------------------
def test_a_client_refuses_a_config_below_its_own_floor():
    with pytest.raises(SecAggPolicyError, match=r"client 4 refuses the round: min_row_holders "
                                                r"= 1 is below its floor 2"):
        SubmodelSecAggClient(_config(min_row_holders=1), 4, np.array([1, 2]))
    with pytest.raises(SecAggPolicyError, match="min_row_holders = 2 is below its floor 3"):
        SubmodelSecAggClient(_config(), 4, np.array([1]), min_row_holders=3)
    SubmodelSecAggClient(_config(min_row_holders=1), 4, np.array([1]), min_row_holders=1)
    SubmodelSecAggClient(_config(min_row_holders=5), 4, np.array([1]))  # a higher floor: fine


@pytest.mark.parametrize(("fields", "message"), [
    ({"min_row_holders": 0}, r"min_row_holders=0 must be an integer in \[1, 10\]"),
    ({"min_row_holders": 11}, r"min_row_holders=11 must be an integer in \[1, 10\]"),
    ({"num_neighbours": 4, "threshold": 3, "min_row_holders": 6},
     r"min_row_holders=6 must be an integer in \[1, 5\]"),
    ({"min_row_holders": 2.0}, r"min_row_holders=2.0 must be an integer"),
])
def test_config_floor_validation(fields, message):
    with pytest.raises(SecAggConfigError, match=message):
        _config(**fields)


@pytest.mark.parametrize("floor", [0, True, 1.5])
def test_client_floor_validation(floor):
    with pytest.raises(SecAggConfigError, match=r"min_row_holders = .* expected an integer >= 1"):
        SubmodelSecAggClient(_config(), 1, np.array([1]), min_row_holders=floor)


@pytest.mark.parametrize("value", [0, "two", 2.5, True])
def test_node_row_floor_validation(value):
    with pytest.raises(SecAggConfigError, match=r"node config secagg-min-row-holders = .* is "
                                                r"invalid .*fix the node's --node-config"):
        node_row_floor({"secagg-min-row-holders": value})


def test_node_row_floor_reads_the_key_or_defaults_to_two():
    assert node_row_floor({}) == 2 and node_row_floor({"secagg-min-row-holders": 4}) == 4
    assert node_row_floor({"secagg-min-row-holders": 3.0}) == 3


# -- wire format and server checks --------------------------------------------------------
def _response(**changes) -> SubmodelUnmaskResponse:
    base = dict(run_id=3, round_id=7, client_id=2, self_mask_shares=MappingProxyType(
        {2: bytes(66)}), key_shares=MappingProxyType({}), rows=np.array([1, 5]),
        row_seeds=bytes(range(32)))
    return SubmodelUnmaskResponse(**{**base, **changes})


def test_unmask_response_round_trips_and_is_strict():
    message = _response()
    data = message.to_bytes()
    assert data[4] == SUBMODEL_WIRE_VERSION == 3 and data[5] == 14
    decoded = decode_submodel_message(data)
    assert isinstance(decoded, SubmodelUnmaskResponse) and isinstance(decoded, UnmaskResponse)
    assert decoded.rows.tolist() == [1, 5] and decoded.row_seeds == bytes(range(32))
    assert dict(decoded.self_mask_shares) == {2: bytes(66)}
    assert "redacted" in repr(decoded) and "\\x00" not in repr(decoded)
    with pytest.raises(SecAggProtocolError, match="submodel wire version 2 unsupported"):
        decode_submodel_message(data[:4] + bytes([2]) + data[5:])
    with pytest.raises(SecAggProtocolError, match="truncated"):
        decode_submodel_message(data[:-1])
    with pytest.raises(SecAggProtocolError, match="trailing bytes"):
        decode_submodel_message(data + b"\0")
    spliced = data[:22] + _response(round_id=8).to_bytes()[22:]  # outer round 7, inner 8
    with pytest.raises(SecAggProtocolError, match="wraps an UnmaskResponse of run 3 round 8"):
        decode_submodel_message(spliced)
    with pytest.raises(SecAggProtocolError, match="31 bytes of row seeds for 2 rows"):
        _response(row_seeds=bytes(31))


def _altering_server(victim: int, rows: np.ndarray, rejected: list):
    """A server class that replaces ``victim``'s revealed rows by ``rows`` on arrival."""

    class Server(SubmodelSecAggServer):
        def receive(self, message):
            if isinstance(message, SubmodelUnmaskResponse) and message.client_id == victim:
                message = dataclasses.replace(message, rows=rows, row_seeds=bytes(16 * rows.size))
                try:
                    return super().receive(message)
                except SecAggProtocolError as exc:
                    rejected.append(str(exc))
                    return None
            return super().receive(message)

    return Server


@pytest.mark.parametrize(("floor", "message"), [
    (2, "reveals row seeds of rows outside its S''"),
    (1, "reveals row seeds although the floor is off"),
])
def test_server_rejects_seeds_outside_the_senders_set_or_with_the_floor_off(floor, message):
    updates = _updates(5)
    victim = next(c for c in range(N) if 0 < updates[c].rows.size and 39 not in updates[c].rows)
    own = updates[victim].rows
    rows = np.append(own, 39) if floor > 1 else own[:1]  # row 39 is not in its S''
    rejected: list[str] = []
    r = _drive(_config(min_row_holders=floor), updates,
               server_cls=_altering_server(victim, rows, rejected))
    assert len(rejected) == 1 and message in rejected[0]
    if floor > 1:  # the rejected client counts as not having unmasked: its crowds withheld
        assert r.result.withheld_holders[own].all()
    else:  # its self mask is rebuilt from the others' shares: nothing is withheld
        assert r.result.rows_withheld == 0


# -- hazmat: per-row seeds and masks (independent AES) -------------------------------------
def test_row_seeds_and_masks_are_aes_of_the_row_id_and_aes_ctr_of_the_seed():
    key = bytes(range(16))
    rows = np.array([0, 7, 2**40])
    seeds = row_seeds(key, rows)
    for i, r in enumerate(rows.tolist()):
        block = b"FKROW\0\0\0" + r.to_bytes(8, "big")
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        assert seeds[i].tobytes() == enc.update(block) + enc.finalize()
    masks = expand_rows(seeds, 5)
    for i in range(rows.size):
        enc = Cipher(algorithms.AES(seeds[i].tobytes()), modes.CTR(bytes(16))).encryptor()
        assert masks[i].tobytes() == enc.update(bytes(20))
    assert expand_rows(seeds, 3, bits=64).dtype == np.uint64
    with pytest.raises(ValueError, match="row key must be 16 bytes, got 32"):
        row_seeds(bytes(32), rows)
    with pytest.raises(ValueError, match=r"row ids must lie in \[0, 2\^63\), got -1"):
        row_seeds(key, np.array([-1]))
    with pytest.raises(ValueError, match=r"row seeds have shape \(2, 8\), expected"):
        expand_rows(np.zeros((2, 8), np.uint8), 3)
    with pytest.raises(ValueError, match="row width=0 must be a positive integer"):
        expand_rows(seeds, 0)


# -- Flower: the round log and the node's own floor -----------------------------------------
def _small(tmp_path, **changes) -> RunConfig:
    base = dict(name="crowds", task="submodel", dataset="synthetic-rec", num_items=80,
                num_clients=6, clients_per_round=5, rounds=1, embedding_dim=3,
                negatives_per_positive=1, lr=0.1, batch_size=8, eval_every=0, progress=False,
                submodel_mode="secure", submodel_preset="cpp1",
                output_dir=str(tmp_path / "out"))
    return RunConfig(**{**base, **changes})


def _run(cfg, app=fedkit_app):
    grid = InProcessGrid(app, num_nodes=cfg.num_clients, run_config=cfg.to_dict(), seed=cfg.seed)
    return run_submodel_server(grid, cfg, runtime="inprocess")


def test_withheld_rows_are_dropped_and_counted_in_the_round_log(tmp_path):
    # cpp1 gives S'' = S: the crowd of an item is its holders among the round's clients
    # (complete graph). Items with one holder are withheld -- not updated, counted -- and
    # every other row gets the plaintext average, as in the plain mode.
    secure = _small(tmp_path / "s")
    log, model = _run(secure)
    plain_log, plain_model = _run(_small(tmp_path / "p", submodel_mode="plain"))
    record = log.rounds[0]
    data = load_rec_data(secure)
    holders = np.zeros(80, np.int64)
    for c in record["clients"]:
        holders[real_set(secure, data, c)] += 1
    single = np.flatnonzero(holders == 1)
    assert single.size > 0 and record["min_row_holders"] == 2
    assert record["rows_withheld"] == single.size == record["row_slots_withheld"]
    items, _ = initial_model(secure, data.num_items)
    np.testing.assert_array_equal(model["items"][single], items[single])  # unchanged
    assert not np.allclose(plain_model["items"][single], items[single])  # plain updates them
    crowd = np.flatnonzero(holders >= 2)
    np.testing.assert_allclose(model["items"][crowd], plain_model["items"][crowd], atol=1e-5)
    for key in ("w", "c"):  # the dense part is not affected by the floor
        np.testing.assert_allclose(model[key], plain_model[key], atol=1e-5)
    assert record["rows_updated"] == plain_log.rounds[0]["rows_updated"] - single.size


def test_a_node_refuses_a_server_that_turns_the_floor_off(tmp_path):
    log, _ = _run(_small(tmp_path, submodel_min_row_holders=1))
    record = log.rounds[0]
    assert record["aborted"] and not record["model_updated"]
    reasons = list(record["dropped"].values())
    assert len(reasons) == 5
    assert all("min_row_holders = 1 is below its floor 2" in why for why in reasons)

    def lenient(msg, context):
        context.node_config["secagg-min-row-holders"] = 1
        return fedkit_app(msg, context)

    log, _ = _run(_small(tmp_path / "lenient", submodel_min_row_holders=1), lenient)
    assert log.rounds[0]["model_updated"] and log.rounds[0]["rows_withheld"] == 0
