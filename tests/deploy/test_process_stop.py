"""Stopping a Flower process stops what it started, found from its PID downwards."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from fedkit.deploy.processes import _launch

# A parent that starts a child in a session of its own (as flower-superlink starts its
# SuperExec), prints the child's PID and waits.
_PARENT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],\n"
    "                         start_new_session=True)\n"
    "print('child', child.pid, flush=True)\n"
    "time.sleep(600)\n"
)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_stop_ends_a_descendant_in_another_session(tmp_path):
    proc = _launch("parent", [sys.executable, "-c", _PARENT], tmp_path / "parent.log",
                   "127.0.0.1:0", env=None, cwd=None)
    deadline = time.monotonic() + 30
    while "child" not in proc.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(proc.log_text().split()[1])
    try:
        assert _running(child)
        proc.stop(timeout=5)
        assert not proc.alive()
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(child)
    finally:  # whatever happened above, leave nothing of ours running
        proc.kill()
        if _running(child):
            os.kill(child, signal.SIGKILL)
