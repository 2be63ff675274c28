"""Process isolation without processes: code identity, commands, the ClientApp's lean import."""

from __future__ import annotations

import argparse
import subprocess
import sys
import types

import pytest

from fedkit.deploy import LocalFederation
from fedkit.deploy.cli import add_parser
from fedkit.deploy.processes import start_supernode
from fedkit.deploy.supervisor import supervisor_command
from fedkit.deploy.worker import same_package_code


def _package(tmp_path, files: dict[str, str]) -> types.ModuleType:
    folder = tmp_path / "loaded" / "mypkg"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    package = types.ModuleType("mypkg")
    package.__path__ = [str(folder)]
    return package


def _fab(tmp_path, files: dict[str, str]):
    project = tmp_path / "fab"
    for name, text in files.items():
        (project / "mypkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (project / "mypkg" / name).write_text(text)
    return project


FILES = {"__init__.py": "", "app.py": "x = 1\n", "data/scenario.toml": "a = 1\n"}


def test_a_fab_with_the_imported_files_is_the_same_code(tmp_path):
    package = _package(tmp_path, {**FILES, "__pycache__/app.cpython-311.pyc": "bytes"})
    assert same_package_code(_fab(tmp_path, FILES), package)


@pytest.mark.parametrize("change", [
    {"app.py": "x = 2\n"},                       # an edited module
    {"data/scenario.toml": "a = 2\n"},           # an edited data file
    {"new.py": "y = 1\n"},                       # a module the imported package lacks
])
def test_a_fab_with_other_files_is_other_code(tmp_path, change):
    package = _package(tmp_path, FILES)
    assert not same_package_code(_fab(tmp_path, {**FILES, **change}), package)


def test_a_fab_without_the_package_is_other_code(tmp_path):
    (tmp_path / "fab").mkdir()
    assert not same_package_code(tmp_path / "fab", _package(tmp_path, FILES))


def test_same_package_code_needs_a_package():
    with pytest.raises(ValueError, match="'plain' is not a package with a folder on disk"):
        same_package_code(__import__("pathlib").Path("."), types.ModuleType("plain"))


def test_supervisor_command_wraps_a_process_isolated_supernode():
    cmd = supervisor_command(["flower-supernode", "--port", "9300", "--isolation", "process"],
                             runtime_api_address="127.0.0.1:9300", num_workers=2,
                             preload=["a.b:c"], poll_interval=0.5)
    assert cmd[1:3] == ["-m", "fedkit.deploy.supervisor"]
    assert cmd[cmd.index("--workers") + 1] == "2"
    assert cmd[cmd.index("--preload") + 1] == "a.b:c"
    assert cmd[cmd.index("--poll-interval") + 1] == "0.5"
    assert cmd[cmd.index("--") + 1:] == ["flower-supernode", "--port", "9300", "--isolation",
                                         "process"]


@pytest.mark.parametrize("supernode", [
    ["flower-supernode", "--port", "9300"],
    ["flower-supernode", "--isolation", "subprocess"],
])
def test_supervisor_refuses_a_supernode_that_runs_its_own_executor(supernode):
    with pytest.raises(ValueError, match="must run with --isolation process"):
        supervisor_command(supernode, runtime_api_address="127.0.0.1:9300")


@pytest.mark.parametrize("num_workers", [0, -1, True, 1.5])
def test_supervisor_needs_at_least_one_worker(num_workers):
    with pytest.raises(ValueError, match=r"num_workers = .*expected an integer >= 1"):
        supervisor_command(["flower-supernode", "--isolation", "process"],
                           runtime_api_address="127.0.0.1:9300", num_workers=num_workers)


def test_unknown_isolation_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"isolation = 'thread', expected one of"):
        start_supernode(superlink="127.0.0.1:1", port=2, node_config={},
                        log_file=tmp_path / "x.log", isolation="thread")
    with pytest.raises(ValueError, match=r"isolation = 'thread', expected one of"):
        LocalFederation(tmp_path, num_nodes=1, isolation="thread")


