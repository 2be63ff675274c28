"""``fedkit deploy superlink|supernode`` stop their whole process tree on a stop signal.

The wrapper is what a deployment runs in the background (``nohup``, a shell job, systemd), so
a signal reaches the wrapper's PID only: the Flower process runs in a session of its own and
starts children of its own (a SuperExec). Each test starts the real wrapper on 127.0.0.1,
records every process below it, signals the wrapper by its PID and checks that the wrapper
exits with status 0, that none of those processes is left and (SuperNode) that the SuperLink
no longer lists the node online. The ``ignored`` cases start the wrapper with the signal
ignored, as ``nohup`` (SIGHUP) and a background shell job (SIGINT) do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedkit.deploy.processes import _descendants, free_port, healthy, start_superlink
from fedkit.deploy.runner import Connection, write_connection
from fedkit.flower.runtime.flwr_cli import flower_env

pytestmark = pytest.mark.deploy

_FEDKIT = str(Path(sys.executable).parent / "fedkit")


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _ignoring(sig: signal.Signals | None):
    def preexec() -> None:
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    return preexec


def _start_wrapper(args: list[str], out: Path, env: dict, ignored: signal.Signals | None
                   ) -> subprocess.Popen:
    with out.open("wb") as log:
        return subprocess.Popen([_FEDKIT, "deploy", *args], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=out.parent, start_new_session=True,
                                preexec_fn=_ignoring(ignored))


def _kill_all(wrapper: subprocess.Popen, family: list[int]) -> None:
    for pid in [wrapper.pid, *family]:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
    wrapper.wait(timeout=10)


def _signal_and_check(wrapper: subprocess.Popen, sig: signal.Signals, out: Path) -> None:
    family = _descendants(wrapper.pid)
    try:
        assert family, "the wrapper started no process"
        wrapper.send_signal(sig)
        code = wrapper.wait(timeout=60)
        assert code == 0, out.read_text()
        assert f"stopped on {sig.name}" in out.read_text()
        _wait_for(lambda: not any(_running(p) for p in family), "the process tree to stop",
                  timeout=30)
    finally:  # leave nothing of ours running, whatever failed above
        _kill_all(wrapper, family)


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "flwr-home"
    home.mkdir()
    return flower_env({**os.environ, "FLWR_HOME": str(home)})


@pytest.mark.parametrize("sig, ignored", [
    (signal.SIGTERM, None),
    (signal.SIGINT, signal.SIGINT),   # a background job: SIGINT ignored at start
    (signal.SIGHUP, signal.SIGHUP),   # under nohup: SIGHUP ignored at start
])
def test_superlink_wrapper_stops_its_tree(tmp_path, env, sig, ignored):
    port = free_port()
    out = tmp_path / "wrapper.out"
    wrapper = _start_wrapper(["superlink", "--insecure", "--host", "127.0.0.1", "--port",
                              str(port), "--database", str(tmp_path / "link.db"), "--log",
                              str(tmp_path / "superlink.log")], out, env, ignored)
    try:
        _wait_for(lambda: "running (pid" in out.read_text(), "the wrapper to start")
        _wait_for(lambda: healthy(f"127.0.0.1:{port}"), "the SuperLink to be healthy")
    except BaseException:
        _kill_all(wrapper, _descendants(wrapper.pid))
        raise
    _signal_and_check(wrapper, sig, out)
    assert not healthy(f"127.0.0.1:{port}")


def _node_status(env: dict) -> list[str]:
    out = subprocess.run(["flwr", "supernode", "list", "sigtest", "--format", "json"],
                         capture_output=True, text=True, env=env, timeout=60)
    return [node["status"] for node in json.loads(out.stdout)["nodes"]]


@pytest.mark.parametrize("sig, ignored", [
    (signal.SIGTERM, None),
    (signal.SIGHUP, signal.SIGHUP),
])
def test_supernode_wrapper_stops_its_tree_and_goes_offline(tmp_path, env, sig, ignored):
    port = free_port()
    link = start_superlink(port=port, database=tmp_path / "link.db",
                           log_file=tmp_path / "superlink.log", env=env, cwd=tmp_path)
    try:
        write_connection(Connection("sigtest", f"127.0.0.1:{port}", None), env=env,
                         make_default=True)
        out = tmp_path / "wrapper.out"
        node_log = tmp_path / "supernode.log"
        wrapper = _start_wrapper(["supernode", "--client-id", "0", "--superlink",
                                  f"127.0.0.1:{port}", "--insecure", "--port",
                                  str(free_port()), "--log", str(node_log)], out, env, ignored)
        try:
            _wait_for(lambda: node_log.exists() and "SuperNode ID:" in node_log.read_text(),
                      "the SuperNode to connect")
            assert _node_status(env) == ["online"]
        except BaseException:
            _kill_all(wrapper, _descendants(wrapper.pid))
            raise
        _signal_and_check(wrapper, sig, out)
        statuses = _node_status(env)
        assert len(statuses) == 1 and statuses[0] != "online", statuses
    finally:
        link.stop()
