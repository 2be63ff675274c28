"""Launch a fedkit run on a running SuperLink with ``flwr run`` and judge how it ended.

The ``flwr`` CLI reaches a SuperLink through a named connection in
``$FLWR_HOME/config.toml`` (default ``~/.flwr``): a ``[superlink.<name>]`` table with
``address`` and either ``insecure = true`` or ``root-certificates = "<ca.pem>"`` (Flower
1.42's ``flwr`` CLI; docs/deployment.md §5). :func:`write_connection` adds or replaces one
such table and keeps everything else in the file.

:func:`run_on_superlink` writes the full run config to a TOML file, runs
``flwr run <fedkit checkout> <connection> --run-config <file> --stream``, takes the run id
from its output, waits until Flower records the run as finished and raises
:class:`~fedkit.flower.runtime.flwr_cli.FlowerRunError` unless the status is
``finished:completed`` -- ``flwr run`` itself exits 0 when the ServerApp fails.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from fedkit.config import RunConfig
from fedkit.flower.runtime.flwr_cli import (
    FlowerRunError,
    FlowerRunTimeout,
    check_completed,
    find_project_root,
    flower_env,
    run_status,
    stream_flwr_run,
    write_run_config,
)

__all__ = [
    "Connection",
    "flwr_home",
    "register_supernodes",
    "run_on_superlink",
    "write_connection",
]

logger = logging.getLogger(__name__)

# Flower's default config.toml (flwr.cli.constant.DEFAULT_FLOWER_CONFIG_TOML in 1.42), which
# `flwr` writes on first use; kept so that `flwr run . local` still works next to ours.
_DEFAULT_CONNECTIONS = {
    "default": "local",
    "supergrid": {"address": "supergrid.flower.ai"},
    "local": {"address": ":local:"},
}


@dataclasses.dataclass(frozen=True)
class Connection:
    """How the ``flwr`` CLI reaches a SuperLink.

    Attributes:
        name: The connection's name in ``config.toml`` (what ``flwr run``/``flwr ls`` take).
        address: ``host:port`` of the SuperLink (its one HTTP port in Flower 1.42).
        root_certificates: The CA certificate that signed the SuperLink's certificate; None
            means an insecure (plain HTTP) connection.
    """

    name: str
    address: str
    root_certificates: Path | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"connection name {self.name!r}: expected letters, digits, '-' "
                             "or '_'")
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"SuperLink address {self.address!r}: expected HOST:PORT")

    def table(self) -> dict[str, Any]:
        """The ``[superlink.<name>]`` table."""
        if self.root_certificates is None:
            return {"address": self.address, "insecure": True}
        return {"address": self.address,
                "root-certificates": str(Path(self.root_certificates).resolve())}


def flwr_home(env: Mapping[str, str] | None = None) -> Path:
    """Flower's home folder: ``$FLWR_HOME`` or ``~/.flwr``."""
    env = os.environ if env is None else env
    return Path(env["FLWR_HOME"]) if env.get("FLWR_HOME") else Path.home() / ".flwr"


def write_connection(connection: Connection, *, env: Mapping[str, str] | None = None,
                     make_default: bool = False) -> Path:
    """Add or replace ``connection`` in ``$FLWR_HOME/config.toml``; return the file's path.

    Raises:
        ValueError: If the existing file is not valid TOML (it is left untouched).
    """
    path = flwr_home(env) / "config.toml"
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path} is not valid TOML ({exc}); fix or remove it, then "
                             "write the connection again") from None
    else:
        data = {"superlink": json.loads(json.dumps(_DEFAULT_CONNECTIONS))}
    links = data.setdefault("superlink", {})
    links[connection.name] = connection.table()
    if make_default:
        links["default"] = connection.name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(data))
    tmp.replace(path)
    return path


