"""Run a fedkit experiment under Flower's Simulation Engine (Ray) with ``flwr run``.

``flwr run <app> local`` submits the run to a local simulation SuperLink (127.0.0.1:39091),
which it starts detached if none is running, with one virtual SuperNode per client. Two
behaviours of Flower 1.42 shape this module:

* ``flwr run`` exits 0 even when the ServerApp fails, so the run's final status is read back
  with ``flwr ls <connection> --format json`` and a failure raises :class:`FlowerRunError`;
* the SuperLink keeps running after the run; :func:`run_flower_simulation` stops the SuperLink
  processes that it started itself (by PID), never one that was already running.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fedkit.config import RunConfig

__all__ = [
    "FlowerRunError",
    "FlowerRunTimeout",
    "check_completed",
    "find_project_root",
    "flower_env",
    "run_flower_simulation",
    "run_status",
    "stream_flwr_run",
    "write_run_config",
]

logger = logging.getLogger(__name__)


class FlowerRunError(RuntimeError):
    """A run under Flower's engine did not finish successfully."""


class FlowerRunTimeout(FlowerRunError):
    """``flwr run`` did not return in time; ``run_id`` is the run it started (or None)."""

    def __init__(self, run_id: int | None, message: str) -> None:
        super().__init__(message)
        self.run_id = run_id


def find_project_root() -> Path:
    """The folder holding fedkit's pyproject.toml (the Flower app that ``flwr run`` builds).

    Raises:
        FlowerRunError: If fedkit is not installed from a source checkout.
    """
    import fedkit

    root = Path(fedkit.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise FlowerRunError(
            f"no pyproject.toml in {root}: --runtime flower needs fedkit installed from a "
            "source checkout (pip install -e .)"
        )
    return root


def flower_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Flower's CLI and the processes it spawns.

    The interpreter's ``bin`` folder goes first on PATH (Flower starts ``flwr-serverapp`` and
    ``flwr-clientapp`` by name); telemetry, the update check and per-run dependency
    installation are off unless the caller set them.
    """
    env = dict(os.environ if base is None else base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    env.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    env.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    return env


def _superlink_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"flower-superlink") for part in cmdline[:2]):
            pids.add(int(entry.name))
    return pids


def _stop(pids: set[int], timeout: float = 10.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if Path(f"/proc/{pid}").exists():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _int_if_whole(value: float) -> float | int:
    # Flower's federation config wants an integer CPU count where one is meant.
    return int(value) if float(value).is_integer() else value


def run_status(run_id: int, env: dict[str, str], connection: str = "local") -> dict[str, Any]:
    """Flower's record of run ``run_id`` (``flwr ls <connection> --format json``).

    Raises:
        FlowerRunError: If the listing cannot be read or does not hold the run.
    """
    out = subprocess.run(["flwr", "ls", connection, "--format", "json"], env=env,
                         capture_output=True, text=True, timeout=120)
    try:
        listing = json.loads(out.stdout)
    except json.JSONDecodeError as exc:
        raise FlowerRunError(f"could not read `flwr ls` output: {out.stdout!r} {out.stderr!r}") \
            from exc
    for run in listing.get("runs", []):
        if int(run.get("run-id", -1)) == run_id:
            return run
    raise FlowerRunError(f"run {run_id} is not listed by `flwr ls {connection}`: {listing}")


def write_run_config(cfg: RunConfig, path: Path) -> Path:
    """Write every key of ``cfg`` into a TOML file for ``flwr run --run-config``."""
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in cfg.to_dict().items()))
    return path


def stream_flwr_run(cmd: list[str], env: dict[str, str], *, stream_to: Any = None,
                    timeout: float | None = None) -> tuple[int, list[str]]:
    """Run a ``flwr run ... --stream`` command; return the run id and the output lines.

    Raises:
        FlowerRunTimeout: If the command runs longer than ``timeout`` seconds (it is killed;
            the run itself may go on).
        FlowerRunError: If the command printed no run id.
    """
    logger.info("running: %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer is not None:
        timer.start()
    run_id = None
    lines = []
    try:
        for line in proc.stdout or ():
            lines.append(line)
            if stream_to is not None:
                stream_to.write(line)
                stream_to.flush()
            match = re.search(r"run (?:ID )?(\d{3,})", line, flags=re.IGNORECASE)
            if run_id is None and match:
                run_id = int(match.group(1))
        proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if timeout and proc.returncode == -signal.SIGKILL:
        raise FlowerRunTimeout(run_id, f"`flwr run` (run {run_id}) did not finish within "
                               f"{timeout} s and was stopped; the run itself may go on")
    if run_id is None:
        raise FlowerRunError("`flwr run` printed no run id:\n" + "".join(lines[-40:]))
    return run_id, lines


def check_completed(status: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    """Return ``status`` if the run finished as completed.

    Raises:
        FlowerRunError: Otherwise, with Flower's status details and the end of the output.
    """
    if status.get("status") != "finished:completed":
        raise FlowerRunError(
            f"Flower run {status.get('run-id')} ended with status {status.get('status')!r}: "
            f"{status.get('status-details', '')}\n" + "".join(lines[-40:])
        )
    return status


def run_flower_simulation(
    cfg: RunConfig,
    *,
    num_cpus_per_client: float = 1.0,
    stream_to: Any = None,
    keep_superlink: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` with ``flwr run . local`` and return Flower's record of the finished run.

    ``cfg.output_dir`` and ``cfg.data_dir`` should be absolute: the ServerApp and ClientApps
    run in other processes with other working directories.

    Raises:
        FlowerRunError: If the run does not reach the status ``finished:completed``.
    """
    env = flower_env()
    before = _superlink_pids()
    with tempfile.TemporaryDirectory(prefix="fedkit-run-config-") as tmp:
        config_file = write_run_config(cfg, Path(tmp) / "run_config.toml")
        federation = (f"num-supernodes={cfg.num_clients} "
                      f"client-resources-num-cpus={_toml_value(_int_if_whole(num_cpus_per_client))}")
        cmd = ["flwr", "run", str(find_project_root()), "local", "--stream",
               "--run-config", str(config_file), "--federation-config", federation]
        try:
            run_id, lines = stream_flwr_run(cmd, env, stream_to=stream_to, timeout=timeout)
            status = run_status(run_id, env)
        finally:
            if not keep_superlink:
                _stop(_superlink_pids() - before)
    return check_completed(status, lines)
