"""The one exchange of fedkit's staged workflows: drops, duplicate and foreign replies, a
node answering for another, byte accounting, and the secure-aggregation stages over it."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, Metadata, MetricRecord, RecordDict

from fedkit.flower.runtime.inprocess import InProcessGrid
from fedkit.flower.secagg.exchange import Exchange, FlowerStages
from fedkit.flower.secagg.records import EXCHANGE_RECORD, content_bytes, reply_record
from fedkit.privacy.secagg import (
    SecAggConfig,
    SecAggServer,
    Stage,
    decode_message,
    run_stages,
)


def echo_app(msg: Message, context) -> Message:
    """Reply the partition id; partition 4 fails."""
    pid = context.node_config["partition-id"]
    if pid == 4:
        raise ConnectionError("node 4 went away")
    return Message(RecordDict({"metrics": MetricRecord({"pid": pid})}), reply_to=msg)


class TamperedGrid(InProcessGrid):
    """An in-process grid whose replies pass through ``tamper(replies, sent)`` first."""

    tamper = staticmethod(lambda replies, sent: replies)

    def send_and_receive(self, messages, *, timeout=None):
        sent = list(messages)
        return self.tamper(list(super().send_and_receive(sent, timeout=timeout)), sent)


def nodes_of(grid) -> dict[int, int]:
    return {ctx.node_config["partition-id"]: node for node, ctx in grid.contexts.items()}


def content(cid: int) -> RecordDict:
    return RecordDict({"config": ConfigRecord({"client": cid})})


def forged(reply: Message, *, src_node_id: int | None = None,
           reply_to: str | None = None) -> Message:
    """A copy of ``reply`` claiming another sender or answering another message."""
    m = reply.metadata
    metadata = Metadata(run_id=m.run_id, message_id=m.message_id,
                        src_node_id=m.src_node_id if src_node_id is None else src_node_id,
                        dst_node_id=m.dst_node_id,
                        reply_to_message_id=reply_to or m.reply_to_message_id,
                        group_id=m.group_id, created_at=m.created_at, ttl=m.ttl,
                        message_type=m.message_type)
    return Message(metadata=metadata, content=reply.content)


def test_good_replies_arrive_by_client_id_and_failures_are_dropped_with_a_reason(caplog):
    grid = InProcessGrid(echo_app, num_nodes=6, run_config={})
    ex = Exchange(grid, nodes_of(grid), server_round=3, timeout=None, purpose="test")
    with caplog.at_level(logging.WARNING):
        replies = ex.send("ping", {cid: content(cid) for cid in range(6)})
    assert sorted(replies) == [0, 1, 2, 3, 5]
    assert all(int(r.content["metrics"]["pid"]) == cid for cid, r in replies.items())
    assert ex.failed == {4: "ping: client error: ConnectionError: node 4 went away"}
    assert "client 4 dropped at ping" in caplog.text
    assert ex.alive(range(6)) == [0, 1, 2, 3, 5]
    # a dropped client stays dropped for the round: the next phase does not resurrect it
    ex.send("again", {cid: content(cid) for cid in ex.alive(range(6))})
    assert set(ex.failed) == {4} and ex.count == 2


def test_a_missing_node_is_dropped_as_unavailable():
    grid = InProcessGrid(echo_app, num_nodes=3, run_config={})
    nodes = {**nodes_of(grid), 9: 12345}  # no such node
    ex = Exchange(grid, nodes, server_round=1, timeout=None)
    replies = ex.send("ping", {cid: content(cid) for cid in (0, 9)})
    assert sorted(replies) == [0]
    assert ex.failed[9].startswith("ping: client error:") and "does not exist" in ex.failed[9]


def test_duplicate_and_foreign_replies_are_ignored(caplog):
    grid = TamperedGrid(echo_app, num_nodes=4, run_config={})

    def duplicate_and_inject(replies, sent):
        stray = forged(replies[0], reply_to="no-such-message")
        return [*replies, replies[1], stray]

    grid.tamper = duplicate_and_inject
    ex = Exchange(grid, nodes_of(grid), server_round=1, timeout=None)
    with caplog.at_level(logging.WARNING):
        replies = ex.send("ping", {cid: content(cid) for cid in range(4)})
    assert sorted(replies) == [0, 1, 2, 3] and ex.failed == {}
    assert caplog.text.count("ignored an unexpected or duplicate reply") == 2
    # the ignored copies are not counted as bytes received
    assert ex.phase_up["ping"] == sum(content_bytes(r.content) for r in replies.values())


def test_a_reply_from_another_node_drops_the_addressee():
    grid = TamperedGrid(echo_app, num_nodes=4, run_config={})
    nodes = nodes_of(grid)

    def from_node_of_client_2(replies, sent):
        # client 1's reply claims to come from client 2's node
        return [forged(r, src_node_id=nodes[2]) if r.metadata.src_node_id == nodes[1] else r
                for r in replies]

    grid.tamper = from_node_of_client_2
    ex = Exchange(grid, nodes, server_round=1, timeout=None)
    replies = ex.send("ping", {cid: content(cid) for cid in range(4)})
    assert sorted(replies) == [0, 2, 3]
    assert ex.failed == {1: f"ping: reply came from node {nodes[2]}, expected node {nodes[1]}"}


def test_bytes_are_what_flower_serialises_per_client_and_phase():
    grid = InProcessGrid(echo_app, num_nodes=3, run_config={})
    ex = Exchange(grid, nodes_of(grid), server_round=1, timeout=None)
    sent = {cid: content(cid) for cid in range(3)}
    replies = ex.send("ping", sent)
    assert ex.phase_down == {"ping": sum(content_bytes(c) for c in sent.values())}
    assert ex.bytes_up == {cid: content_bytes(replies[cid].content) for cid in range(3)}
    down, up, down_by_phase, _ = ex.mean_bytes()
    assert down == pytest.approx(ex.phase_down["ping"] / 3)
    assert up == pytest.approx(sum(ex.bytes_up.values()) / 3)
    assert down_by_phase == {"ping": pytest.approx(down)}


# -- the secure-aggregation stages over the exchange ---------------------------------------
VECTORS = {cid: np.linspace(-0.5, 0.5, 5) * (cid + 1) / 8 for cid in range(6)}


def protocol_app(speaks_for: dict[int, int] | None = None):
    """A ClientApp answering every stage with a protocol client; partition ``p`` claims to be
    ``speaks_for[p]`` in its protocol messages."""
    from fedkit.flower.secagg.client_state import client_stage

    speaks_for = speaks_for or {}

    def app(msg: Message, context) -> Message:
        record = msg.content.config_records[EXCHANGE_RECORD]
        pid = context.node_config["partition-id"]
        if pid in speaks_for:
            record = ConfigRecord({**dict(record.items()), "client-id": speaks_for[pid]})
        stage = Stage(record["phase"])
        payload = client_stage(context, stage, record, masked_fn=lambda client, shares:
                               client.masked_input(shares, VECTORS[pid], 1.0))
        return Message(RecordDict({EXCHANGE_RECORD: reply_record(stage.value, payload)}),
                       reply_to=msg)

    return app


def secure_sum(app, num_neighbours=None):
    grid = InProcessGrid(app, num_nodes=6, run_config={})
    ex = Exchange(grid, nodes_of(grid), server_round=2, timeout=None)
    # a strict majority of each neighbourhood, the clients' default floor (ClientPolicy)
    config = SecAggConfig(num_clients=6, vector_length=5,
                          threshold=4 if num_neighbours is None else 3,
                          num_neighbours=num_neighbours, round_id=2)
    transport = FlowerStages(ex, config)
    run = run_stages(SecAggServer(config, client_ids=range(6)), range(6), transport,
                     decode_fn=decode_message)
    return run.result, ex, transport


@pytest.mark.parametrize("num_neighbours", [None, 2])
def test_the_stages_over_the_exchange_give_the_exact_sum(num_neighbours):
    result, ex, transport = secure_sum(protocol_app(), num_neighbours)
    assert ex.failed == {} and result.survivors == tuple(range(6))
    np.testing.assert_allclose(result.weighted_sum, sum(VECTORS.values()), atol=1e-6)
    assert ex.count == 4 and transport.sent_to(Stage.UNMASK) == tuple(range(6))


def test_the_parameters_travel_once_per_instance():
    stated: dict[str, set[int]] = {}
    inner = protocol_app()

    def app(msg, context):
        record = msg.content.config_records[EXCHANGE_RECORD]
        if any(k.startswith("secagg-") for k in record.keys()):
            stated.setdefault(record["phase"], set()).add(context.node_config["partition-id"])
        return inner(msg, context)

    secure_sum(app)
    assert stated == {Stage.ADVERTISE_KEYS.value: set(range(6))}


def test_a_node_cannot_speak_for_another_over_the_exchange():
    result, ex, _ = secure_sum(protocol_app(speaks_for={3: 5}))
    assert "one node cannot speak for another" in ex.failed[3]
    assert result.survivors == (0, 1, 2, 4, 5)
    np.testing.assert_allclose(
        result.weighted_sum, sum(v for c, v in VECTORS.items() if c != 3), atol=1e-6)
