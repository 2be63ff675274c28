"""fedkit on Flower's Deployment Engine: real SuperLink/SuperNode processes on 127.0.0.1.

One federation per module (TLS, SuperNode authentication, client ids 0-2; see conftest.py).
Each run's model is compared with the same run on fedkit's in-process grid, which runs the
same ServerApp and ClientApp code with the same seeds. Runs save a checkpoint every round,
so the server's final model and FedLaAvg state (g_bar, per-client versions and latest
rounds) can be read back.
"""

from __future__ import annotations

import numpy as np
import pytest
from deploy_helpers import (
    Background,
    answered_rounds,
    assert_same_model,
    checkpoint_round,
    dropping_at,
    fedlaavg_rule,
    final_arrays,
    flaky_client,
    log_count,
    wait_until,
)

from fedkit.bench import read_results
from fedkit.config import RunConfig
from fedkit.flower import run_inprocess
from fedkit.flower.apps.checkpoint import load_checkpoint
from fedkit.privacy.secagg import Stage

pytestmark = pytest.mark.deploy

BASE = dict(algorithm="fedlaavg", num_clients=3, clients_per_round=3, rounds=2,
            model="logreg", dataset="synthetic", progress=False, checkpoint_every=1)
RUN_TIMEOUT = 900.0


def _inprocess(cfg: RunConfig, folder, **kwargs):
    local = cfg.replace(output_dir=str(folder), resume=False)
    run_inprocess(local.to_dict(), num_nodes=local.num_clients, engine="sequential", **kwargs)
    return folder


@pytest.fixture(scope="module")
def first_run(federation, deploy_tmp):
    """A 2-round FedLaAvg run over TLS (tests 1 and 3 build on it)."""
    out = deploy_tmp / "tls-run"
    cfg = RunConfig(name="deploy-tls", output_dir=str(out), **BASE)
    status = federation.run(cfg, timeout=RUN_TIMEOUT)
    return cfg, status


def test_tls_fedlaavg_run_matches_the_inprocess_grid(first_run, run_dir):
    cfg, status = first_run
    assert status["status"] == "finished:completed"
    results = read_results(cfg.results_dir)
    assert results["runtime"] == "flower"
    assert [r["clients"] for r in results["rounds"]] == [[0, 1, 2], [0, 1, 2]]

    local = _inprocess(cfg, run_dir / "local")
    expected = read_results(local)
    for got, want in zip(results["rounds"], expected["rounds"], strict=True):
        assert got["test_loss"] == pytest.approx(want["test_loss"], rel=1e-5)
    assert_same_model(final_arrays(cfg.results_dir), final_arrays(local))


def test_failed_server_app_makes_deploy_run_exit_non_zero(federation, run_dir, monkeypatch,
                                                          capsys):
    # `flwr run` exits 0 when the ServerApp fails; `fedkit deploy run` reads the run's final
    # status and exits 1. Valid keys, but the one-class partition needs N to be a multiple
    # of the 10 classes: the ServerApp raises while building the data.
    import argparse

    from fedkit.deploy.cli import add_parser, main

    monkeypatch.setenv("FLWR_HOME", str(federation.workdir / "flwr-home"))
    parser = argparse.ArgumentParser(prog="fedkit")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args([
        "deploy", "run", "--set", "partition=one-class", "--set", "num_clients=7",
        "--set", "clients_per_round=2", "--set", "rounds=1", "--set", "progress=false",
        "--set", f"output_dir={run_dir / 'out'}", "--superlink", federation.connection.address,
        "--root-certificates", str(federation.tls_files.ca_cert), "--connection", "cli-test"])
    assert main(args) == 1
    assert "status 'finished:failed'" in capsys.readouterr().err
    assert not (run_dir / "out" / "results.json").exists()


