"""The batched in-process grid computes what the sequential one computes (float32 tolerance)."""

import logging

import pytest

from fedkit.bench import read_results
from fedkit.config import RunConfig
from fedkit.flower import run_inprocess


def run(tmp_path, name, engine, client=None, **changes):
    cfg = RunConfig(name=name, progress=False, output_dir=str(tmp_path / name), **changes)
    run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, seed=cfg.seed, engine=engine,
                  client_app=client)
    return read_results(tmp_path / name)


def assert_same_run(batched, sequential):
    assert batched["runtime"] == "inprocess-batched"
    assert sequential["runtime"] == "inprocess"
    for got, want in zip(batched["rounds"], sequential["rounds"], strict=True):
        assert got["clients"] == want["clients"]
        assert got["num_rejected"] == want["num_rejected"] == 0
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-4)
        if "test_loss" in want:
            assert got["test_loss"] == pytest.approx(want["test_loss"], rel=1e-4)
            assert got["test_accuracy"] == pytest.approx(want["test_accuracy"], abs=2e-3)


@pytest.mark.parametrize(
    "changes",
    [
        {"algorithm": "fedavg"},
        {"algorithm": "fedavg", "local_steps": 0, "local_epochs": 1, "momentum": 0.9},
        {"algorithm": "fedlaavg", "availability": "alternating", "loss_scaling": "data-weighted"},
        {"algorithm": "fedlaavg", "fedlaavg_mode": "server-table"},
    ],
    ids=["fedavg-steps", "fedavg-epochs-momentum", "fedlaavg-delta", "fedlaavg-table"],
)
def test_batched_equals_sequential_on_the_embedded_dataset(tmp_path, changes):
    common = {"num_clients": 20, "clients_per_round": 6, "rounds": 5, **changes}
    assert_same_run(run(tmp_path, "b", "batched", **common),
                    run(tmp_path, "s", "sequential", **common))


def test_batched_equals_sequential_on_cifar10(tmp_path, cifar10_dir):
    # One-class partition: unequal client sizes; batch 64 > the smallest clients' sizes.
    # (Every model is checked against the sequential trainer in tests/training/test_batched.py;
    # here the whole path -- messages, replies, aggregation -- on real data with LeNet-5.)
    common = {"dataset": "cifar10", "data_dir": str(cifar10_dir), "partition": "one-class",
              "model": "lenet5", "num_clients": 1000, "clients_per_round": 8, "rounds": 2,
              "local_steps": 3, "batch_size": 64, "lr": 0.05}
    assert_same_run(run(tmp_path, "b", "batched", **common),
                    run(tmp_path, "s", "sequential", **common))


def test_a_foreign_client_app_falls_back_with_a_log_line(tmp_path, caplog):
    from fedkit.flower.apps.client_app import app

    def wrapped(msg, context):
        return app(msg, context)

    with caplog.at_level(logging.INFO):
        results = run(tmp_path, "w", "batched", client=wrapped, rounds=2)
    assert any("one at a time (no batch handler registered" in r.getMessage()
               for r in caplog.records)
    assert len(results["rounds"]) == 2
