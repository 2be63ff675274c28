"""Start, watch and stop Flower's deployment processes: ``flower-superlink``, ``flower-supernode``.

Each process starts in a new session (its own process group), writes stdout and stderr to a
log file, and is stopped by PID: SIGTERM to its process group and to every descendant it
spawned (``flower-superexec``, ``flwr-serverapp``, ``flwr-clientapp``; the SuperLink starts
its SuperExec in yet another session), then SIGKILL after a grace period. Descendants are
found by walking down from the PID (``/proc/<pid>/task/*/children``), never by scanning the
process list; nothing else on the machine is touched. :meth:`FlowerProcess.kill` is the
crash: SIGKILL at once, no clean deactivation, so the SuperLink keeps the node "online" until
its heartbeat expires (30 s interval x patience 2 in Flower 1.42).

Readiness: a SuperLink is ready when ``GET /health`` on its port answers 200 (HTTPS with the
CA when TLS is on); a SuperNode is ready when it has activated at the SuperLink, i.e. its log
shows its node id, and (process isolation) its ClientApp workers have logged that they are
ready.

ClientApp isolation of a SuperNode (``isolation``):

* ``"subprocess"``: Flower's default. The SuperNode starts a ``flower-superexec``, which
  starts a new ``flwr-clientapp`` process per message (Python, Flower, torch and fedkit are
  imported again for every message).
* ``"process"``: ``flower-supernode --isolation process`` under
  :mod:`fedkit.deploy.supervisor`, with long-lived ClientApp workers
  (:mod:`fedkit.deploy.worker`) that import torch and fedkit once and run the tasks in
  process; a worker that dies is restarted. The recorded PID is the supervisor's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fedkit.flower.runtime.flwr_cli import flower_env

__all__ = [
    "ISOLATION_MODES",
    "FlowerProcess",
    "ProcessError",
    "free_port",
    "port_free",
    "healthy",
    "node_config_arg",
    "start_superlink",
    "start_supernode",
    "wait_connected",
    "wait_workers_ready",
    "worker_pids",
]

logger = logging.getLogger(__name__)

_NODE_READY = "SuperNode ID:"
ISOLATION_MODES = ("subprocess", "process")
"""How a SuperNode runs its ClientApp: a new process per message, or long-lived workers."""
_handed_out: set[int] = set()


class ProcessError(RuntimeError):
    """A Flower process exited or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free now and not handed out before by this process."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise ProcessError(f"no free TCP port found on {host}")


