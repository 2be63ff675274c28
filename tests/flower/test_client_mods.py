"""Client mods: a quickstart ClientApp with ``mods=[...]`` is a complete fedkit client.

Properties: under FedLaAvg's client-delta mode, the quickstart app with ``client_id_mod`` and
``fedlaavg_mod`` trains exactly as the model-reply mode (server-table) does; a node whose state
is wiped answers ``state-lost`` and then recomputes its G_i bit for bit; the batch wrapper
gives the mod's replies; other strategies' messages pass through unchanged; without the mods
the server gets no usable reply. Flower 1.42 does not run app-level mods for message types
without a handler, hence ``register_client_id_query``.
"""

from __future__ import annotations

import copy
import logging
import random

import numpy as np
import pytest
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg
from flwr.supercore.task_identity import TaskIdentity
from quickstart_app import initial_arrays, make_app
from quickstart_app import train as quickstart_train

from fedkit.algorithms import FedAU, FedAvg, FedLaAvg, FedVARP, Mifa
from fedkit.algorithms.arrays import flatten, float64_like
from fedkit.algorithms.contract import ContractError
from fedkit.algorithms.replies import validate_train_replies
from fedkit.config import RunConfig
from fedkit.flower import InProcessGrid
from fedkit.flower.apps import client_app as fedkit_client
from fedkit.flower.apps.client_delta import GradientStore
from fedkit.flower.apps.task import arrays_of, load_data, new_model
from fedkit.flower.mods import (
    client_id_mod,
    fedlaavg_mod,
    node_client_id,
    register_client_id_query,
    secagg_mod,
)
from fedkit.flower.runtime.batching import BatchHandler
from fedkit.flower.secagg.records import EXCHANGE_RECORD

N, K, ROUNDS, LR = 8, 3, 10, 0.3
MODS = [client_id_mod, fedlaavg_mod]


@pytest.fixture(autouse=True)
def task_identity():
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1


def mod_app():
    return make_app(MODS, route=register_client_id_query)


def start(strategy, client, rounds=ROUNDS):
    grid = InProcessGrid(client, num_nodes=N, run_config={})
    result = strategy.start(grid, initial_arrays(), num_rounds=rounds,
                            train_config=ConfigRecord({"lr": LR}))
    return result, grid


def fedlaavg(mode):
    return FedLaAvg(clients_per_round=K, num_clients=N, seed=3, mode=mode)


def as_vector(arrays: ArrayRecord) -> np.ndarray:
    return flatten(arrays)


# -- FedLaAvg client-delta with the quickstart app --------------------------------------


def test_client_delta_with_the_mods_equals_the_model_reply_mode():
    delta, delta_grid = start(fedlaavg("client-delta"), mod_app())
    table, _ = start(fedlaavg("server-table"), mod_app())
    assert all(m["num-replies"] == K and m["num-rejected"] == 0
               for m in delta.train_metrics_clientapp.values())
    # Both modes fold the same float64 numbers (docs/design.md): equal bit for bit.
    np.testing.assert_array_equal(as_vector(delta.arrays), as_vector(table.arrays))
    assert not np.allclose(as_vector(delta.arrays), as_vector(initial_arrays()))
    # Every client keeps its G_i in its own state, versioned as the server counts.
    versions = sorted(GradientStore(c).load()[1] for c in delta_grid.contexts.values())
    assert sum(versions) == K * ROUNDS and versions[0] >= 1


def forgetting(app, pid: int, at_call: int, log: dict):
    """``app``, except that node ``pid`` loses its state before its ``at_call``-th train."""

    def client(msg, context):
        if msg.metadata.message_type == "train" and context.node_config["partition-id"] == pid:
            log["calls"] = log.get("calls", 0) + 1
            if log["calls"] == at_call:
                context.state.clear()
                log["round"] = msg.content["config"]["server-round"]
        return app(msg, context)

    return client


