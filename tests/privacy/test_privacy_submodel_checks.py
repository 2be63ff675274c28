"""Submodel-aware secure aggregation: config, inputs, wire format, tampering, persistence."""

from __future__ import annotations

import re
import struct
from types import MappingProxyType

import numpy as np
import pytest

from fedkit.privacy.secagg import (
    AdvertiseKeys,
    KeysBroadcast,
    SecAggConfigError,
    SecAggProtocolError,
    SecAggStateError,
    Stage,
    decode_message,
)
from fedkit.privacy.submodel import (
    SubmodelAdvertiseKeys,
    SubmodelKeysBroadcast,
    SubmodelSecAggClient,
    SubmodelSecAggConfig,
    SubmodelSecAggServer,
    SubmodelUpdate,
    decode_submodel_message,
    run_submodel_secagg,
)

ROWS = {0: [0, 2], 1: [2, 3], 2: [1, 2, 4]}


def _config(**fields):
    base = {"num_clients": 3, "num_rows": 5, "row_width": 2, "vector_length": 1, "threshold": 3}
    return SubmodelSecAggConfig(**{**base, **fields})


def _update(cid, rows=None):
    rows = np.array(ROWS[cid] if rows is None else rows)
    return SubmodelUpdate(rows, np.full((rows.size, 2), 0.5), np.ones(rows.size), np.ones(1))


def _to_masked_input(config=None, rows=None):
    """Clients and server after share keys; returns (clients, server, routed shares)."""
    config = config or _config()
    rows = rows or ROWS
    clients = {cid: SubmodelSecAggClient(config, cid, np.array(r)) for cid, r in rows.items()}
    server = SubmodelSecAggServer(config, client_ids=list(rows))
    for client in clients.values():
        server.receive(decode_submodel_message(client.advertise_keys().to_bytes()))
    server.broadcast_keys()
    keys = {cid: server.keys_for(cid).to_bytes() for cid in server.roster}
    for cid, client in clients.items():
        server.receive(client.share_keys(decode_submodel_message(keys[cid])))
    return clients, server, server.route_shares()


# -- config and row sets -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_rows": 0}, r"num_rows=0 must be an integer in \[1,"),
        ({"row_width": 0}, r"row_width=0 must be an integer in \[1,"),
        ({"row_width": 1.5}, r"row_width=1.5 must be an integer"),
        ({"vector_length": 0}, r"vector_length=0 must be an integer in \[1,"),
        ({"threshold": 4}, r"threshold=4 must be an integer in \[2, 3\]"),
    ],
)
def test_config_validation(fields, message):
    with pytest.raises(SecAggConfigError, match=message):
        _config(**fields)


def test_config_layout_and_named_constructor():
    config = _config()
    assert config.block_width == 3 and config.layout_length(0) == 2
    assert config.layout_length(4) == 14
    plus = SubmodelSecAggConfig.secagg_plus(
        num_clients=100, vector_length=3, num_rows=10, row_width=4
    )
    assert plus.num_neighbours == 14 and plus.threshold == 8 and plus.num_rows == 10


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[0, 1]], r"row set has shape \(1, 2\), expected 1-D"),
        ([0.0, 1.0], "row set has dtype float64, expected integer row ids"),
        ([0, 5], r"row ids must lie in \[0, num_rows=5\), got \[0, 5\]"),
        ([-1, 2], r"row ids must lie in \[0, num_rows=5\), got \[-1, 2\]"),
        ([2, 1], "row ids must be strictly increasing"),
        ([1, 1], "row ids must be strictly increasing"),
    ],
)
def test_client_refuses_an_invalid_row_set(rows, message):
    with pytest.raises(SecAggConfigError, match=f"client 7: {message}"):
        SubmodelSecAggClient(_config(), 7, np.array(rows))


