"""fedkit strategies are ordinary Flower strategies, and Flower's run in fedkit's loop.

Properties: every fedkit strategy under Flower's own ``Strategy.start`` gives exactly the run of
fedkit's ``run_rounds`` (same seeds: same final arrays, same metrics); federated evaluation
reaches the sampled clients and its metrics are their weighted mean; a quickstart's metric
names are aggregated; N is learned from the grid; Flower's own FedAvg runs in ``run_rounds``
exactly as under its own ``Strategy.start``.
"""

import logging
import random

import numpy as np
import pytest
from flwr.app import ConfigRecord, MetricRecord
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg
from flwr.supercore.task_identity import TaskIdentity
from quickstart_client import INITIAL, num_examples, quickstart_app

from fedkit.algorithms import FedAU, FedAvg, FedLaAvg, FedVARP, Mifa
from fedkit.config import RunConfig
from fedkit.flower import InProcessGrid, run_rounds
from fedkit.flower.apps.client_app import app as client_app
from fedkit.flower.apps.task import arrays_of, load_data, model_with_arrays, new_model
from fedkit.training import evaluate

STRATEGIES = {
    "fedavg": (FedAvg, {}),
    "fedlaavg": (FedLaAvg, {}),  # client-delta mode
    "fedlaavg-table": (FedLaAvg, {"mode": "server-table"}),
    "mifa": (Mifa, {"wait_for_all": False}),  # with the default, 3 rounds never step
    "fedau": (FedAU, {}),
    "fedvarp": (FedVARP, {}),
}


def _recording(app, log):
    """``app``, recording (client id, reply metrics) of every evaluate reply."""

    def client(msg, context):
        reply = app(msg, context)
        if msg.metadata.message_type == "evaluate" and not reply.has_error():
            log.append((context.node_config["partition-id"], dict(reply.content["metrics"])))
        return reply

    return client


def _two_runs(make, cfg, initial, client=client_app):
    """The same strategy and seeds under Strategy.start and under run_rounds."""
    data = load_data(cfg)

    def central(server_round, arrays):
        result = evaluate(model_with_arrays(cfg, data, arrays), data.test)
        return MetricRecord({"test-loss": result.loss})

    flower_log, fedkit_log = [], []
    grid = InProcessGrid(_recording(client, flower_log), num_nodes=cfg.num_clients,
                         run_config=cfg.to_dict())
    result = make().start(grid, initial, num_rounds=cfg.rounds,
                          train_config=ConfigRecord({"lr": cfg.lr}), evaluate_fn=central)
    rounds = []
    grid = InProcessGrid(_recording(client, fedkit_log), num_nodes=cfg.num_clients,
                         run_config=cfg.to_dict())
    final = run_rounds(make(), grid, initial, num_rounds=cfg.rounds, timeout=None,
                       train_config_fn=lambda r: ConfigRecord({"lr": cfg.lr}),
                       evaluate_fn=central, on_round=lambda outcome, _: rounds.append(outcome))
    return result, final, rounds, flower_log, fedkit_log


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_fedkit_strategy_under_strategy_start_equals_fedkits_loop(name):
    cls, extra = STRATEGIES[name]
    cfg = RunConfig(num_clients=12, clients_per_round=4, rounds=3, progress=False)
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    initial = arrays_of(new_model(cfg, load_data(cfg)))

    def make():
        return cls(clients_per_round=4, num_clients=12, seed=cfg.seed, fraction_evaluate=0.5,
                   **extra)

    result, final, rounds, flower_log, fedkit_log = _two_runs(make, cfg, initial)
    assert list(result.arrays.keys()) == list(final.keys())
    for key in final.keys():
        np.testing.assert_array_equal(result.arrays[key].numpy(), final[key].numpy())
    assert not all(np.array_equal(initial[k].numpy(), final[k].numpy()) for k in final.keys())
    assert [dict(result.train_metrics_clientapp[o.server_round]) for o in rounds] == \
        [o.train_metrics for o in rounds]
    assert [dict(result.evaluate_metrics_clientapp[o.server_round]) for o in rounds] == \
        [o.evaluate_metrics for o in rounds]
    assert all(m["num-replies"] == 4 for m in result.train_metrics_clientapp.values())
    assert all({"train-loss", "num-steps"} <= set(m)
               for m in result.train_metrics_clientapp.values())
    assert flower_log == fedkit_log
    # fraction_evaluate = 0.5 of 12 online clients: 6 evaluate each round, on their test share.
    assert len(flower_log) == 6 * cfg.rounds


def test_federated_evaluation_is_the_weighted_mean_of_the_sampled_clients():
    cfg = RunConfig(num_clients=10, clients_per_round=3, rounds=2, progress=False)
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    log = []
    grid = InProcessGrid(_recording(client_app, log), num_nodes=10, run_config=cfg.to_dict())
    strategy = FedAvg(clients_per_round=3, num_clients=10, fraction_evaluate=0.3,
                      min_evaluate_nodes=4)
    result = strategy.start(grid, arrays_of(new_model(cfg, load_data(cfg))), num_rounds=2,
                            train_config=ConfigRecord({"lr": cfg.lr}))
    # max(int(10 * 0.3), 4) = 4 clients per round, each on test[client_id::10].
    assert len(log) == 8
    data = load_data(cfg)
    for server_round in (1, 2):
        replies = log[4 * (server_round - 1): 4 * server_round]
        assert all(m["num-examples"] == len(range(c, len(data.test.y), 10)) for c, m in replies)
        weights = [m["num-examples"] for _, m in replies]
        aggregated = result.evaluate_metrics_clientapp[server_round]
        for key in ("eval_loss", "eval_acc"):
            weighted = sum(w * m[key] for w, (_, m) in zip(weights, replies, strict=True))
            expected = weighted / sum(weights)
            assert aggregated[key] == pytest.approx(expected, rel=1e-12)
        assert "num-examples" not in aggregated


