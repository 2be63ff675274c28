"""The batching hook: the ClientApp says what the batched grid runs together; mods take part.

Properties: a batch handler is wrapped in the app's mods in Flower's order; a mod without
``wrap_batch`` declines and the batched grid then gives exactly the sequential grid's replies
without calling the handler; a mod with a wrapper keeps batching (one call per round with the
round's K train messages) and the replies equal the sequential ones to float32 tolerance; an
app with no handler runs sequentially; secure aggregation batches its masked-input stage;
FedLaAvg's client-delta mode (``fedlaavg_mod``) keeps batching.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode

from fedkit.config import RunConfig
from fedkit.flower.apps import client_app as fedkit_client
from fedkit.flower.apps.batched_train import train_batch_handler
from fedkit.flower.apps.server_app import app as server_app
from fedkit.flower.mods import register_client_id_query
from fedkit.flower.runtime.batched import BatchedInProcessGrid
from fedkit.flower.runtime.batching import (
    BatchHandler,
    batch_handler,
    batchable,
    error_reply,
    full_message_type,
)
from fedkit.flower.runtime.inprocess import RUN_ID, SERVER_NODE_ID, InProcessGrid
from fedkit.flower.secagg.mod import secagg_mod

# -- toy apps: the grid's and the hook's rules --------------------------------------------


def _echo(msg: Message, context: Context) -> Message:
    pid = context.node_config["partition-id"]
    return Message(RecordDict({"m": MetricRecord({"pid": pid})}), reply_to=msg)


def recording_mod(name: str, log: list[str], *, batches: bool = True):
    """A mod that records its name when called, with a batch wrapper that does the same."""

    def mod(msg, context, call_next):
        log.append(name)
        return call_next(msg, context)

    def wrap_batch(inner: BatchHandler) -> BatchHandler:
        def run(items, device):
            log.append(name)
            return inner.run(items, device)

        return BatchHandler(accepts=inner.accepts, run=run)

    mod.__qualname__ = name
    if batches:
        mod.wrap_batch = wrap_batch
    return mod


def counting(handler: BatchHandler, calls: list[int]) -> BatchHandler:
    """``handler``, recording the number of items of every ``run`` call."""

    def run(items, device):
        calls.append(len(items))
        return handler.run(items, device)

    return BatchHandler(accepts=handler.accepts, run=run)


ECHO_BATCH = BatchHandler(accepts=lambda msg, context: True,
                          run=lambda items, device: [_echo(m, c) for m, c in items])


def toy_app(app_mods=(), mods=(), handler: BatchHandler | None = ECHO_BATCH) -> ClientApp:
    app = ClientApp(mods=list(app_mods))
    app.query(mods=list(mods))(_echo)
    if handler is not None:
        batchable(app, "query", handler, mods=mods)
    return app


def push(grid, nodes=None) -> list[Message]:
    nodes = list(grid.contexts) if nodes is None else nodes
    return list(grid.send_and_receive(
        [grid.create_message(RecordDict(), "query", n, group_id="1") for n in nodes]))


def test_message_types_are_routed_as_flower_routes_them():
    assert full_message_type("train") == "train.default"
    assert full_message_type("train.submodel") == "train.submodel"


def test_a_handler_is_wrapped_in_the_mods_in_flowers_order():
    def app(log, handler=ECHO_BATCH):
        return toy_app(app_mods=[recording_mod("a", log), recording_mod("b", log)],
                       mods=[recording_mod("c", log)], handler=handler)

    sequential: list[str] = []
    push(InProcessGrid(app(sequential), num_nodes=1, run_config={}))
    batched: list[str] = []
    calls: list[int] = []
    replies = push(BatchedInProcessGrid(app(batched, counting(ECHO_BATCH, calls)), num_nodes=3,
                                        run_config={}))
    assert sequential == batched == ["a", "b", "c"]  # app-level first, the first outermost
    assert calls == [3]
    assert sorted(r.content["m"]["pid"] for r in replies) == [0, 1, 2]


@pytest.mark.parametrize("level", ["app", "handler"])
def test_a_mod_without_wrapper_declines(level, caplog):
    log: list[str] = []
    declining = recording_mod("declining_mod", log, batches=False)
    calls: list[int] = []
    handler = counting(ECHO_BATCH, calls)
    app = (toy_app(app_mods=[declining], handler=handler) if level == "app"
           else toy_app(mods=[declining], handler=handler))
    assert batch_handler(app, "query")[0] is None
    assert "mod declining_mod of 'query.default' declines batching" in batch_handler(
        app, "query")[1]
    with caplog.at_level(logging.INFO, logger="fedkit.flower.runtime.batched"):
        grid = BatchedInProcessGrid(app, num_nodes=3, run_config={})
        push(grid)
        push(grid)
    assert calls == []
    assert log == ["declining_mod"] * 6  # every message through the ClientApp
    assert sum("declines batching" in r.getMessage() for r in caplog.records) == 1  # once


def test_batchable_refuses_a_second_handler_for_a_type():
    app = toy_app()
    with pytest.raises(ValueError, match="'query.default' already has a batch handler"):
        batchable(app, "query.default", ECHO_BATCH)


def test_a_node_with_two_messages_in_one_push_runs_one_at_a_time():
    calls: list[int] = []
    grid = BatchedInProcessGrid(toy_app(handler=counting(ECHO_BATCH, calls)), num_nodes=2,
                                run_config={})
    node = next(iter(grid.contexts))
    assert [r.content["m"]["pid"] for r in push(grid, [node, node])] == [0, 0]
    assert calls == []


def test_messages_the_handler_does_not_accept_run_through_the_app():
    calls: list[int] = []
    handler = BatchHandler(accepts=lambda msg, context: context.node_config["partition-id"] > 0,
                           run=ECHO_BATCH.run)
    replies = push(BatchedInProcessGrid(toy_app(handler=counting(handler, calls)), num_nodes=4,
                                        run_config={}))
    assert calls == [3]
    assert sorted(r.content["m"]["pid"] for r in replies) == [0, 1, 2, 3]


def test_a_failing_run_answers_every_item_with_an_error_reply():
    def run(items, device):
        raise RuntimeError("out of memory")

    replies = push(BatchedInProcessGrid(toy_app(handler=BatchHandler(ECHO_BATCH.accepts, run)),
                                        num_nodes=3, run_config={}))
    assert len(replies) == 3
    for reply in replies:
        assert reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
        assert reply.error.reason == "RuntimeError: out of memory"
        assert reply.metadata.message_id  # stamped like every reply


def test_per_item_errors_and_a_wrong_reply_count():
    def run(items, device):
        return [error_reply(m, ValueError("bad")) if c.node_config["partition-id"] == 1
                else _echo(m, c) for m, c in items]

    replies = push(BatchedInProcessGrid(toy_app(handler=BatchHandler(ECHO_BATCH.accepts, run)),
                                        num_nodes=3, run_config={}))
    assert sum(r.has_error() for r in replies) == 1
    short = BatchHandler(ECHO_BATCH.accepts, lambda items, device: [])
    with pytest.raises(RuntimeError, match="returned 0 replies for 3 messages"):
        push(BatchedInProcessGrid(toy_app(handler=short), num_nodes=3, run_config={}))


def test_run_receives_the_grids_device():
    devices: list[str] = []

    def run(items, device):
        devices.append(device)
        return ECHO_BATCH.run(items, device)

    grid = BatchedInProcessGrid(toy_app(handler=BatchHandler(ECHO_BATCH.accepts, run)),
                                num_nodes=2, run_config={}, device="meta")
    push(grid)
    assert devices == ["meta"]


# -- fedkit's training app with user mods: batched vs sequential replies -----------------

SMALL = {"num_clients": 10, "clients_per_round": 4, "rounds": 2, "eval_every": 2,
         "progress": False}
K = SMALL["clients_per_round"]


def tag_mod(msg, context, call_next):
    """A user mod: adds the metric ``tagged = 1`` to every train reply (no batch wrapper)."""
    return _tagged(call_next(msg, context))


def _tagged(reply: Message) -> Message:
    if reply.has_content() and "metrics" in reply.content.metric_records:
        reply.content["metrics"]["tagged"] = 1
    return reply


def batching_tag_mod(msg, context, call_next):
    """``tag_mod`` with a batch wrapper."""
    return _tagged(call_next(msg, context))


batching_tag_mod.wrap_batch = lambda inner: BatchHandler(
    accepts=inner.accepts,
    run=lambda items, device: [_tagged(r) for r in inner.run(items, device)])


def training_app(mods, calls: list[int] | None, app_mods=()) -> ClientApp:
    """fedkit's train handler with ``mods``; batchable unless ``calls`` is None."""
    app = ClientApp(mods=list(app_mods))
    register_client_id_query(app)
    app.train(mods=list(mods))(fedkit_client.train)
    if calls is not None:
        batchable(app, "train", counting(train_batch_handler, calls), mods=mods)
    return app


