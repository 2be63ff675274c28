"""A SuperLink killed mid-run and restarted on its state database; the run is resumed.

Real processes on 127.0.0.1 (one TLS + SuperNode-authentication federation for this module,
``conftest.py``). The SuperLink is killed with SIGKILL (with its SuperExec and the running
ServerApp: nothing is said goodbye) after round 2's checkpoint and restarted on the same
port and database: it keeps the SuperNodes' registrations, the SuperNodes reconnect by
themselves, and ``fedkit deploy run`` with ``resume = true`` continues from the ServerApp's
checkpoint. FedLaAvg: the final model, g_bar and every client's version equal an
uninterrupted run of the same rounds on the in-process grid (no lost or double-counted
update; rounds after the last checkpoint are redone).
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from deploy_helpers import (
    Background,
    assert_same_model,
    checkpoint_round,
    fedlaavg_rule,
    final_arrays,
    wait_until,
)

from fedkit.bench import read_results
from fedkit.config import RunConfig
from fedkit.deploy.processes import healthy
from fedkit.flower import run_inprocess

pytestmark = pytest.mark.deploy

BASE = dict(algorithm="fedlaavg", num_clients=3, clients_per_round=3, model="logreg",
            dataset="synthetic", progress=False, checkpoint_every=1)
RUN_TIMEOUT = 300.0


def online_nodes(federation) -> int:
    """SuperNodes the SuperLink lists as online (``flwr supernode list``)."""
    out = subprocess.run(["flwr", "supernode", "list", federation.connection.name,
                          "--format", "json"], capture_output=True, text=True,
                         env=federation.env, timeout=60)
    try:
        nodes = json.loads(out.stdout)["nodes"]
    except (ValueError, KeyError):
        return 0
    return sum(node["status"] == "online" for node in nodes)


def test_superlink_killed_mid_run_restarts_and_the_run_resumes_exactly(federation, run_dir):
    out = run_dir / "deploy"
    cfg = RunConfig(name="deploy-link-restart", output_dir=str(out), rounds=5, **BASE)
    run = Background(federation.run, cfg, timeout=RUN_TIMEOUT)
    wait_until(lambda: checkpoint_round(out) >= 2, "round 2's checkpoint", run=run)
    link = federation.superlink
    old_pid = link.pid
    link.kill()
    assert not link.alive()
    # The interrupted `flwr run` cannot finish: it fails or reports a run that did not complete.
    try:
        status = run.result(timeout=300)
    except Exception:  # noqa: BLE001 - the CLI lost its SuperLink: any error is the expected end
        status = None
    assert status is None or status.get("status") != "finished:completed"
    interrupted_at = checkpoint_round(out)
    assert 2 <= interrupted_at < cfg.rounds

    restarted = federation.start_superlink()  # same port, same superlink.db
    assert restarted.pid != old_pid and healthy(restarted.address, federation.tls_files.ca_cert)
    assert all(p.alive() for p in federation.nodes.values()), "a SuperNode gave up"
    # The same SuperNode processes reconnect by themselves (they retry a lost SuperLink).
    wait_until(lambda: online_nodes(federation) == 3, "the 3 SuperNodes to reconnect",
               timeout=300, poll=2.0)
    resumed = cfg.replace(resume=True)
    status = federation.run(resumed, timeout=RUN_TIMEOUT)
    assert status["status"] == "finished:completed"
    rounds = read_results(out)["rounds"]
    assert [r["round"] for r in rounds] == list(range(1, cfg.rounds + 1))
    # The same SuperNode processes answered every round, before and after the restart.
    assert all(r["clients"] == [0, 1, 2] for r in rounds), rounds
    local = run_dir / "local"
    run_inprocess(cfg.replace(output_dir=str(local)).to_dict(), num_nodes=3,
                  engine="sequential")
    assert_same_model(final_arrays(out), final_arrays(local))
    got, want = fedlaavg_rule(out), fedlaavg_rule(local)
    np.testing.assert_array_equal(got["versions"], [cfg.rounds] * 3)
    np.testing.assert_array_equal(got["versions"], want["versions"])
    np.testing.assert_allclose(got["g_bar"], want["g_bar"], rtol=1e-5, atol=1e-9)
