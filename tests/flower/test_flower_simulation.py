"""The same apps under Flower's Simulation Engine (`flwr run`, Ray): tiny runs.

`flwr run` exits 0 even when the ServerApp fails, so success is judged by the run status
Flower records (`flwr ls --format json`), which run_flower_simulation reads back.
"""

import pytest

from fedkit.bench import read_results
from fedkit.config import RunConfig
from fedkit.flower.simulation import FlowerRunError, _superlink_pids, run_flower_simulation


def test_fedavg_runs_to_completion_under_flower_simulation_engine(tmp_path):
    before = _superlink_pids()
    cfg = RunConfig(name="flower-tiny", rounds=2, num_clients=4, clients_per_round=2,
                    progress=False, output_dir=str(tmp_path / "out"))
    status = run_flower_simulation(cfg)
    assert status["status"] == "finished:completed"
    results = read_results(tmp_path / "out")
    assert results["runtime"] == "flower"
    assert [r["round"] for r in results["rounds"]] == [1, 2]
    assert all(r["num_replies"] == 2 and r["num_rejected"] == 0 for r in results["rounds"])
    assert results["rounds"][-1]["test_accuracy"] is not None
    # The SuperLink that `flwr run` left behind was stopped; none of ours is left running.
    assert _superlink_pids() <= before


def test_failed_server_app_is_reported_not_swallowed(tmp_path):
    # Valid keys, but the one-class partition needs N to be a multiple of the 10 classes:
    # the ServerApp raises while building the data.
    cfg = RunConfig(name="flower-fails", partition="one-class", rounds=1, num_clients=7,
                    clients_per_round=2, progress=False, output_dir=str(tmp_path / "out"))
    with pytest.raises(FlowerRunError, match=r"status 'finished:failed'"):
        run_flower_simulation(cfg)
    assert not (tmp_path / "out" / "results.json").exists()
