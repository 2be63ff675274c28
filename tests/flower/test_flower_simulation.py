"""The same apps under Flower's Simulation Engine (`flwr run`, Ray): tiny runs.

`flwr run` exits 0 even when the ServerApp fails, so success is judged by the run status
Flower records (`flwr ls --format json`), which run_flower_simulation reads back. Each run
starts a SuperLink of its own and stops exactly that one: a SuperLink someone else started
keeps serving.
"""

import json
import os
import re
import socket
import subprocess
import tomllib
from pathlib import Path

import pytest

from fedkit.bench import read_results
from fedkit.cli import main
from fedkit.config import RunConfig
from fedkit.deploy.processes import free_port, healthy, start_superlink
from fedkit.flower import run_inprocess
from fedkit.flower.runtime.flwr_cli import FlowerRunError, flower_env
from fedkit.flower.runtime.simulation import (
    APP_COMPONENTS,
    run_flower_simulation,
    write_flower_app,
)

ROOT = Path(__file__).resolve().parents[2]


def test_fedlaavg_under_flower_simulation_engine_matches_the_inprocess_grid(tmp_path):
    # FedLaAvg in client-delta mode keeps G_i in each node's context state, under an
    # availability scenario applied at the grid boundary: both must work under Ray too.
    cfg = RunConfig(name="flower-tiny", algorithm="fedlaavg", availability="bernoulli",
                    rounds=3, num_clients=4, clients_per_round=2, progress=False,
                    output_dir=str(tmp_path / "out"))
    status = run_flower_simulation(cfg)
    assert status["status"] == "finished:completed"
    results = read_results(tmp_path / "out")
    assert results["runtime"] == "flower"
    assert [r["round"] for r in results["rounds"]] == [1, 2, 3]
    assert all(r["num_rejected"] == 0 for r in results["rounds"])
    assert results["rounds"][-1]["test_accuracy"] is not None

    local = cfg.replace(output_dir=str(tmp_path / "local"))
    run_inprocess(local.to_dict(), num_nodes=cfg.num_clients, seed=cfg.seed)
    expected = read_results(tmp_path / "local")
    for got, want in zip(results["rounds"], expected["rounds"], strict=True):
        assert got["clients"] == want["clients"]
        assert got["test_loss"] == pytest.approx(want["test_loss"], rel=1e-5)


def test_failed_server_app_is_reported_not_swallowed(tmp_path):
    # Valid keys, but the one-class partition needs N to be a multiple of the 10 classes:
    # the ServerApp raises while building the data.
    cfg = RunConfig(name="flower-fails", partition="one-class", rounds=1, num_clients=7,
                    clients_per_round=2, progress=False, output_dir=str(tmp_path / "out"))
    with pytest.raises(FlowerRunError, match=r"status 'finished:failed'"):
        run_flower_simulation(cfg)
    assert not (tmp_path / "out" / "results.json").exists()


def test_secure_aggregation_under_flower_simulation_engine(tmp_path):
    # The four stages run over Flower's grid; each node keeps its protocol state in its
    # context between ClientApp calls (Ray actors share nothing else).
    cfg = RunConfig(name="flower-secure", algorithm="fedlaavg", secure_aggregation=True,
                    secagg_neighbours=2, rounds=2, num_clients=5, clients_per_round=4,
                    progress=False, output_dir=str(tmp_path / "out"))
    status = run_flower_simulation(cfg)
    assert status["status"] == "finished:completed"
    results = read_results(tmp_path / "out")
    assert all(r["num_replies"] == 4 and r["secagg_aborted"] is False
               for r in results["rounds"])

    local = cfg.replace(output_dir=str(tmp_path / "local"))
    run_inprocess(local.to_dict(), num_nodes=cfg.num_clients, seed=cfg.seed)
    expected = read_results(tmp_path / "local")
    for got, want in zip(results["rounds"], expected["rounds"], strict=True):
        assert got["clients"] == want["clients"]
        assert got["test_loss"] == pytest.approx(want["test_loss"], rel=1e-5)


def _accepts_connections(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def test_simulate_stops_its_own_superlink_and_leaves_an_unrelated_one_serving(tmp_path, capsys):
    # Someone else's SuperLink (its own Flower home, state and port), as `flwr run . local`
    # or another fedkit run would leave one: started here and stopped here, by its PID.
    env = {**flower_env(), "FLWR_HOME": str(tmp_path / "other-home")}
    other = start_superlink(port=free_port(), database=tmp_path / "other.db",
                            log_file=tmp_path / "other.log", extra_args=["--simulation"],
                            env=env)
    try:
        code = main(["simulate", "--runtime", "flower", "--set", "rounds=2",
                     "--set", "num_clients=4", "--set", "clients_per_round=2",
                     "--output-dir", str(tmp_path / "out")])
        assert code == 0
        err = capsys.readouterr().err
        assert other.alive() and healthy(other.address), other.log_tail()
    finally:
        other.stop()
    # Progress without -v: the SuperLink line, then the ServerApp's progress lines.
    match = re.search(r"SuperLink (127\.0\.0\.1:\d+) \(pid (\d+)\)", err)
    assert match, err
    assert re.search(r"round 2/2  loss \d\.\d{4}  acc +\d+\.\d%", err), err
    assert "INFO" not in err  # Flower's own log only with -v
    address, pid = match.group(1), int(match.group(2))
    assert address != other.address
    assert not os.path.exists(f"/proc/{pid}") and not _accepts_connections(address)
    assert len(read_results(tmp_path / "out")["rounds"]) == 2


def test_flower_app_names_the_packaged_apps_and_every_run_config_key(tmp_path):
    app = tomllib.loads((write_flower_app(tmp_path) / "pyproject.toml").read_text())
    checkout = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert app["tool"]["flwr"]["app"]["components"] == APP_COMPONENTS
    assert checkout["tool"]["flwr"]["app"]["components"] == APP_COMPONENTS
    assert app["tool"]["flwr"]["app"]["config"] == RunConfig().to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]


def test_flower_runtime_runs_from_an_installed_wheel(installed_wheel, tmp_path):
    # No checkout: the Flower app is write_flower_app's, the code the installed package.
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    done = subprocess.run([str(installed_wheel.fedkit), "simulate", "--runtime", "flower",
                           "--set", "availability=markov", "--set", "rounds=2",
                           "--set", "num_clients=4", "--set", "clients_per_round=2",
                           "--output-dir", str(tmp_path / "out")],
                          cwd=cwd, env=installed_wheel.env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["runtime"] == "flower" and len(results["rounds"]) == 2