def test_parties_refuse_a_plain_secagg_config():
    from fedkit.privacy.secagg import SecAggConfig

    plain = SecAggConfig(num_clients=3, vector_length=1, threshold=2)
    with pytest.raises(SecAggConfigError, match="expected SubmodelSecAggConfig"):
        SubmodelSecAggClient(plain, 0, np.array([1]))
    with pytest.raises(SecAggConfigError, match="expected SubmodelSecAggConfig"):
        SubmodelSecAggServer(plain)


# -- client inputs ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vector": np.ones(2)}, r"dense vector has shape \(2,\), expected \(1,\)"),
        ({"vector": np.array([np.nan])}, "dense vector must hold finite real numbers"),
        ({"weight": 2.0}, r"weight=2.0 must be in \[0, max_weight=1.0\]"),
        ({"row_values": None}, r"row_values missing, expected shape \(2, 2\)"),
        ({"row_values": np.ones((3, 2))}, r"row_values has shape \(3, 2\), expected \(2, 2\)"),
        ({"row_values": np.full((2, 2), np.inf)}, "row_values must hold finite real numbers"),
        ({"row_counts": None}, r"row_counts missing, expected shape \(2,\)"),
        ({"row_counts": np.ones(3)}, r"row_counts has shape \(3,\), expected \(2,\)"),
        ({"row_counts": np.array([1, 2])}, "row_counts must be 0 or 1"),
    ],
)
def test_masked_input_validation(kwargs, message):
    clients, _, shares = _to_masked_input()
    args = {"vector": np.ones(1), "weight": 1.0, "row_values": np.ones((2, 2))}
    args["row_counts"] = np.array([1, 0])
    args.update(kwargs)
    with pytest.raises(SecAggProtocolError, match=f"client 0: {message}"):
        clients[0].masked_input(shares[0], **args)
    assert clients[0].stage is None  # stopped
    with pytest.raises(SecAggStateError, match="stopped after a failed check"):
        clients[0].unmask(None)


def test_a_client_with_an_empty_row_set_sends_only_the_dense_part():
    rows = {0: [], 1: [2, 3], 2: [2]}
    updates = {cid: _update(cid, r) for cid, r in rows.items()}
    result, report = run_submodel_secagg(updates, _config(), rng=np.random.default_rng(0))
    # row 3 has one holder: below the default floor of 2 it is withheld
    assert result.row_counts.tolist() == [0, 0, 2, 0, 0] and result.rows_withheld == 1
    assert np.allclose(result.row_sums[2], [1.0, 1.0], atol=1e-6)
    assert np.allclose(result.dense_sum, [3.0], atol=1e-6)
    header = 4 + 1 + 1 + 8 + 8 + 8 + 1 + 4  # header, client id, ring bits, count
    assert report.bytes_up[0][Stage.MASKED_INPUT] == header + 4 * 2
    assert report.bytes_up[2][Stage.MASKED_INPUT] == header + 4 * (3 + 2)


def test_a_pre_encoded_layout_can_be_submitted_as_a_ring_vector():
    """``masked_ring_input`` on a submodel client takes a vector of its layout length."""
    clients, server, shares = _to_masked_input()
    for cid, client in clients.items():
        length = client.config.layout_length(len(ROWS[cid]))
        server.receive(client.masked_ring_input(shares[cid], np.full(length, cid + 1, np.uint32)))
    request = server.request_unmask()
    for client in clients.values():
        server.receive(client.unmask(request))
    result = server.aggregate()
    # rows 0, 1, 3 and 4 have one holder each: withheld by the default floor of 2
    assert result.ring_rows[:, 0].tolist() == [0, 0, 1 + 2 + 3, 0, 0]
    assert result.ring_dense.tolist() == [6, 6]