def test_server_app_resumes_from_its_checkpoint(federation, first_run, run_dir):
    # A second ServerApp (a new `flwr run`) continues the 2-round run to 4 rounds. The
    # SuperNodes' context state belongs to the first run, so every client lost its G_i: the
    # server sends each one the model of its latest folded round and the client recomputes
    # G_i exactly. Nothing stored is lost: the end equals an uninterrupted 4-round run.
    cfg, _ = first_run
    resumed = cfg.replace(rounds=4, resume=True)
    status = federation.run(resumed, timeout=RUN_TIMEOUT)
    assert status["status"] == "finished:completed"
    results = read_results(resumed.results_dir)
    assert [r["round"] for r in results["rounds"]] == [1, 2, 3, 4]
    assert all(r["clients"] == [0, 1, 2] for r in results["rounds"])

    local = _inprocess(resumed, run_dir / "local")
    assert_same_model(final_arrays(resumed.results_dir), final_arrays(local))
    got, want = fedlaavg_rule(resumed.results_dir), fedlaavg_rule(local)
    np.testing.assert_array_equal(got["versions"], [4, 4, 4])
    np.testing.assert_array_equal(got["versions"], want["versions"])
    np.testing.assert_allclose(got["g_bar"], want["g_bar"], rtol=1e-5, atol=1e-9)


def test_killed_supernode_keeps_its_update_and_rejoins_without_double_counting(
        federation, run_dir):
    # Client 2's SuperNode is killed (SIGKILL, no goodbye) after round 1, so it misses round
    # 2 (the server waits round_timeout for it: a killed node looks online for up to 60 s).
    # It is restarted with the same client id (and key: SuperNode auth gives it back its
    # node id) and has lost its context state: it first answers `state-lost`, then
    # recomputes its G_i from the recovery model the server sends.
    # Rounds 2 and 3 wait for the dead node (until round_timeout, then until the SuperLink
    # expires its session, <= 60 s after the kill); the restarted node can only join after
    # that. With long-lived ClientApp workers a later round takes a few seconds, so the run
    # needs enough of them to still be going when the node is back.
    out = run_dir / "deploy"
    cfg = RunConfig(name="deploy-kill", output_dir=str(out), **{**BASE, "rounds": 12},
                    round_timeout=40.0)
    run = Background(federation.run, cfg, timeout=RUN_TIMEOUT)
    wait_until(lambda: checkpoint_round(out) >= 1, "round 1", run=run)
    federation.kill_node(2)
    # Restart at once; the SuperLink lets it in once the crashed session expired (<= 60 s).
    restart = Background(federation.start_node, 2, retry_for=240.0)
    wait_until(lambda: checkpoint_round(out) >= 2, "round 2", run=run)
    after_kill = load_checkpoint(out)
    status = run.result()
    node = restart.result()
    assert status["status"] == "finished:completed"

    rounds = read_results(out)["rounds"]
    clients = {r["round"]: r["clients"] for r in rounds}
    replied = {r["round"]: r["clients"] + r["rejected_clients"] for r in rounds}
    assert clients[1] == [0, 1, 2] and clients[2] == [0, 1]
    # The killed client's latest update still counts after the round it missed.
    rule = after_kill["strategy"]["rule"]
    assert int(rule["last_round"][2]) == 1 and int(rule["versions"][2]) == 1
    # Recognised after the restart: it takes part again.
    rejoined = [r for r in range(3, cfg.rounds + 1) if 2 in clients[r]]
    assert rejoined, f"client 2 never took part again: {clients}"
    # Not double-counted: one version per folded update.
    final = fedlaavg_rule(out)
    folded = [r for r in clients if 2 in clients[r]]
    assert int(final["versions"][2]) == len(folded)
    assert int(final["last_round"][2]) == max(folded)

    # The same run in-process: client 2 silent in the rounds its restarted SuperNode did not
    # answer (the SuperLink may answer for it while it still counts as online, and the
    # restarted node may first work off the killed one's stale round-2 message), and
    # without its state from its first answered round on.
    answered = {r for r in answered_rounds(node.log_file, int(status["run-id"]), node.log_start)
                if r >= 3 and 2 in replied[r]}
    absent = set(range(2, cfg.rounds + 1)) - answered
    local = _inprocess(cfg, run_dir / "local",
                       client_app=flaky_client(2, absent_rounds=absent,
                                               reset_before=min(answered)))
    expected = read_results(local)["rounds"]
    assert [r["clients"] for r in expected] == [r["clients"] for r in rounds]
    assert_same_model(final_arrays(out), final_arrays(local))
    np.testing.assert_allclose(final["g_bar"], fedlaavg_rule(local)["g_bar"], rtol=1e-5,
                               atol=1e-9)