def test_a_wiped_node_answers_state_lost_then_recovers_its_g_exactly(caplog):
    log: dict = {}
    strategy = fedlaavg("client-delta")
    with caplog.at_level(logging.WARNING):
        _, grid = start(strategy, forgetting(mod_app(), pid=2, at_call=2, log=log), rounds=16)
    assert log["round"] is not None and log["calls"] >= 4
    assert any("client 2 rejected" in r.getMessage() and "recovery" in r.getMessage()
               for r in caplog.records)
    # Back in sync: versions agree and the server's average is the mean of the stored G_i,
    # so the recovered G_2 is the one the server had folded (nothing against a wrong base).
    stored = []
    for context in grid.contexts.values():
        g, version = GradientStore(context).load()
        assert version == strategy.state.versions[context.node_config["partition-id"]]
        stored.append(g if g is not None else np.zeros_like(strategy.state.g_bar))
    np.testing.assert_allclose(strategy.state.g_bar, np.mean(stored, axis=0), rtol=0,
                               atol=1e-12 * np.abs(strategy.state.g_bar).max())


# -- the mod, message by message -------------------------------------------------------


def train_message(server_round, arrays, *, version, recovery=None, **extra) -> Message:
    config = {"lr": LR, "server-round": server_round, "reply": "gradient-delta",
              "expected-version": version, **extra}
    records = {"arrays": arrays}
    if recovery is not None:
        old_round, old_arrays = recovery
        config.update({"recovery-round": old_round, "recovery-lr": LR})
        records["recovery-arrays"] = old_arrays
    msg = Message(RecordDict({**records, "config": ConfigRecord(config)}), 5, "train",
                  group_id=str(server_round))
    return msg


def node(pid=2) -> Context:
    return Context(run_id=1, node_id=5, node_config={"partition-id": pid, "num-partitions": N},
                   state=RecordDict(), run_config={})


def call(msg, context, handler=quickstart_train) -> Message:
    return fedlaavg_mod(msg, context, handler)


def delta_of(reply: Message) -> np.ndarray:
    return flatten(reply.content["arrays"])


def shifted(arrays: ArrayRecord, by: float) -> ArrayRecord:
    return ArrayRecord({k: Array((a.numpy() + by).astype(a.numpy().dtype))
                        for k, a in arrays.items()})


def test_recovery_recomputes_g_bit_for_bit():
    x3, x7 = initial_arrays(), shifted(initial_arrays(), 0.05)
    kept, wiped = node(), node()
    first = call(train_message(3, x3, version=0), kept)
    call(train_message(3, x3, version=0), wiped)
    assert first.content["arrays"]["w"].dtype == "float64"
    wiped.state.clear()
    lost = call(train_message(7, x7, version=1), wiped)
    assert lost.content["metrics"]["state-lost"] == 1 and not lost.content.array_records
    want = call(train_message(7, x7, version=1), kept)
    got = call(train_message(7, x7, version=1, recovery=(3, x3)), wiped)
    np.testing.assert_array_equal(delta_of(got), delta_of(want))
    assert GradientStore(wiped).load()[1] == GradientStore(kept).load()[1] == 2
    np.testing.assert_array_equal(GradientStore(wiped).load()[0], GradientStore(kept).load()[0])
    assert got.content["metrics"]["num-examples"] == want.content["metrics"]["num-examples"]


def test_a_matching_state_ignores_the_recovery_model():
    x3, x7 = initial_arrays(), shifted(initial_arrays(), 0.05)
    a, b = node(), node()
    call(train_message(3, x3, version=0), a)
    call(train_message(3, x3, version=0), b)
    calls = []

    def counting(msg, context):
        calls.append(msg.content["config"]["server-round"])
        return quickstart_train(msg, context)

    with_recovery = call(train_message(7, x7, version=1, recovery=(3, x7)), a, counting)
    assert calls == [7]  # the stored G_i matches: no recomputation
    np.testing.assert_array_equal(delta_of(with_recovery),
                                  delta_of(call(train_message(7, x7, version=1), b)))


def test_the_handler_sees_an_ordinary_train_message():
    seen = []

    def spying(msg, context):
        seen.append(msg)
        return quickstart_train(msg, context)

    msg = train_message(4, initial_arrays(), version=0, **{"delta-bound": 1.0})
    before = copy.deepcopy(dict(msg.content["config"]))
    call(msg, node(), spying)
    assert dict(seen[0].content["config"]) == {"lr": LR, "server-round": 4}
    assert list(seen[0].content.array_records) == ["arrays"]
    assert seen[0].metadata is msg.metadata  # the reply answers the same message
    assert dict(msg.content["config"]) == before  # the message itself is not changed


