"""FedAvg: exact weighted means, and bad replies rejected without touching the aggregate."""

import logging

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fedkit.algorithms import CLIENT_ID_QUERY, FedAvg, weighted_mean
from fedkit.flower import InProcessGrid


def test_weighted_mean_hand_computed():
    a = [np.array([0.0, 2.0], dtype=np.float32), np.array([[1.0]], dtype=np.float32)]
    b = [np.array([3.0, 5.0], dtype=np.float32), np.array([[4.0]], dtype=np.float32)]
    out = weighted_mean([a, b], [2, 1])
    # (2*0 + 1*3)/3 = 1, (2*2 + 5)/3 = 3, (2*1 + 4)/3 = 2
    np.testing.assert_array_equal(out[0], np.array([1.0, 3.0], dtype=np.float32))
    np.testing.assert_array_equal(out[1], np.array([[2.0]], dtype=np.float32))
    assert out[0].dtype == np.float32


def test_weighted_mean_errors():
    with pytest.raises(ValueError, match="expected equal, >= 1"):
        weighted_mean([], [])
    with pytest.raises(ValueError, match="positive sum"):
        weighted_mean([[np.zeros(1)]], [0])
    with pytest.raises(ValueError, match="expected equal"):
        weighted_mean([[np.zeros(1)]], [1, 2])


REFERENCE = {"w": np.zeros((2, 3), dtype=np.float32), "b": np.zeros(3, dtype=np.float32)}


def _reply(msg, arrays, num_examples):
    content = RecordDict({
        "arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
        "metrics": MetricRecord({"num-examples": num_examples, "train-loss": 1.0}),
    })
    return Message(content, reply_to=msg)


def make_client(behaviour):
    """Client i replies with arrays filled with i and i+1 examples, unless misbehaving."""

    def client(msg, context):
        cid = context.node_config["partition-id"]
        if msg.metadata.message_type == CLIENT_ID_QUERY:
            return Message(RecordDict({"client": ConfigRecord({"client-id": cid})}),
                           reply_to=msg)
        arrays = {k: np.full_like(v, float(cid)) for k, v in REFERENCE.items()}
        kind = behaviour.get(cid)
        if kind == "shape":
            arrays["w"] = np.zeros((3, 3), dtype=np.float32)
        elif kind == "nan":
            arrays["b"] = np.array([0.0, np.nan, 0.0], dtype=np.float32)
        elif kind == "inf":
            arrays["w"] = np.full((2, 3), np.inf, dtype=np.float32)
        elif kind == "dtype":
            arrays["b"] = np.zeros(3, dtype=np.float64)
        elif kind == "missing":
            del arrays["b"]
        elif kind == "examples":
            return _reply(msg, arrays, 0)
        elif kind == "raise":
            raise RuntimeError("local training crashed")
        return _reply(msg, arrays, cid + 1)

    return client


def run_round(behaviour, num_clients=6):
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    grid = InProcessGrid(make_client(behaviour), num_nodes=num_clients, run_config={})
    strategy = FedAvg(clients_per_round=num_clients, num_clients=num_clients, seed=0)
    reference = ArrayRecord({k: Array(v) for k, v in REFERENCE.items()})
    messages = strategy.configure_train(1, reference, ConfigRecord({"lr": 0.1}), grid)
    replies = grid.send_and_receive(messages)
    return strategy.aggregate_train(1, replies)


def test_all_good_replies_give_the_example_weighted_mean():
    arrays, metrics = run_round({})
    expected = sum(c * (c + 1) for c in range(6)) / sum(c + 1 for c in range(6))
    np.testing.assert_allclose(arrays["w"].numpy(), np.full((2, 3), expected), rtol=1e-6)
    assert metrics["num-replies"] == 6 and metrics["num-rejected"] == 0
    assert list(metrics["clients"]) == list(range(6))


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("shape", r"client 2 rejected: array 'w' has shape \(3, 3\).*expected shape \(2, 3\)"),
        ("nan", r"client 2 rejected: array 'b' holds 1 NaN or Inf value\(s\)"),
        ("inf", r"client 2 rejected: array 'w' holds 6 NaN or Inf value\(s\)"),
        ("dtype", r"client 2 rejected: array 'b' has .*dtype float64.*expected .*float32"),
        ("missing", r"client 2 rejected: array names differ .*missing \['b'\]"),
        ("examples", r"client 2 rejected: metric 'num-examples' = 0, expected an integer > 0"),
        ("raise", r"client 2 rejected: error reply .*RuntimeError: local training crashed"),
    ],
)
def test_bad_reply_is_rejected_logged_and_left_out(kind, pattern, caplog):
    with caplog.at_level(logging.WARNING):
        arrays, metrics = run_round({2: kind})
    assert any(
        __import__("re").search(pattern, rec.getMessage()) for rec in caplog.records
    ), [r.getMessage() for r in caplog.records]
    good = [c for c in range(6) if c != 2]
    expected = sum(c * (c + 1) for c in good) / sum(c + 1 for c in good)
    np.testing.assert_allclose(arrays["b"].numpy(), np.full(3, expected), rtol=1e-6)
    assert metrics["num-rejected"] == 1 and list(metrics["rejected-clients"]) == [2]
    assert list(metrics["clients"]) == good


def test_all_replies_bad_keeps_the_model():
    arrays, metrics = run_round({c: "nan" for c in range(3)}, num_clients=3)
    assert arrays is None
    assert metrics["num-rejected"] == 3


def test_duplicate_and_unknown_replies_are_rejected(caplog):
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    grid = InProcessGrid(make_client({}), num_nodes=3, run_config={})
    strategy = FedAvg(clients_per_round=3, num_clients=3, seed=0)
    reference = ArrayRecord({k: Array(v) for k, v in REFERENCE.items()})
    replies = list(grid.send_and_receive(
        strategy.configure_train(1, reference, ConfigRecord({"lr": 0.1}), grid)))
    # A stale reply from an earlier message (unknown id) and a duplicate of a valid one.
    stray = Message(RecordDict(), list(grid.contexts)[0], "train")
    stray.metadata.__dict__["_message_id"] = "not-sent-this-round"
    stale = _reply(stray, REFERENCE, 5)
    with caplog.at_level(logging.WARNING):
        arrays, metrics = strategy.aggregate_train(1, [*replies, replies[0], stale])
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "duplicate reply within the round" in messages
    assert "answers no message sent this round" in messages
    assert metrics["num-replies"] == 3 and metrics["num-rejected"] == 2
    expected = sum(c * (c + 1) for c in range(3)) / sum(c + 1 for c in range(3))
    np.testing.assert_allclose(arrays["w"].numpy(), np.full((2, 3), expected), rtol=1e-6)


def test_strategy_argument_errors():
    with pytest.raises(ValueError, match="weighting = 'x'"):
        FedAvg(clients_per_round=1, num_clients=2, weighting="x")
    with pytest.raises(ValueError, match="clients_per_round = 3, expected 1..num_clients"):
        FedAvg(clients_per_round=3, num_clients=2)