def test_quickstart_metrics_are_aggregated_and_n_is_learned_from_the_grid():
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    grid = InProcessGrid(quickstart_app(), num_nodes=5, run_config={})
    strategy = FedAvg()  # Flower's defaults: every online node trains and evaluates
    result = strategy.start(grid, INITIAL, num_rounds=2)
    assert strategy.num_clients is None and strategy.directory.num_seen == 5
    weights = [num_examples(c) for c in range(5)]
    # Round 1: from zeros, client c's loss is 8 (c + 1)^2 and its model (c + 1) / 2.
    loss = sum(w * 8 * (c + 1) ** 2 for c, w in enumerate(weights)) / sum(weights)
    metrics = result.train_metrics_clientapp[1]
    assert metrics["train_loss"] == pytest.approx(loss, rel=1e-12)
    assert list(metrics["clients"]) == [0, 1, 2, 3, 4]
    mean = sum(w * (c + 1) / 2 for c, w in enumerate(weights)) / sum(weights)
    np.testing.assert_allclose(result.arrays["b"].numpy(), np.full(2, (mean + np.dot(
        weights, np.arange(1, 6)) / sum(weights)) / 2, np.float32), rtol=1e-6)
    evaluated = result.evaluate_metrics_clientapp[2]
    assert evaluated["eval_acc"] == pytest.approx(
        sum(w / (c + 1) for c, w in enumerate(weights)) / sum(weights), rel=1e-12)


def test_metric_aggregation_hooks_replace_the_weighted_mean():
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    seen = []

    def worst_loss(records, weighted_by_key):
        seen.append(weighted_by_key)
        return MetricRecord({"worst": max(r["metrics"]["train_loss"] for r in records)})

    def count(records, weighted_by_key):
        return MetricRecord({"evaluated": len(records)})

    grid = InProcessGrid(quickstart_app(), num_nodes=4, run_config={})
    strategy = FedAvg(fraction_train=0.5, train_metrics_aggr_fn=worst_loss,
                      evaluate_metrics_aggr_fn=count, min_available_nodes=4)
    result = strategy.start(grid, INITIAL, num_rounds=1)
    train = result.train_metrics_clientapp[1]
    assert seen == ["num-examples"] and train["num-replies"] == 2
    assert train["worst"] == max(8 * (c + 1) ** 2 for c in train["clients"])
    assert "train_loss" not in train
    assert dict(result.evaluate_metrics_clientapp[1]) == {"evaluated": 4}


def test_fraction_train_zero_skips_training_as_flowers_fedavg():
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    grid = InProcessGrid(quickstart_app(), num_nodes=3, run_config={})
    result = FedAvg(fraction_train=0.0).start(grid, INITIAL, num_rounds=2)
    assert result.train_metrics_clientapp == {}
    assert sorted(result.evaluate_metrics_clientapp) == [1, 2]


def test_a_clientapp_without_evaluate_handler_is_warned_about_once(caplog):
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    grid = InProcessGrid(quickstart_app(evaluate=False), num_nodes=3, run_config={})
    with caplog.at_level(logging.WARNING):
        result = FedAvg().start(grid, INITIAL, num_rounds=3)
    warnings = [r.getMessage() for r in caplog.records if "could not evaluate" in r.getMessage()]
    assert len(warnings) == 1 and "@app.evaluate()" in warnings[0]
    assert "fraction_evaluate=0.0" in warnings[0]
    assert result.evaluate_metrics_clientapp == {}
    assert sorted(result.train_metrics_clientapp) == [1, 2, 3]


def test_flowers_fedavg_runs_in_fedkits_loop_as_under_its_own_start():
    cfg = RunConfig(num_clients=8, clients_per_round=4, rounds=3, progress=False)
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    initial = arrays_of(new_model(cfg, load_data(cfg)))

    def make():
        return FlowerFedAvg(fraction_train=0.5, fraction_evaluate=0.25)

    # Flower samples with the global `random` module: seed it alike for both runs.
    random.seed(0)
    grid = InProcessGrid(client_app, num_nodes=8, run_config=cfg.to_dict())
    result = make().start(grid, initial, num_rounds=3, train_config=ConfigRecord({"lr": cfg.lr}))
    random.seed(0)
    grid = InProcessGrid(client_app, num_nodes=8, run_config=cfg.to_dict())
    rounds = []
    final = run_rounds(make(), grid, initial, num_rounds=3, timeout=None,
                       train_config_fn=lambda r: ConfigRecord({"lr": cfg.lr}),
                       on_round=lambda outcome, _: rounds.append(outcome))
    for key in final.keys():
        np.testing.assert_array_equal(result.arrays[key].numpy(), final[key].numpy())
    assert not np.array_equal(initial[key].numpy(), final[key].numpy())
    assert [o.train_metrics for o in rounds] == \
        [dict(result.train_metrics_clientapp[r]) for r in (1, 2, 3)]
    assert all("train-loss" in o.train_metrics and "eval_acc" in o.evaluate_metrics
               for o in rounds)
