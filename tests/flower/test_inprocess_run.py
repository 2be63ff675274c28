"""Whole FedAvg runs of the real ServerApp and ClientApp on the in-process grid."""

import logging

import numpy as np
import pytest
from corrupt_client import corrupting_client

from fedkit.bench import read_results
from fedkit.config import RunConfig
from fedkit.flower import run_inprocess


def run(tmp_path, name="run", client=None, **changes):
    cfg = RunConfig(name=name, progress=False, output_dir=str(tmp_path / name), **changes)
    run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, client_app=client, seed=cfg.seed)
    return read_results(tmp_path / name)


def _without_timing(results):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in results["rounds"]]


def test_same_seed_gives_identical_metrics_and_participants(tmp_path):
    a = run(tmp_path, "a", rounds=4, num_clients=20, clients_per_round=5)
    b = run(tmp_path, "b", rounds=4, num_clients=20, clients_per_round=5)
    c = run(tmp_path, "c", rounds=4, num_clients=20, clients_per_round=5, seed=1)
    assert _without_timing(a) == _without_timing(b)
    assert _without_timing(a) != _without_timing(c)
    assert all(len(r["clients"]) == 5 for r in a["rounds"])
    assert (tmp_path / "a" / "accuracy.png").stat().st_size > 0


def test_results_file_holds_config_versions_and_rounds(tmp_path):
    results = run(tmp_path, rounds=3, eval_every=2)
    assert results["config"]["rounds"] == 3 and results["seed"] == 0
    assert results["runtime"] == "inprocess-batched"  # the default engine
    assert results["environment"]["packages"]["flwr"].startswith("1.42")
    assert [r["round"] for r in results["rounds"]] == [1, 2, 3]
    # evaluated at round 2 (every 2) and at the last round
    assert [r["round"] for r in results["rounds"] if "test_accuracy" in r] == [2, 3]
    assert sum(results["partition"]["sizes"]) > 0


def test_demo_settings_learn_well_above_chance(tmp_path):
    results = run(tmp_path, rounds=30)
    first, last = results["rounds"][0], results["rounds"][-1]
    assert last["test_accuracy"] > 0.5
    assert last["test_loss"] < first["test_loss"]


def test_bad_replies_are_rejected_and_every_round_completes(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        results = run(tmp_path, client=corrupting_client, rounds=3, num_clients=6,
                      clients_per_round=6)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("reply from client 0 rejected: array" in m and "has shape" in m
               for m in messages) == 3
    assert sum("reply from client 1 rejected: array" in m and "NaN or Inf" in m
               for m in messages) == 3
    for record in results["rounds"]:
        assert record["rejected_clients"] == [0, 1]
        assert record["clients"] == [2, 3, 4, 5]
        assert record["model_updated"]
    assert np.isfinite(results["rounds"][-1]["test_loss"])


@pytest.mark.parametrize("seed", [0, 1])
def test_cifar10_fedavg_three_rounds_beats_chance(tmp_path, seed, cifar10_dir):
    results = run(
        tmp_path, dataset="cifar10", data_dir=str(cifar10_dir), partition="iid", model="lenet5",
        num_clients=100, clients_per_round=10, rounds=3, local_steps=100, batch_size=32,
        lr=0.1, eval_every=1, seed=seed,
    )
    accuracy = results["rounds"][-1]["test_accuracy"]
    assert accuracy > 0.2, f"accuracy {accuracy:.3f} after 3 rounds, chance is 0.1"
    assert all(r["num_replies"] == 10 for r in results["rounds"])