def test_delta_bound_clips_and_the_client_stores_what_the_server_folds():
    bound = 1e-3
    context = node()
    reply = call(train_message(4, initial_arrays(), version=0, **{"delta-bound": bound}),
                 context)
    delta = delta_of(reply)
    assert np.abs(delta).max() == pytest.approx(bound)
    np.testing.assert_array_equal(GradientStore(context).load()[0], delta)


def test_other_messages_pass_through_unchanged():
    arrays = initial_arrays()
    for config in ({"lr": LR, "server-round": 1}, {"lr": LR, "server-round": 1,
                                                   "reply": "model"}):
        msg = Message(RecordDict({"arrays": arrays, "config": ConfigRecord(config)}), 5,
                      "train")
        context = node()
        reply = call(msg, context)
        assert reply.content["arrays"]["w"].dtype == "float32"
        assert not context.state.array_records  # no client-delta state


@pytest.mark.parametrize("change, match", [
    ({"lr": "fast"}, "'lr' = 'fast', expected a number"),
    ({"expected-version": 1.5}, "'expected-version' = 1.5, expected an integer"),
])
def test_a_malformed_request_names_the_key(change, match):
    msg = train_message(2, initial_arrays(), version=0)
    msg.content["config"] = ConfigRecord({**msg.content["config"], **change})
    with pytest.raises(ValueError, match=match):
        call(msg, node())


def test_a_recovery_without_its_round_names_the_key():
    msg = train_message(2, initial_arrays(), version=1, recovery=(1, initial_arrays()))
    config = dict(msg.content["config"])
    del config["recovery-round"]
    msg.content["config"] = ConfigRecord(config)
    with pytest.raises(ValueError, match="'recovery-round' = None, expected an integer"):
        call(msg, node())


def test_a_reply_without_the_model_is_an_error():
    def metrics_only(msg, context):
        return Message(RecordDict({"metrics": MetricRecord({"num-examples": 1})}),
                       reply_to=msg)

    def wrong_shape(msg, context):
        return Message(RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros(2))})}),
                       reply_to=msg)

    with pytest.raises(ValueError, match="expected one ArrayRecord with the locally trained"):
        call(train_message(2, initial_arrays(), version=0), node(), metrics_only)
    with pytest.raises(ValueError, match="expected the names and shapes of the model sent"):
        call(train_message(2, initial_arrays(), version=0), node(), wrong_shape)


def test_secagg_mod_must_come_first():
    msg = train_message(2, initial_arrays(), version=0)
    msg.content[EXCHANGE_RECORD] = ConfigRecord({"phase": "masked_input"})
    with pytest.raises(ValueError, match=r"mods=\[secagg_mod, fedlaavg_mod\]"):
        call(msg, node())


# -- the batch wrapper computes what the mod computes ------------------------------------


def test_the_batch_wrapper_gives_the_mods_replies():
    runs: list[int] = []

    def run(items, device):
        runs.append(len(items))
        return [quickstart_train(m, c) for m, c in items]

    handler = fedlaavg_mod.wrap_batch(BatchHandler(accepts=lambda m, c: True, run=run))
    x1, x2 = initial_arrays(), shifted(initial_arrays(), 0.02)
    # Four nodes after round 1: in sync, wiped (no recovery), wiped (recovery), never seen;
    # plus a model-reply message.
    contexts = {pid: node(pid) for pid in range(5)}
    for pid in (0, 1, 2):
        call(train_message(1, x1, version=0), contexts[pid])
    contexts[1].state.clear()
    contexts[2].state.clear()
    twins = {pid: copy.deepcopy(c) for pid, c in contexts.items()}
    messages = [train_message(2, x2, version=1), train_message(2, x2, version=1),
                train_message(2, x2, version=1, recovery=(1, x1)),
                train_message(2, x2, version=0),
                Message(RecordDict({"arrays": x2, "config": ConfigRecord(
                    {"lr": LR, "server-round": 2, "reply": "model"})}), 5, "train")]
    assert all(handler.accepts(m, contexts[i]) for i, m in enumerate(messages))
    batched = handler.run([(m, contexts[i]) for i, m in enumerate(messages)], "cpu")
    one_by_one = [call(m, twins[i]) for i, m in enumerate(messages)]
    assert runs == [4, 1]  # the trainings together, then the round's recoveries
    for got, want in zip(batched, one_by_one, strict=True):
        assert got.content.keys() == want.content.keys()
        for name in got.content.array_records:
            np.testing.assert_array_equal(flatten(got.content[name]),
                                          flatten(want.content[name]))
        assert dict(got.content["metrics"]) == dict(want.content["metrics"])
    for pid in contexts:
        a, b = GradientStore(contexts[pid]).load(), GradientStore(twins[pid]).load()
        assert a[1] == b[1]