# -- server checks ------------------------------------------------------------------------
def test_server_rejects_a_plain_advertise_keys_and_bad_row_sets():
    config = _config(threshold=2)
    server = SubmodelSecAggServer(config, client_ids=[0, 1, 2], rows={0: [0, 2], 1: [2, 3]})
    client = SubmodelSecAggClient(config, 0, np.array([0, 2]))
    good = client.advertise_keys()
    plain = AdvertiseKeys(0, 0, 0, good.enc_public, good.mask_public)
    with pytest.raises(SecAggProtocolError, match="expected SubmodelAdvertiseKeys"):
        server.receive(plain)

    def advertise(cid, rows):
        keys = SubmodelSecAggClient(config, cid, np.array([0])).advertise_keys()
        return SubmodelAdvertiseKeys(
            0, 0, cid, keys.enc_public, keys.mask_public, np.array(rows, dtype=np.int64)
        )

    with pytest.raises(SecAggProtocolError, match=r"row ids must lie in \[0, num_rows=5\)"):
        server.receive(advertise(1, [2, 7]))
    with pytest.raises(SecAggProtocolError, match=r"differs from the one it reported \(2 rows\)"):
        server.receive(advertise(1, [2]))
    with pytest.raises(SecAggProtocolError, match=r"differs from the one it reported \(none\)"):
        server.receive(advertise(2, [2]))
    server.receive(good)
    server.receive(advertise(1, [2, 3]))
    with pytest.raises(SecAggProtocolError, match="duplicate AdvertiseKeys from client 1"):
        server.receive(advertise(1, [2, 3]))
    # complete graph: each gets only the rows it shares with the other ({0, 2} & {2, 3}),
    # not the other's whole set
    server.broadcast_keys()
    broadcasts = {cid: server.keys_for(cid) for cid in server.roster}
    assert {cid: {v: r.tolist() for v, r in b.rows.items()} for cid, b in broadcasts.items()} == {
        0: {1: [2]},
        1: {0: [2]},
    }
    assert all(b.client_id == cid and set(b.public_keys) == {0, 1} for cid, b in broadcasts.items())


def test_server_rejects_a_masked_vector_of_another_layout():
    clients, server, shares = _to_masked_input()
    message = clients[1].masked_input(
        shares[1], np.ones(1), row_values=np.ones((2, 2)), row_counts=np.ones(2)
    )
    wrong = type(message)(message.run_id, message.round_id, 2, message.masked)  # 2 has 3 rows
    with pytest.raises(
        SecAggProtocolError,
        match=r"masked vector from client 2 has shape \(8,\) dtype uint32, expected \(11,\)",
    ):
        server.receive(wrong)
    server.receive(message)  # the state did not change: the honest message still goes in


# -- client checks on the keys broadcast ----------------------------------------------------
def _rows_tamper(change_fn, victim=1):
    def tamper(stage, direction, cid, data):
        if stage is Stage.SHARE_KEYS and direction == "down" and cid == victim:
            message = decode_submodel_message(data)
            rows = change_fn(dict(message.rows))
            return SubmodelKeysBroadcast(
                message.run_id,
                message.round_id,
                message.client_id,
                message.public_keys,
                MappingProxyType(rows),
            ).to_bytes()
        return data

    return tamper


@pytest.mark.parametrize(
    ("change_fn", "message"),
    [
        (
            lambda r: {v: s for v, s in r.items() if v != 2},
            r"the roster's row sets do not match its graph neighbours \(missing \[2\], not",
        ),
        (lambda r: {**r, 2: np.array([1, 9], np.int64)}, r"row set of client 2: row ids must lie"),
    ],
    ids=["neighbour-missing", "neighbour-out-of-range"],
)
def test_client_refuses_a_keys_broadcast_with_altered_rows(change_fn, message):
    config = _config(num_clients=4)
    updates = {cid: _update(cid) for cid in ROWS} | {3: _update(0, [0, 1])}
    result, report = run_submodel_secagg(
        updates, config, rng=np.random.default_rng(0), tamper_fn=_rows_tamper(change_fn)
    )
    [(stage, cid, error)] = report.rejected
    assert (stage, cid) == (Stage.SHARE_KEYS, 1)
    assert re.search(f"client 1: {message}", error)
    assert result.survivors == (0, 2, 3)
    assert result.row_counts.tolist() == [2, 2, 2, 0, 0]  # row 4 (client 2 alone): withheld