def port_free(host: str, port: int) -> bool:
    """True if a TCP server could bind ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _children(pid: int) -> list[int]:
    """The children of ``pid``: ``/proc/<pid>/task/<tid>/children`` of each of its threads."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def _descendants(pid: int) -> list[int]:
    """PIDs of every process below ``pid``, found from ``pid`` downwards (Linux /proc with
    ``CONFIG_PROC_CHILDREN``, on in mainstream kernels; empty elsewhere). No other process
    is looked at."""
    out, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def worker_pids(pid: int) -> list[int]:
    """PIDs of the ClientApp workers (:mod:`fedkit.deploy.worker`) below ``pid``."""
    found = []
    for child in _descendants(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"fedkit.deploy.worker" in argv:
            found.append(child)
    return found


def _signal(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


@dataclasses.dataclass
class FlowerProcess:
    """A Flower process this program started.

    Attributes:
        name: ``superlink`` or ``supernode-<client id>``.
        popen: The process handle.
        command: Its command line.
        log_file: Where its stdout and stderr go.
        address: The ``host:port`` it serves.
        log_start: Size of the log file when the process started (its output follows).
    """

    name: str
    popen: subprocess.Popen
    command: list[str]
    log_file: Path
    address: str
    log_start: int = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen.poll() is None

    def log_text(self) -> str:
        """What this process wrote to its log (the file may hold earlier processes' output)."""
        try:
            with self.log_file.open("rb") as f:
                f.seek(self.log_start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, num_lines: int = 30) -> str:
        """The last lines this process wrote to its log."""
        return "\n".join(self.log_text().splitlines()[-num_lines:])

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the process, its group and its descendants; SIGKILL what remains.

        Returns:
            The exit status, or None if it could not be collected.
        """
        if not self.alive():
            self._reap_orphans()
            return self.popen.returncode
        family = _descendants(self.pid)
        _signal([self.pid], signal.SIGTERM)
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %s) did not stop within %.0f s; killing it", self.name,
                           self.pid, timeout)
            self.kill()
        self._reap_orphans(family)
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the process and everything it started (a crash, as seen by the SuperLink)."""
        family = [self.pid, *_descendants(self.pid)]
        _signal(family, signal.SIGKILL)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %s) survived SIGKILL", self.name, self.pid)

    def _reap_orphans(self, family: Sequence[int] = ()) -> None:
        # Descendants that outlive their parent (e.g. a SuperExec in its own session).
        deadline = time.monotonic() + 5.0
        alive = [p for p in family if Path(f"/proc/{p}").exists() and not _zombie(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
        _signal(alive, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _launch(name: str, command: list[str], log_file: Path, address: str,
            env: Mapping[str, str] | None, cwd: Path | None) -> FlowerProcess:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_start = log_file.stat().st_size if log_file.exists() else 0
    full_env = flower_env(dict(env) if env is not None else None)
    with log_file.open("ab") as log:
        popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=full_env, cwd=cwd,
                                 start_new_session=True)
    logger.info("started %s (pid %s): %s", name, popen.pid, " ".join(command))
    return FlowerProcess(name=name, popen=popen, command=command, log_file=log_file,
                         address=address, log_start=log_start)


def _wait(proc: FlowerProcess, ready, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise ProcessError(f"{proc.name} exited with status {proc.popen.returncode} before "
                               f"{what}; its log {proc.log_file} ends with:\n{proc.log_tail()}")
        if ready():
            return
        time.sleep(0.25)
    raise ProcessError(f"{proc.name} (pid {proc.pid}) not {what} after {timeout:.0f} s; "
                       f"its log {proc.log_file} ends with:\n{proc.log_tail()}")


def start_superlink(*, port: int, host: str = "127.0.0.1", database: str | Path,
                    log_file: str | Path, certfile: str | Path | None = None,
                    keyfile: str | Path | None = None, ca_certfile: str | Path | None = None,
                    enable_supernode_auth: bool = False, extra_args: Sequence[str] = (),
                    env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
                    wait: float | None = 120.0) -> FlowerProcess:
    """Start ``flower-superlink`` on ``host:port`` and wait until ``/health`` answers.

    TLS is on when ``certfile``, ``keyfile`` and ``ca_certfile`` are given, off
    (``--insecure``) when none is. The link state lives in the SQLite file ``database``, so
    a restarted SuperLink keeps its registered SuperNodes and past runs.

    Raises:
        ValueError: If only some of the TLS files are given, or auth is asked without TLS.
        ProcessError: If it exits or is not healthy within ``wait`` seconds.
    """
    tls = [certfile, keyfile, ca_certfile]
    if any(tls) and not all(tls):
        raise ValueError("certfile, keyfile and ca_certfile go together: give all three for "
                         "TLS or none for --insecure")
    if enable_supernode_auth and not all(tls):
        raise ValueError("enable_supernode_auth needs TLS (Flower refuses it with --insecure)")
    cmd = ["flower-superlink", "--host", host, "--port", str(port),
           "--database", str(database)]
    if all(tls):
        cmd += ["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile),
                "--ssl-ca-certfile", str(ca_certfile)]
    else:
        cmd += ["--insecure"]
    if enable_supernode_auth:
        cmd += ["--enable-supernode-auth"]
    cmd += list(extra_args)
    proc = _launch("superlink", cmd, Path(log_file), f"{host}:{port}", env,
                   Path(cwd) if cwd else None)
    if wait:
        try:
            _wait(proc, lambda: healthy(proc.address, ca_certfile), "healthy", wait)
        except ProcessError:
            proc.stop()
            raise
    return proc


def healthy(address: str, ca_certfile: str | Path | None = None, timeout: float = 2.0) -> bool:
    """True if ``GET /health`` on the SuperLink at ``address`` answers 200."""
    scheme = "https" if ca_certfile else "http"
    context = ssl.create_default_context(cafile=str(ca_certfile)) if ca_certfile else None
    try:
        with urllib.request.urlopen(f"{scheme}://{address}/health", timeout=timeout,
                                    context=context) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def node_config_arg(values: Mapping[str, Any]) -> str:
    """The ``--node-config`` string of ``values`` (``key=value`` pairs, TOML values).

    Raises:
        ValueError: If a key is not a plain word or a value is not a bool, int, float or a
            string without double quotes.
    """
    parts = []
    for key, value in values.items():
        if not key or any(c.isspace() or c in "=\"'" for c in key):
            raise ValueError(f"node config key {key!r} must be a plain word")
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        elif isinstance(value, str) and '"' not in value:
            text = json.dumps(value)
        else:
            raise ValueError(f"node config {key!r} = {value!r}: expected a bool, int, float or "
                             "a string without double quotes")
        parts.append(f"{key}={text}")
    return " ".join(parts)


def start_supernode(*, superlink: str, port: int, node_config: Mapping[str, Any],
                    log_file: str | Path, host: str = "127.0.0.1",
                    root_certificates: str | Path | None = None,
                    auth_private_key: str | Path | None = None,
                    isolation: str = "subprocess", num_workers: int = 1,
                    extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                    cwd: str | Path | None = None, name: str | None = None,
                    wait: float | None = 120.0) -> FlowerProcess:
    """Start ``flower-supernode`` connected to ``superlink`` and wait until it is active.

    ``node_config`` is what the ClientApp reads from ``context.node_config`` (fedkit reads
    ``client-id``, ``data-dir`` and ``availability``). ``port`` is the SuperNode's own
    ClientAppIo/Runtime API port and must differ between SuperNodes of one host. Without
    ``root_certificates`` the connection is ``--insecure``. ``isolation`` is one of
    :data:`ISOLATION_MODES` (see the module docstring); under ``"process"``,
    ``num_workers`` long-lived ClientApp workers run the tasks and waiting includes them.

    Raises:
        ValueError: If ``isolation`` is not one of :data:`ISOLATION_MODES`.
        ProcessError: If it exits (e.g. its key is not registered: exit code 305) or is not
            connected within ``wait`` seconds.
    """
    if isolation not in ISOLATION_MODES:
        raise ValueError(f"isolation = {isolation!r}, expected one of {ISOLATION_MODES}")
    cmd = ["flower-supernode", "--superlink", superlink, "--host", host, "--port", str(port)]
    cmd += (["--root-certificates", str(root_certificates)] if root_certificates
            else ["--insecure"])
    if auth_private_key:
        cmd += ["--auth-supernode-private-key", str(auth_private_key)]
    if node_config:
        cmd += ["--node-config", node_config_arg(node_config)]
    cmd += list(extra_args)
    if isolation == "process":
        from fedkit.deploy.supervisor import supervisor_command

        cmd = supervisor_command([*cmd, "--isolation", "process"],
                                 runtime_api_address=f"{_dial_host(host)}:{port}",
                                 num_workers=num_workers)
    label = name or f"supernode-{node_config.get('client-id', port)}"
    proc = _launch(label, cmd, Path(log_file), f"{host}:{port}", env,
                   Path(cwd) if cwd else None)
    if wait:
        wait_connected(proc, wait)
        if isolation == "process":
            wait_workers_ready(proc, num_workers, wait)
    return proc


def _dial_host(host: str) -> str:
    """The address a local client dials for a server listening on ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(
        host, f"[{host}]" if ":" in host else host)


def wait_connected(proc: FlowerProcess, timeout: float = 120.0) -> None:
    """Wait until the SuperNode ``proc`` has activated at its SuperLink.

    Raises:
        ProcessError: If it exits or does not connect in time (it is then stopped).
    """
    try:
        _wait(proc, lambda: _NODE_READY in proc.log_text(), "connected to the SuperLink",
              timeout)
    except ProcessError:
        proc.stop()
        raise


def wait_workers_ready(proc: FlowerProcess, num_workers: int = 1, timeout: float = 120.0,
                       *, already: int = 0) -> None:
    """Wait until ``num_workers`` more ClientApp workers of ``proc`` than ``already`` have
    logged that they are ready (process isolation; a worker imports torch first).

    Raises:
        ProcessError: If ``proc`` exits or the workers are not ready in time (it is then
            stopped).
    """
    from fedkit.deploy.supervisor import READY_LINE

    try:
        _wait(proc, lambda: proc.log_text().count(READY_LINE) >= already + num_workers,
              f"running {num_workers} ready ClientApp worker(s)", timeout)
    except ProcessError:
        proc.stop()
        raise