def run_replies(tmp_path, name, grid_cls, client_app, **changes) -> list[Message]:
    """Run fedkit's ServerApp on ``grid_cls``; every reply the server received, in order."""
    cfg = RunConfig(name=name, output_dir=str(tmp_path / name), **{**SMALL, **changes})
    grid = grid_cls(client_app, num_nodes=cfg.num_clients, run_config=cfg.to_dict(),
                    seed=cfg.seed)
    replies: list[Message] = []
    pull = grid.pull_messages

    def recording_pull(ids):
        out = list(pull(ids))
        replies.extend(out)
        return out

    grid.pull_messages = recording_pull
    server_app(grid, Context(run_id=RUN_ID, node_id=SERVER_NODE_ID, node_config={},
                             state=RecordDict(), run_config=cfg.to_dict()))
    return replies


def summary(reply: Message) -> tuple:
    meta = reply.metadata
    if reply.has_error():
        return meta.src_node_id, meta.message_type, meta.group_id, reply.error.reason, {}, {}
    arrays = {f"{k}/{n}": a.numpy() for k, rec in reply.content.array_records.items()
              for n, a in rec.items()}
    metrics = {f"{k}/{n}": v for k, rec in reply.content.metric_records.items()
               for n, v in rec.items()}
    configs = {f"{k}/{n}": v for k, rec in reply.content.config_records.items()
               for n, v in rec.items()}
    return meta.src_node_id, meta.message_type, meta.group_id, configs, metrics, arrays


