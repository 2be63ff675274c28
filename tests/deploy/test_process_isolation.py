"""SuperNodes in process isolation: long-lived ClientApp workers, on real processes.

One federation per module in process isolation (TLS, client ids 0-2, one worker per
SuperNode). Runs are compared with the same run in subprocess isolation (a second
federation) and on fedkit's in-process grid; workers are killed by PID and must come back;
stopping a federation or a ``fedkit deploy supernode`` wrapper must leave no worker behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_helpers import Background, assert_same_model, final_arrays, log_count, wait_until

from fedkit.bench import read_results
from fedkit.config import RunConfig
from fedkit.deploy import LocalFederation
from fedkit.deploy.processes import (
    _descendants,
    free_port,
    start_superlink,
    wait_workers_ready,
    worker_pids,
)
from fedkit.deploy.runner import Connection, write_connection
from fedkit.deploy.supervisor import READY_LINE
from fedkit.flower import run_inprocess
from fedkit.flower.runtime.flwr_cli import flower_env

pytestmark = pytest.mark.deploy

BASE = dict(algorithm="fedlaavg", num_clients=3, clients_per_round=3, rounds=2,
            model="logreg", dataset="synthetic", progress=False, checkpoint_every=1)
RUN_TIMEOUT = 600.0


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _none_left(pids, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not any(_running(p) for p in pids)


@pytest.fixture(scope="module")
def workers_federation(deploy_tmp):
    fed = LocalFederation(deploy_tmp / "workers", num_nodes=3, tls=True, isolation="process")
    fed.start()
    try:
        yield fed
    finally:
        fed.close()


def _inprocess(cfg: RunConfig, folder: Path) -> Path:
    run_inprocess(cfg.replace(output_dir=str(folder)).to_dict(), num_nodes=cfg.num_clients,
                  engine="sequential")
    return folder


def test_workers_give_the_model_of_subprocess_isolation_and_of_the_inprocess_grid(
        workers_federation, run_dir):
    cfg = RunConfig(name="workers", output_dir=str(run_dir / "workers"), **BASE)
    status = workers_federation.run(cfg, timeout=RUN_TIMEOUT)
    assert status["status"] == "finished:completed"
    assert [r["clients"] for r in read_results(cfg.results_dir)["rounds"]] == [[0, 1, 2]] * 2

    sub = cfg.replace(name="subprocess", output_dir=str(run_dir / "subprocess"))
    with LocalFederation(run_dir / "subprocess-federation", num_nodes=3, tls=True,
                         isolation="subprocess") as fed:
        assert not any(worker_pids(p.pid) for p in fed.nodes.values())
        assert fed.run(sub, timeout=RUN_TIMEOUT)["status"] == "finished:completed"

    local = _inprocess(cfg, run_dir / "local")
    assert_same_model(final_arrays(cfg.results_dir), final_arrays(sub.results_dir))
    assert_same_model(final_arrays(cfg.results_dir), final_arrays(local))


def test_a_killed_worker_is_restarted_and_the_run_completes(workers_federation, run_dir):
    fed = workers_federation
    node = fed.nodes[0]
    log = node.log_file
    # Killed while idle: the supervisor starts a new worker, which warms up again.
    (old,) = fed.worker_pids(0)
    ready = node.log_text().count(READY_LINE)
    os.kill(old, signal.SIGKILL)
    wait_workers_ready(node, 1, already=ready)
    (new,) = fed.worker_pids(0)
    assert new != old and not _running(old)
    assert f"ClientApp worker (pid {old}) exited with status -9" in node.log_text()

    # Killed again during a run, once it has answered round 1 and closed that task (the
    # worker logs "task 1: completed" after Flower's push_task_output): round 2 waits for
    # the next worker, and the run completes with every client in every round. (Killed
    # between pushing the reply and closing the task, the task stays open in Flower's
    # SuperNode and the node's next message is never handed out: docs/deployment.md §4.)
    cfg = RunConfig(name="restart", output_dir=str(run_dir / "restart"), **BASE)
    start = log.stat().st_size
    run = Background(fed.run, cfg, timeout=RUN_TIMEOUT)
    wait_until(lambda: log_count(log, ": completed in", start) >= 1,
               "client 0's round-1 task closed", run=run, poll=0.05)
    os.kill(new, signal.SIGKILL)
    status = run.result()
    assert status["status"] == "finished:completed"
    assert [r["clients"] for r in read_results(cfg.results_dir)["rounds"]] == [[0, 1, 2]] * 2
    (third,) = fed.worker_pids(0)
    assert third not in (old, new)
    assert_same_model(final_arrays(cfg.results_dir),
                      final_arrays(_inprocess(cfg, run_dir / "local")))


def test_closing_a_federation_leaves_no_worker(deploy_tmp):
    fed = LocalFederation(deploy_tmp / "close", num_nodes=1, tls=False, isolation="process",
                          num_workers=2)
    fed.start()
    try:
        workers = fed.worker_pids(0)
        family = _descendants(fed.nodes[0].pid)
        assert len(workers) == 2 and set(workers) <= set(family)
    finally:
        fed.close()
    assert _none_left([fed.nodes[0].pid, *family])


def test_stopping_the_supernode_wrapper_leaves_no_worker(tmp_path):
    env = flower_env({**os.environ, "FLWR_HOME": str(tmp_path / "flwr-home")})
    port = free_port()
    link = start_superlink(port=port, database=tmp_path / "link.db",
                           log_file=tmp_path / "superlink.log", env=env, cwd=tmp_path)
    try:
        write_connection(Connection("workers", f"127.0.0.1:{port}", None), env=env,
                         make_default=True)
        node_log = tmp_path / "supernode.log"
        with (tmp_path / "wrapper.out").open("wb") as out:
            wrapper = subprocess.Popen(
                [str(Path(sys.executable).parent / "fedkit"), "deploy", "supernode",
                 "--client-id", "0", "--superlink", f"127.0.0.1:{port}", "--insecure",
                 "--port", str(free_port()), "--isolation", "process", "--log", str(node_log)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=tmp_path, start_new_session=True)
        family: list[int] = []
        try:
            wait_until(lambda: node_log.exists() and READY_LINE in node_log.read_text(),
                       "the worker to be ready", timeout=180)
            family = _descendants(wrapper.pid)
            assert worker_pids(wrapper.pid)
            wrapper.send_signal(signal.SIGTERM)
            assert wrapper.wait(timeout=60) == 0, (tmp_path / "wrapper.out").read_text()
            assert _none_left(family), [p for p in family if _running(p)]
        finally:  # leave nothing of ours running, whatever failed above
            for pid in [wrapper.pid, *family]:
                if _running(pid):
                    os.kill(pid, signal.SIGKILL)
            wrapper.wait(timeout=10)
    finally:
        link.stop()