def test_deploy_cli_isolation_defaults_to_long_lived_workers():
    parser = argparse.ArgumentParser(prog="fedkit")
    add_parser(parser.add_subparsers(dest="command"))
    base = ["deploy", "supernode", "--client-id", "0", "--insecure"]
    args = parser.parse_args(base)
    assert (args.isolation, args.workers) == ("process", 1)
    args = parser.parse_args([*base, "--isolation", "subprocess"])
    assert args.isolation == "subprocess"
    args = parser.parse_args(["deploy", "local", "--isolation", "process", "--workers", "2"])
    assert (args.isolation, args.workers) == ("process", 2)


def test_the_client_app_imports_torch_only_when_used():
    # A flwr-clientapp process that only answers the client-id query never imports torch;
    # warm_up pays for torch and its lazy torch._dynamo import once, in a long-lived worker.
    script = ("import sys\n"
              "import fedkit.flower.apps.client_app as c\n"
              "before = 'torch' in sys.modules\n"
              "c.warm_up()\n"
              "print(before, 'torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, check=True)
    assert out.stdout.split() == ["False", "True"]


# -- a worker free for the next task -------------------------------------------------------
_FAKE_WORKER = """
import os, sys, time
fd = int(sys.argv[sys.argv.index("--status-fd") + 1])
state, seconds = sys.argv[1], float(sys.argv[2])
os.write(fd, state.encode())            # takes a task: waits for its message or runs it ...
time.sleep(seconds)
os.write(fd, b"i")                      # ... and is done after `seconds`
time.sleep(600)
"""

_RUN_SUPERVISOR = """
import logging, sys
from fedkit.deploy import supervisor
supervisor.SPARE_IDLE_SECONDS = 1.0
supervisor.STALLED_PULL_SECONDS = 1.0
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
worker = [sys.executable, "-c", {fake!r}, {state!r}, {seconds!r}]
node = [sys.executable, "-c", "import time; time.sleep({lifetime})"]
sys.exit(supervisor.Supervisor(node, worker, 1, max_workers={max_workers}).run())
"""


def _supervise(state: str, seconds: float, lifetime: float, max_workers: int) -> str:
    script = _RUN_SUPERVISOR.format(fake=_FAKE_WORKER, state=state, seconds=str(seconds),
                                    lifetime=lifetime, max_workers=max_workers)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_worker_stuck_waiting_for_its_message_gets_an_extra_one_up_to_the_cap():
    # Every fake worker takes a task whose message never comes: the supervisor adds workers
    # while none is idle, but never more than max_workers.
    log = _supervise("p", 600, lifetime=8, max_workers=3)
    assert log.count("started ClientApp worker") == 1
    assert log.count("started an extra ClientApp worker") == 2
    assert log.count("has waited") == 2


def test_a_worker_running_a_long_client_app_gets_no_extra_one():
    # Training for long is not being stuck: the task's message has arrived.
    log = _supervise("b", 600, lifetime=5, max_workers=3)
    assert log.count("started ClientApp worker") == 1
    assert "extra" not in log


def test_an_extra_worker_retires_once_the_stuck_task_ends():
    # The wait ends after 3 s: then two workers are idle, one more than kept, and the extra
    # one is stopped after SPARE_IDLE_SECONDS (1 s here); the first one is never stopped.
    log = _supervise("p", 3, lifetime=9, max_workers=2)
    assert log.count("started an extra ClientApp worker") >= 1
    assert "retiring the extra ClientApp worker" in log
    lines = log.splitlines()
    first = next(line for line in lines if line.startswith("started ClientApp worker"))
    first_pid = first.split("pid ")[1].rstrip(")")
    assert not any("retiring" in line and f"pid {first_pid})" in line for line in lines)


def test_max_workers_below_workers_is_refused():
    from fedkit.deploy.supervisor import Supervisor
    with pytest.raises(ValueError, match="max_workers = 0, expected at least the 1 workers"):
        Supervisor(["true"], ["true"], 1, max_workers=0)