def test_consistency_round_signs_with_each_nodes_own_key_files(federation, run_dir):
    # secagg_consistency_check on real SuperNodes: each signs its keys and the survivors set
    # with the key file its node config names and checks the others against the key list
    # from its node config (none of it from the server); the server holds its own copy of the
    # list (secagg_key_list). The aggregate is the same as without the option: the in-process
    # run (simulation keys, no server copy) gives the same model.
    for client_id in (0, 1, 2):  # whatever an earlier test left behind
        if not federation.nodes[client_id].alive():
            federation.start_node(client_id)
    out = run_dir / "deploy"
    cfg = RunConfig(name="deploy-consistency", output_dir=str(out), **{**BASE, "rounds": 1},
                    secure_aggregation=True, secagg_consistency_check=True,
                    secagg_key_list=str(federation.secagg_key_list), round_timeout=60.0)
    status = federation.run(cfg, timeout=RUN_TIMEOUT)
    assert status["status"] == "finished:completed"
    (record,) = read_results(out)["rounds"]
    assert record["secagg_aborted"] is False
    assert record["num_replies"] == 3 and record["clients"] == [0, 1, 2]
    local = _inprocess(cfg.replace(secagg_key_list=""), run_dir / "local")
    (want,) = read_results(local)["rounds"]
    # the same signatures' bytes: 3 clients x (key signature + consistency reply)
    assert record["secagg_bytes_up"] == want["secagg_bytes_up"]
    assert_same_model(final_arrays(out), final_arrays(local), atol=1e-6)


def test_secure_aggregation_survives_a_supernode_killed_mid_protocol(federation, run_dir):
    # Four SuperNodes; client 3's is killed right after it answered the share-keys stage,
    # so the server unmasks the sum of the other three with the shares of client 3's mask
    # secrets. The round completes with three contributions and equals the in-process
    # secure run in which client 3 drops at the masked-input stage.
    for client_id in (0, 1, 2):  # whatever an earlier test left behind
        if not federation.nodes[client_id].alive():
            federation.start_node(client_id)
    (node,) = federation.add_nodes([3])
    out = run_dir / "deploy"
    cfg = RunConfig(name="deploy-secagg", output_dir=str(out),
                    **{**BASE, "num_clients": 4, "clients_per_round": 4, "rounds": 1},
                    secure_aggregation=True, round_timeout=45.0)
    # Replies sent by client 3 in this run: its client id, then stages 1 and 2.
    start = node.log_file.stat().st_size
    run = Background(federation.run, cfg, timeout=RUN_TIMEOUT)
    wait_until(lambda: log_count(node.log_file, "Sent successfully", start) >= 3,
               "client 3's share-keys reply", run=run)
    federation.kill_node(3)
    status = run.result()
    assert status["status"] == "finished:completed"
    (record,) = read_results(out)["rounds"]
    assert record["secagg_aborted"] is False
    assert record["num_replies"] == 3 and record["clients"] == [0, 1, 2]
    assert record["model_updated"] is True

    local = _inprocess(cfg, run_dir / "local",
                       client_app=dropping_at(3, Stage.MASKED_INPUT))
    (want,) = read_results(local)["rounds"]
    assert want["clients"] == [0, 1, 2]
    assert_same_model(final_arrays(out), final_arrays(local), atol=1e-6)