def test_client_refuses_a_plain_keys_broadcast():
    config = _config(threshold=2)
    clients = [SubmodelSecAggClient(config, cid, np.array([0, 2])) for cid in (0, 1)]
    adverts = [c.advertise_keys() for c in clients]
    keys = KeysBroadcast(
        0, 0, MappingProxyType({a.client_id: a.enc_public + a.mask_public for a in adverts})
    )
    client = clients[0]
    with pytest.raises(SecAggProtocolError, match="expected a SubmodelKeysBroadcast"):
        client.share_keys(keys)
    assert client.stage is None


# -- wire format ----------------------------------------------------------------------------
def _broadcast():
    keys = {cid: bytes([cid]) * 64 for cid in (3, 5, 8)}
    rows = {3: np.array([0, 4], np.int64), 8: np.array([], np.int64)}
    return SubmodelKeysBroadcast(1, 2, 5, MappingProxyType(keys), MappingProxyType(rows))


def test_messages_round_trip_and_decode_by_type():
    advert = SubmodelAdvertiseKeys(1, 2, 3, b"e" * 32, b"m" * 32, np.array([1, 5, 2**40]))
    decoded = decode_submodel_message(advert.to_bytes())
    assert isinstance(decoded, SubmodelAdvertiseKeys) and decoded.rows.tolist() == [1, 5, 2**40]
    assert (decoded.client_id, decoded.enc_public, decoded.mask_public) == (3, b"e" * 32, b"m" * 32)
    broadcast = decode_submodel_message(_broadcast().to_bytes())
    assert broadcast.rows[3].tolist() == [0, 4] and broadcast.rows[8].size == 0
    assert dict(broadcast.public_keys) == dict(_broadcast().public_keys)
    plain = AdvertiseKeys(1, 2, 3, b"e" * 32, b"m" * 32)
    assert isinstance(decode_submodel_message(plain.to_bytes()), AdvertiseKeys)
    with pytest.raises(SecAggProtocolError, match="unknown message type 8"):
        decode_message(advert.to_bytes())  # SecAgg alone does not know the submodel types


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"\0", "1 trailing bytes"),
        (lambda d: d[:4] + b"\x01" + d[5:], "wire version 1 unsupported"),
        (lambda d: d[:5] + b"\x09" + d[6:], "expected a SubmodelAdvertiseKeys message, got"),
        (lambda d: d[:94] + b"\x07" + d[95:], "unknown row-set encoding 7"),
        (lambda d: d[:98] + b"\x03" + d[99:], r"2 complete varints .*, expected 3"),  # count 3
    ],
)
def test_advertise_parsing_is_strict(mutate, message):
    data = SubmodelAdvertiseKeys(1, 2, 3, b"e" * 32, b"m" * 32, np.array([1, 5])).to_bytes()
    # rows start at byte 94: kind 0 (gaps), count 2, 2 bytes: 1, 5 - 1 - 1
    assert data[94:] == b"\x00" + struct.pack(">II", 2, 2) + bytes([1, 3])
    with pytest.raises(SecAggProtocolError, match=message):
        SubmodelAdvertiseKeys.from_bytes(mutate(data))


def test_keys_broadcast_parsing_is_strict():
    good = _broadcast()

    def variant(recipient=5, rows=None):
        rows = dict(good.rows) if rows is None else rows
        return SubmodelKeysBroadcast(
            1, 2, recipient, good.public_keys, MappingProxyType(rows)
        ).to_bytes()

    with pytest.raises(SecAggProtocolError, match="for client 6 lacks the recipient's own keys"):
        SubmodelKeysBroadcast.from_bytes(variant(recipient=6))
    with pytest.raises(SecAggProtocolError, match=r"row sets of clients \[9\] that are not"):
        SubmodelKeysBroadcast.from_bytes(variant(rows={9: np.array([1])}))
    with pytest.raises(SecAggProtocolError, match=r"row sets of clients \[5\] that are not"):
        SubmodelKeysBroadcast.from_bytes(variant(rows={5: np.array([1])}))
    data = good.to_bytes()
    start = len(data) - (4 + 19 + 17)  # u32 count, (id 3, rows [0, 4]), (id 8, no rows)
    first, second = data[start + 4 : start + 23], data[start + 23 :]
    swapped = data[: start + 4] + second + first
    with pytest.raises(SecAggProtocolError, match="unsorted or duplicate client ids"):
        SubmodelKeysBroadcast.from_bytes(swapped)
    with pytest.raises(SecAggProtocolError, match="truncated"):
        SubmodelKeysBroadcast.from_bytes(data[:-3])