# -- pass-through: one app for every fedkit strategy ------------------------------------


@pytest.mark.parametrize("strategy_fn", [
    lambda: FedAvg(clients_per_round=K, num_clients=N, seed=3),
    lambda: Mifa(clients_per_round=K, num_clients=N, seed=3, wait_for_all=False),
    lambda: FedAU(clients_per_round=K, num_clients=N, seed=3),
    lambda: FedVARP(clients_per_round=K, num_clients=N, seed=3),
    lambda: fedlaavg("server-table"),
], ids=["fedavg", "mifa", "fedau", "fedvarp", "fedlaavg-table"])
def test_model_reply_strategies_see_the_app_as_without_the_fedlaavg_mod(strategy_fn):
    with_mod, _ = start(strategy_fn(), mod_app(), rounds=3)
    without, _ = start(strategy_fn(), make_app(route=register_client_id_query), rounds=3)
    np.testing.assert_array_equal(as_vector(with_mod.arrays), as_vector(without.arrays))
    assert all(m["num-replies"] == K for m in with_mod.train_metrics_clientapp.values())


def test_flowers_fedavg_runs_the_app_with_the_mods():
    def strategy():
        return FlowerFedAvg(fraction_train=0.5, fraction_evaluate=0.5)

    random.seed(0)
    with_mods, _ = start(strategy(), mod_app(), rounds=2)
    random.seed(0)
    plain, _ = start(strategy(), make_app(), rounds=2)
    np.testing.assert_array_equal(as_vector(with_mods.arrays), as_vector(plain.arrays))
    assert sorted(with_mods.evaluate_metrics_clientapp) == [1, 2]


# -- without the mods the server gets nothing it can use ---------------------------------


def first_round(client, strategy):
    grid = InProcessGrid(client, num_nodes=N, run_config={})
    arrays = initial_arrays()
    messages = list(strategy.configure_train(1, arrays, ConfigRecord({"lr": LR}), grid))
    replies = list(grid.send_and_receive(messages))
    client_of = {n: c.node_config["partition-id"] for n, c in grid.contexts.items()}
    sent = {m.metadata.message_id: (m.metadata.dst_node_id, client_of[m.metadata.dst_node_id])
            for m in messages}
    return messages, validate_train_replies(replies, sent=sent,
                                            reference=float64_like(arrays))


def test_without_client_id_mod_no_node_is_known_and_the_run_fails_naming_the_fix(caplog):
    with caplog.at_level(logging.WARNING), pytest.raises(
            ContractError, match=r"add fedkit\.flower\.mods\.client_id_mod .*"
                                 r"register_client_id_query\(app\)"):
        first_round(make_app([fedlaavg_mod]), fedlaavg("client-delta"))
    assert any("No query function registered with name 'client_id'" in r.getMessage()
               for r in caplog.records)


def test_without_fedlaavg_mod_every_reply_is_rejected(caplog):
    app = make_app(route=register_client_id_query)
    with caplog.at_level(logging.WARNING):
        messages, (accepted, rejected) = first_round(app, fedlaavg("client-delta"))
    assert len(messages) == K and accepted == [] and len(rejected) == K
    assert all("dtype float32, expected shape" in r.reason and "float64" in r.reason
               for r in rejected)