def assert_same_replies(got: list[Message], want: list[Message], *, exact: bool) -> None:
    assert len(got) == len(want) > 0
    for a, b in zip(map(summary, got), map(summary, want), strict=True):
        assert a[:4] == b[:4]
        assert a[4].keys() == b[4].keys() and a[5].keys() == b[5].keys()
        if exact:
            assert a[4] == b[4]
        else:
            assert a[4] == pytest.approx(b[4], rel=1e-4)
        for key in a[5]:
            if exact:
                np.testing.assert_array_equal(a[5][key], b[5][key])
            else:
                np.testing.assert_allclose(a[5][key], b[5][key], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("level", ["app", "handler"])
def test_a_declining_user_mod_runs_sequentially_with_the_sequential_replies(tmp_path, level,
                                                                             caplog):
    calls: list[int] = []
    mods, app_mods = ([secagg_mod, tag_mod], ()) if level == "handler" else (
        fedkit_client.TRAIN_MODS, [tag_mod])
    with caplog.at_level(logging.INFO, logger="fedkit.flower.runtime.batched"):
        batched = run_replies(tmp_path, "b", BatchedInProcessGrid,
                              training_app(mods, calls, app_mods))
    sequential = run_replies(tmp_path, "s", InProcessGrid, training_app(mods, [], app_mods))
    assert calls == []  # the handler's run is never called
    assert any("mod tag_mod of 'train.default' declines batching" in r.getMessage()
               for r in caplog.records)
    assert_same_replies(batched, sequential, exact=True)  # both through the ClientApp
    trains = [r for r in batched if r.metadata.message_type == "train"]
    assert len(trains) == K * SMALL["rounds"]
    assert all(r.content["metrics"]["tagged"] == 1 for r in trains)


def test_a_user_mod_with_a_wrapper_keeps_batching(tmp_path):
    calls: list[int] = []
    mods = [secagg_mod, batching_tag_mod]
    batched = run_replies(tmp_path, "b", BatchedInProcessGrid, training_app(mods, calls))
    sequential = run_replies(tmp_path, "s", InProcessGrid, training_app(mods, None))
    assert calls == [K] * SMALL["rounds"]  # one call per round with all K train messages
    assert_same_replies(batched, sequential, exact=False)
    trains = [r for r in batched if r.metadata.message_type == "train"]
    assert len(trains) == K * SMALL["rounds"]
    assert all(r.content["metrics"]["tagged"] == 1 for r in trains)


def test_a_user_app_without_handlers_runs_sequentially_on_the_batched_grid(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="fedkit.flower.runtime.batched"):
        batched = run_replies(tmp_path, "b", BatchedInProcessGrid,
                              training_app(fedkit_client.TRAIN_MODS, None))
    sequential = run_replies(tmp_path, "s", InProcessGrid,
                             training_app(fedkit_client.TRAIN_MODS, None))
    assert any("no batch handler registered for 'train.default'" in r.getMessage()
               for r in caplog.records)
    assert_same_replies(batched, sequential, exact=True)


def test_secure_aggregation_batches_the_masked_input_stage(tmp_path):
    calls: list[int] = []
    replies = run_replies(tmp_path, "b", BatchedInProcessGrid,
                          training_app(fedkit_client.TRAIN_MODS, calls),
                          secure_aggregation=True)
    assert calls == [K] * SMALL["rounds"]  # the other three stages run through the app
    trains = [r for r in replies if r.metadata.message_type == "train"]
    assert len(trains) == 4 * K * SMALL["rounds"] and not any(r.has_error() for r in trains)


def test_fedlaavg_client_delta_keeps_batching(tmp_path):
    # fedkit's train handler runs inside fedlaavg_mod; the mod's wrap_batch keeps the round's
    # train messages together and the ΔG_i replies agree with the sequential ones.
    calls: list[int] = []
    changes = {"algorithm": "fedlaavg", "rounds": 3}
    batched = run_replies(tmp_path, "b", BatchedInProcessGrid,
                          training_app(fedkit_client.TRAIN_MODS, calls), **changes)
    sequential = run_replies(tmp_path, "s", InProcessGrid,
                             training_app(fedkit_client.TRAIN_MODS, None), **changes)
    assert calls == [K] * 3
    trains = [(summary(a), summary(b)) for a, b in zip(batched, sequential, strict=True)
              if a.metadata.message_type == "train"]
    assert len(trains) == 3 * K
    for got, want in trains:
        assert got[:4] == want[:4] and got[5].keys() == want[5].keys()
        for key, value in want[5].items():
            assert got[5][key].dtype == value.dtype == np.float64  # ΔG_i
            np.testing.assert_allclose(got[5][key], value, rtol=0,
                                       atol=1e-4 * np.abs(value).max())