def test_keys_broadcast_row_sets_grow_with_the_degree_not_the_cohort():
    # Every client holds 200 of 1 000 rows. A client's keys broadcast carries the keys of its
    # k neighbours (76 bytes each) and, of its k neighbours only, the rows it shares with each
    # (~40 of them); of every other roster client a 16-byte key digest (28 bytes with id and
    # length: the graph seed hashes them all).
    def download(n, k, seed=0):
        rng = np.random.default_rng(seed)
        rows = {cid: np.sort(rng.choice(1000, 200, replace=False)) for cid in range(n)}
        config = SubmodelSecAggConfig.secagg_plus(  # floor off: every block is summed
            num_clients=n, vector_length=1, num_rows=1000, row_width=1, num_neighbours=k,
            min_row_holders=1,
        )
        updates = {
            cid: SubmodelUpdate(r, np.zeros((200, 1)), np.ones(200), np.zeros(1))
            for cid, r in rows.items()
        }
        result, report = run_submodel_secagg(updates, config, rng=np.random.default_rng(seed))
        assert result.row_counts.sum() == 200 * n
        return np.mean([report.bytes_down[cid][Stage.SHARE_KEYS] for cid in range(n)])

    per_key, per_digest = 8 + 4 + 64, 8 + 4 + 16
    # id, gap-varint header, ~40 one-byte gaps (200 x 200 / 1000 shared rows, ~25 apart);
    # the whole set (bitmap header + 125 bytes) would be ~2.5x more
    per_set = 8 + 9 + 40
    per_neighbour = per_set + per_key - per_digest  # its keys and set instead of a digest
    small, large = download(12, 4), download(48, 4)
    assert large - small == pytest.approx(per_digest * (48 - 12), abs=4 * 8)  # digests only
    assert download(48, 12) - large == pytest.approx(per_neighbour * (12 - 4), abs=8 * 8)
    complete = download(12, 11)  # k = n - 1: the complete graph still works
    assert complete - small == pytest.approx(per_neighbour * (11 - 4), abs=7 * 8)


# -- persistence between stages -------------------------------------------------------------
def test_client_state_survives_between_stages():
    config = _config()
    clients, server, shares = _to_masked_input()
    restored = {
        cid: SubmodelSecAggClient.from_state(config, client.to_state())
        for cid, client in clients.items()
    }
    assert restored[2].rows.tolist() == [1, 2, 4] and "secrets=<redacted>" in repr(restored[2])
    for cid, client in restored.items():
        rows = len(ROWS[cid])
        server.receive(
            client.masked_input(
                shares[cid], np.ones(1), row_values=np.ones((rows, 2)), row_counts=np.ones(rows)
            )
        )
    request = server.request_unmask()
    for client in restored.values():
        server.receive(SubmodelSecAggClient.from_state(config, client.to_state()).unmask(request))
    result = server.aggregate()
    # the row key survives the state: row 2 (three holders) is exact; rows held by one client
    # are withheld by the default floor of 2
    assert result.row_counts.tolist() == [0, 0, 3, 0, 0]
    assert np.allclose(result.row_sums[:, 0], [0, 0, 3, 0, 0], atol=1e-6)
    with pytest.raises(SecAggStateError, match="lacks 'rows'"):
        SubmodelSecAggClient.from_state(config, clients[0].to_state().replace(b'"rows"', b'"rowz"'))
