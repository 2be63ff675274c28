"""Secure aggregation as a grid: Flower's own FedAvg and fedkit's strategies, under Flower's
``Strategy.start`` and fedkit's loop, give the model of the same run without it (up to
quantisation), and report what the clipping range cut."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg
from flwr.supercore.task_identity import TaskIdentity

from fedkit.algorithms import FedLaAvg
from fedkit.config import RunConfig
from fedkit.flower import InProcessGrid, run_rounds
from fedkit.flower.apps.client_app import app as client_app
from fedkit.flower.apps.task import arrays_of, load_data, new_model
from fedkit.flower.secagg.grid import SecureAggregationGrid
from fedkit.flower.secagg.workflow import SecureAggregationSettings

CFG = RunConfig(num_clients=6, clients_per_round=6, rounds=2, progress=False)


def flat(arrays) -> np.ndarray:
    return np.concatenate([a.numpy().ravel().astype(np.float64) for a in arrays.values()])


@pytest.fixture(scope="module")
def initial():
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    return arrays_of(new_model(CFG, load_data(CFG)))


def grid():
    return InProcessGrid(client_app, num_nodes=CFG.num_clients, run_config=CFG.to_dict())


def flower_fedavg_run(initial, secure: bool, **grid_kwargs):
    strategy = FlowerFedAvg(fraction_train=1.0, fraction_evaluate=0.0)
    inner = grid()
    g = SecureAggregationGrid(inner, SecureAggregationSettings(), **grid_kwargs) if secure \
        else inner
    return strategy.start(g, initial, num_rounds=CFG.rounds,
                          train_config=ConfigRecord({"lr": CFG.lr}))


def test_flowers_fedavg_with_secure_aggregation_equals_it_without(initial):
    plain = flower_fedavg_run(initial, secure=False)
    secure = flower_fedavg_run(initial, secure=True)
    np.testing.assert_allclose(flat(secure.arrays), flat(plain.arrays), rtol=0, atol=1e-5)
    assert not np.array_equal(flat(secure.arrays), flat(plain.arrays))  # masked, quantised
    assert not np.allclose(flat(secure.arrays), flat(initial))
    for metrics in secure.train_metrics_clientapp.values():
        assert metrics["secagg-contributors"] == CFG.num_clients
        assert metrics["secagg-clipped-fraction"] == 0.0
        # the server saw one aggregate: the total example count, nothing per client
        assert "train-loss" not in metrics


def test_flowers_fedavg_hears_of_a_clipping_range_that_cuts(initial):
    result = flower_fedavg_run(initial, secure=True)
    assert max(m["secagg-clipped-fraction"] for m in result.train_metrics_clientapp.values()) \
        == 0.0
    cut = FlowerFedAvg(fraction_train=1.0, fraction_evaluate=0.0).start(
        SecureAggregationGrid(grid(), SecureAggregationSettings(clip=1e-5)), initial,
        num_rounds=1, train_config=ConfigRecord({"lr": CFG.lr}))
    assert cut.train_metrics_clientapp[1]["secagg-clipped-fraction"] > 0.5


def test_an_aborted_round_keeps_flowers_model(initial):
    def one_client_only(msg, context):
        if context.node_config["partition-id"] > 0:
            raise ConnectionError("offline")
        return client_app(msg, context)

    inner = InProcessGrid(one_client_only, num_nodes=CFG.num_clients, run_config=CFG.to_dict())
    result = FlowerFedAvg(fraction_train=1.0, fraction_evaluate=0.0).start(
        SecureAggregationGrid(inner), initial, num_rounds=1,
        train_config=ConfigRecord({"lr": CFG.lr}))
    # Flower's Strategy.start records arrays only when a round aggregated some: none here
    assert len(result.arrays) == 0 and result.train_metrics_clientapp == {}


def fedlaavg(**changes):
    return FedLaAvg(clients_per_round=4, num_clients=CFG.num_clients, seed=CFG.seed, **changes)


def test_fedlaavg_under_strategy_start_with_secure_aggregation_equals_its_plain_run(initial):
    config = ConfigRecord({"lr": CFG.lr})
    plain = fedlaavg().start(grid(), initial, num_rounds=3, train_config=config)
    strategy = fedlaavg()
    secure = strategy.start(SecureAggregationGrid(grid(), SecureAggregationSettings(),
                                                  strategy=strategy),
                            initial, num_rounds=3, train_config=config)
    np.testing.assert_allclose(flat(secure.arrays), flat(plain.arrays), rtol=0, atol=1e-5)
    assert all(m["secagg-aborted"] == 0 and m["num-replies"] == 4
               for m in secure.train_metrics_clientapp.values())
    # the same grid in fedkit's own loop
    strategy = fedlaavg()
    looped = run_rounds(strategy, SecureAggregationGrid(grid(), strategy=strategy), initial,
                        num_rounds=3, timeout=None, train_config_fn=lambda r: config)
    np.testing.assert_allclose(flat(looped), flat(plain.arrays), rtol=0, atol=1e-5)


def test_a_strategy_needing_individual_updates_is_refused():
    with pytest.raises(ValueError, match="cannot run under secure aggregation"):
        SecureAggregationGrid(grid(), strategy=fedlaavg(mode="server-table"))
    with pytest.raises(ValueError, match="weighted_by_key = 'weight'"):
        SecureAggregationGrid(grid(), weighted_by_key="weight")


def test_a_round_under_another_arrayrecord_key_is_refused_not_sent_in_clear(initial):
    strategy = FlowerFedAvg(fraction_train=1.0, fraction_evaluate=0.0, arrayrecord_key="model")
    with pytest.raises(ValueError, match="refusing to send the round in clear"):
        strategy.start(SecureAggregationGrid(grid()), initial, num_rounds=1,
                       train_config=ConfigRecord({"lr": CFG.lr}))
