"""Drive Flower's ``flwr`` CLI: environment, run-config file, ``flwr run --stream``, run status.

The pieces every runtime that submits runs with ``flwr run`` shares: the local simulation
(:mod:`fedkit.flower.runtime.simulation`) and deployment (:mod:`fedkit.deploy`). Two
behaviours of Flower 1.42 shape them: ``flwr run`` exits 0 even when the ServerApp fails, so
a run's final status is read back with ``flwr ls <connection> --format json``
(:func:`run_status`, :func:`check_completed`); and ``flwr run --stream`` prints the run id,
which :func:`stream_flwr_run` takes from its output.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedkit.config import RunConfig

__all__ = [
    "FlowerRunError",
    "FlowerRunTimeout",
    "check_completed",
    "find_project_root",
    "flower_env",
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
    """fedkit's source checkout: the Flower app whose bundle (FAB) carries fedkit's code.

    Deployment (:func:`fedkit.deploy.run_on_superlink`) builds its FAB from it, so that the
    SuperNodes run the code of this checkout; the local simulation needs no checkout
    (:func:`fedkit.flower.runtime.simulation.write_flower_app`).

    Raises:
        FlowerRunError: If fedkit is not imported from a source checkout.
    """
    import fedkit

    root = Path(fedkit.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise FlowerRunError(
            f"no pyproject.toml in {root}: fedkit is not imported from its source checkout; "
            "pass the checkout as project_root (the Flower app bundle is built from it)"
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


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


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


def write_run_config(cfg: RunConfig | Mapping[str, Any], path: Path) -> Path:
    """Write every key of ``cfg`` (a fedkit config, or another app's mapping) into a TOML
    file for ``flwr run --run-config``."""
    values = cfg.to_dict() if isinstance(cfg, RunConfig) else dict(cfg)
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items()))
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