def test_an_app_level_mod_never_sees_an_unregistered_message_type():
    # Flower 1.42 looks the handler up before running any mod: the reason for
    # register_client_id_query.
    app = make_app([client_id_mod])
    query = Message(RecordDict(), 5, "query.client_id")
    with pytest.raises(ValueError, match="No query function registered with name 'client_id'"):
        app(query, node())
    register_client_id_query(app)
    assert app(query, node(4)).content["client"]["client-id"] == 4


def test_a_client_fn_app_needs_only_the_mod():
    app = ClientApp(client_fn=lambda context: None, mods=[client_id_mod])
    reply = app(Message(RecordDict(), 5, "query.client_id"), node(6))
    assert reply.content["client"]["client-id"] == 6
    with pytest.raises(ValueError, match="Use either"):
        register_client_id_query(app)


def test_the_route_is_registered_once():
    app = make_app(route=register_client_id_query)
    with pytest.raises(ValueError, match="'client_id' is already registered"):
        register_client_id_query(app)


# -- fedkit's own ClientApp is one user of the mods ------------------------------------


def test_fedkits_train_handler_leaves_gradient_deltas_to_the_mod():
    assert fedkit_client.TRAIN_MODS == [secagg_mod, fedlaavg_mod]  # client clip -> mask
    context = Context(run_id=1, node_id=5, node_config={"partition-id": 0,
                                                        "num-partitions": 10},
                      state=RecordDict(), run_config=RunConfig(progress=False).to_dict())
    cfg = RunConfig(progress=False)
    msg = train_message(1, arrays_of(new_model(cfg, load_data(cfg))), version=0)
    with pytest.raises(ValueError, match="add fedkit.flower.mods.fedlaavg_mod to its mods"):
        fedkit_client.train(msg, context)
    reply = fedkit_client.app(msg, context)  # through the mods: ΔG_i
    assert reply.content["arrays"][next(iter(reply.content["arrays"]))].dtype == "float64"


# -- the client id --------------------------------------------------------------------------


def context_with(node_config, run_config=None) -> Context:
    return Context(run_id=1, node_id=5, node_config=node_config, state=RecordDict(),
                   run_config=run_config or {})


def test_the_client_id_comes_from_the_node_config():
    assert node_client_id(context_with({"partition-id": 3, "num-partitions": 4})) == 3
    assert node_client_id(context_with({"client-id": 9, "partition-id": 1})) == 9
    assert node_client_id(context_with({"client-id": 12345})) == 12345  # no bound known
    assert node_client_id(context_with({"client-id": 4}, {"num_clients": 5})) == 4


@pytest.mark.parametrize("node_config, run_config, match", [
    ({}, {}, r"'partition-id' = None, expected a non-negative integer"),
    ({"client-id": True}, {}, r"'client-id' = True, expected a non-negative integer"),
    ({"client-id": -1}, {}, r"'client-id' = -1, expected a non-negative integer"),
    ({"client-id": "3"}, {}, r"'client-id' = '3', expected a non-negative integer"),
    ({"partition-id": 4, "num-partitions": 4}, {},
     r"expected an integer in \[0, 4\) \(node config 'num-partitions' = 4\)"),
    ({"client-id": 7}, {"num_clients": 5},
     r"expected an integer in \[0, 5\) \(run config 'num_clients' = 5\)"),
])
def test_a_bad_client_id_names_the_key_and_the_range(node_config, run_config, match):
    with pytest.raises(ValueError, match=match):
        node_client_id(context_with(node_config, run_config))


def test_client_id_mod_keeps_batching_and_leaves_id_queries_to_the_mod():
    inner = BatchHandler(accepts=lambda m, c: True, run=lambda items, device: [])
    wrapped = client_id_mod.wrap_batch(inner)
    assert wrapped.accepts(Message(RecordDict(), 5, "train"), node())
    assert not wrapped.accepts(Message(RecordDict(), 5, "query.client_id"), node())
    assert secagg_mod.wrap_batch is not None  # re-exported with its batch wrapper
