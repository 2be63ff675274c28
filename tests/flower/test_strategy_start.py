"""fedkit strategies are ordinary Flower strategies: Flower's own Strategy.start runs them."""

import numpy as np
from flwr.app import ConfigRecord
from flwr.supercore.task_identity import TaskIdentity

from fedkit.algorithms import FedAvg
from fedkit.config import RunConfig
from fedkit.flower import InProcessGrid
from fedkit.flower.apps.client_app import app as client_app
from fedkit.flower.apps.task import arrays_of, load_data, new_model


def test_fedavg_under_flowers_strategy_start_matches_fedkits_loop(tmp_path):
    cfg = RunConfig(num_clients=12, clients_per_round=4, rounds=3, progress=False)
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    data = load_data(cfg)
    initial = arrays_of(new_model(cfg, data))

    grid = InProcessGrid(client_app, num_nodes=cfg.num_clients, run_config=cfg.to_dict())
    strategy = FedAvg(clients_per_round=4, num_clients=12, seed=cfg.seed)
    result = strategy.start(grid, initial, num_rounds=3,
                            train_config=ConfigRecord({"lr": cfg.lr}))

    from fedkit.flower.apps.loop import run_rounds

    grid2 = InProcessGrid(client_app, num_nodes=cfg.num_clients, run_config=cfg.to_dict())
    strategy2 = FedAvg(clients_per_round=4, num_clients=12, seed=cfg.seed)
    final = run_rounds(strategy2, grid2, initial, num_rounds=3, timeout=None,
                       train_config_fn=lambda r: ConfigRecord({"lr": cfg.lr}))
    for name in final.keys():
        np.testing.assert_array_equal(result.arrays[name].numpy(), final[name].numpy())
    assert sorted(result.train_metrics_clientapp) == [1, 2, 3]
    assert all(m["num-replies"] == 4 for m in result.train_metrics_clientapp.values())
    assert not np.array_equal(initial[name].numpy(), final[name].numpy())