def register_supernodes(public_keys: Sequence[str | Path], connection: Connection, *,
                        env: Mapping[str, str] | None = None,
                        timeout: float = 120.0) -> dict[Path, int]:
    """Register SuperNode public keys on a SuperLink started with ``--enable-supernode-auth``.

    Runs one ``flwr supernode register <key> <connection> --format json`` per key (in
    parallel). The connection must already be written (:func:`write_connection`).

    Returns:
        ``{public key path: node id}``; a registered SuperNode keeps this node id whenever it
        reconnects with the matching private key.

    Raises:
        FlowerRunError: If a registration fails (the reason comes from the ``flwr`` CLI).
    """
    env = flower_env(dict(env) if env is not None else None)
    procs = {
        Path(key): subprocess.Popen(
            ["flwr", "supernode", "register", str(key), connection.name, "--format", "json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for key in public_keys
    }
    node_ids = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=timeout)
        try:
            node_ids[key] = int(json.loads(out[out.index("{"):])["node-id"])
        except (ValueError, KeyError) as exc:
            raise FlowerRunError(f"registering SuperNode key {key} on {connection.name!r} "
                                 f"failed (exit {proc.returncode}): {out.strip()} "
                                 f"{err.strip()}") from exc
    return node_ids


def run_on_superlink(cfg: RunConfig | Mapping[str, Any], connection: Connection | str, *,
                     project_root: str | Path | None = None, stream_to: Any = None,
                     timeout: float | None = None, env: Mapping[str, str] | None = None,
                     settle: float = 60.0) -> dict[str, Any]:
    """Run ``cfg`` on the SuperLink of ``connection``; return Flower's record of the run.

    ``cfg.output_dir`` is a path on the SuperLink's machine (the ServerApp writes the results
    there) and should be absolute; so should ``cfg.data_dir`` unless every SuperNode sets
    ``data-dir`` in its node config.

    Args:
        cfg: The run config (every key is sent); for another Flower app (``project_root``),
            a mapping of that app's run-config keys.
        connection: A :class:`Connection` or the name of one in ``config.toml``.
        project_root: The Flower app to build (default: this fedkit checkout).
        stream_to: A text stream that receives the run's log as it arrives.
        timeout: Seconds to wait for the run; on expiry the run is stopped (``flwr stop``).
        env: Environment of the ``flwr`` calls (default: this process's, see
            :func:`~fedkit.flower.runtime.flwr_cli.flower_env`).
        settle: Seconds to wait, after the log stream ended, for the run's final status when
            no ``timeout`` is given. With a ``timeout``, a run still going when its stream
            ends (Flower's log stream can end early on a loaded SuperLink) is waited for
            until the timeout's end (at least ``settle`` seconds), then stopped.

    Raises:
        FlowerRunError: If the run does not reach ``finished:completed``.
    """
    name = connection.name if isinstance(connection, Connection) else connection
    env = flower_env(dict(env) if env is not None else None)
    root = Path(project_root) if project_root else find_project_root()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fedkit-deploy-run-") as tmp:
        config_file = write_run_config(cfg, Path(tmp) / "run_config.toml")
        cmd = ["flwr", "run", str(root), name, "--run-config", str(config_file), "--stream"]
        try:
            run_id, lines = stream_flwr_run(cmd, env, stream_to=stream_to, timeout=timeout)
        except FlowerRunTimeout as exc:
            if exc.run_id is not None:
                subprocess.run(["flwr", "stop", str(exc.run_id), name], env=env,
                               capture_output=True, timeout=120)
            raise
    # The stream ends with the run; its final status may lag, and a busy SuperLink may not
    # answer at once. The stream can also end while the run goes on (seen with 50 SuperNodes
    # on 2 cores): the run's status, not its log, says when it is over.
    # A SuperLink that cannot be asked gets ``settle`` seconds; a run it reports as still
    # going gets until the end of ``timeout``.
    settled = time.monotonic() + settle
    deadline = max(settled, started + timeout if timeout else 0.0)
    while True:
        try:
            status, problem = run_status(run_id, env, name), None
            if str(status.get("status", "")).startswith("finished"):
                break
        except FlowerRunError as exc:
            status, problem = None, exc
        now = time.monotonic()
        if status is None and now >= settled:
            raise FlowerRunError(f"could not read the status of run {run_id} on {name!r} "
                                 f"within {settle:.0f} s: {problem}") from problem
        if status is not None and now >= deadline:
            if timeout:
                subprocess.run(["flwr", "stop", str(run_id), name], env=env,
                               capture_output=True, timeout=120)
                raise FlowerRunTimeout(run_id, f"run {run_id} on {name!r} was still "
                                       f"{status.get('status')!r} after {timeout:.0f} s and "
                                       f"was stopped")
            break
        time.sleep(2.0)
    logger.info("run %s on %r: %s", run_id, name, status.get("status"))
    return check_completed(status, lines)
