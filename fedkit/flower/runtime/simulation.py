"""Run a fedkit experiment under Flower's Simulation Engine (Ray) with ``flwr run``.

:func:`run_flower_simulation` brings up everything it uses and takes down only that:

1. a SuperLink in simulation mode (``flower-superlink --simulation``) that it starts itself,
   on a free port of 127.0.0.1, with its own Flower home (``FLWR_HOME``: the installed app,
   the connection) and its own state database, all in one temporary folder;
2. ``flwr run <app> <connection> --stream`` against that SuperLink, with one virtual
   SuperNode per client (``--federation-config``); the app is :func:`write_flower_app`'s
   one-file Flower app naming fedkit's ServerApp and ClientApp, imported from the installed
   package, so no source checkout is needed;
3. the run's final status, read back with ``flwr ls`` (``flwr run`` exits 0 even when the
   ServerApp fails): anything but ``finished:completed`` raises :class:`FlowerRunError`;
4. that SuperLink stopped by its PID, with the processes it started
   (:meth:`fedkit.deploy.FlowerProcess.stop`). A SuperLink it did not start -- the one
   ``flwr run . local`` keeps on port 39091, another fedkit run's -- is never touched.

Where the virtual clients run is :class:`~fedkit.flower.runtime.ray_cluster.RayOptions`'
business: Ray started by Flower on this machine (the default), or a running Ray cluster
(``ray_address``), with the CPUs and GPUs each client reserves (docs/scaling.md).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

import tomli_w

from fedkit.config import RunConfig
from fedkit.deploy.processes import ProcessError, free_port, start_superlink
from fedkit.deploy.runner import Connection, write_connection
from fedkit.flower.apps.progress import is_progress_line
from fedkit.flower.runtime.flwr_cli import (
    FlowerRunError,
    check_completed,
    flower_env,
    run_status,
    stream_flwr_run,
    write_run_config,
)
from fedkit.flower.runtime.ray_cluster import RayOptions

__all__ = ["APP_COMPONENTS", "run_flower_app", "run_flower_simulation", "write_flower_app"]

logger = logging.getLogger(__name__)

APP_COMPONENTS = {"serverapp": "fedkit.flower.apps.server_app:app",
                  "clientapp": "fedkit.flower.apps.client_app:app"}
"""fedkit's Flower app components (``[tool.flwr.app.components]``, as in pyproject.toml)."""

_CONNECTION = "fedkit-simulation"


def _fedkit_version() -> str:
    try:
        return version("fedkit")
    except PackageNotFoundError:
        return "0.0.0"


def write_flower_app(folder: str | Path) -> Path:
    """Write a Flower app that runs the installed fedkit: one ``pyproject.toml`` in ``folder``.

    It names fedkit's ServerApp and ClientApp (:data:`APP_COMPONENTS`) and declares every
    run-config key with its default (Flower accepts ``--run-config`` overrides of declared
    keys only). The app bundle ``flwr run`` builds from it holds that file alone: the
    ServerApp and ClientApp processes import fedkit from their environment (the one this
    process runs in), so a wheel install works as well as a checkout.

    Returns:
        The folder, to pass to ``flwr run``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    project = {
        "project": {"name": "fedkit", "version": _fedkit_version(),
                    "description": "fedkit's ServerApp and ClientApp, run from the installed "
                                   "package", "license": "Apache-2.0"},
        "tool": {"flwr": {"app": {"publisher": "fedkit", "components": dict(APP_COMPONENTS),
                                  "config": RunConfig().to_dict()}}},
    }
    (folder / "pyproject.toml").write_text(tomli_w.dumps(project))
    return folder


class _ProgressOnly:
    """A text stream that passes on the ServerApp's progress lines and drops the rest."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, line: str) -> None:
        if is_progress_line(line):
            self.stream.write(line)

    def flush(self) -> None:
        self.stream.flush()


def run_flower_simulation(
    cfg: RunConfig,
    *,
    num_cpus_per_client: float = 1.0,
    num_gpus_per_client: float = 0.0,
    ray_address: str | None = None,
    stream_to: Any = None,
    progress_to: TextIO | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` under Flower's Simulation Engine on a SuperLink of its own.

    ``cfg.output_dir`` and ``cfg.data_dir`` should be absolute: the ServerApp and ClientApps
    run in other processes with other working directories.

    Args:
        cfg: The run config (every key is sent with ``--run-config``).
        num_cpus_per_client: CPUs Ray reserves per virtual SuperNode (a whole number).
        num_gpus_per_client: GPUs Ray reserves per virtual SuperNode (0: none).
        ray_address: A running Ray cluster the virtual SuperNodes run on (``HOST:PORT`` of
            its head node, or ``"auto"``); None: Flower starts Ray on this machine. With a
            cluster, ``cfg.data_dir`` must hold the data at the same path on every node.
        stream_to: A text stream that receives the run's whole log as it arrives.
        progress_to: A text stream that receives one line when the SuperLink is up and then
            only the ServerApp's progress lines (round, loss, accuracy); ignored when
            ``stream_to`` is given.
        timeout: Seconds ``flwr run`` may take; on expiry the SuperLink (and the run with it)
            is stopped and :class:`~fedkit.flower.runtime.flwr_cli.FlowerRunTimeout` raised.

    Returns:
        Flower's record of the finished run (``flwr ls --format json``).

    Raises:
        ConfigError: If a resource or the address is malformed (nothing is started).
        RayClusterError: If the Ray cluster cannot be found or reached (nothing is started).
        FlowerRunError: If the SuperLink does not start, or the run does not reach the status
            ``finished:completed``.
    """
    with tempfile.TemporaryDirectory(prefix="fedkit-flower-app-") as tmp:
        app = write_flower_app(Path(tmp) / "app")
        config_file = write_run_config(cfg, Path(tmp) / "run_config.toml")
        header = f"{cfg.num_clients} virtual SuperNodes, {cfg.rounds} rounds"
        return run_flower_app(app, num_supernodes=cfg.num_clients, run_config=config_file,
                              num_cpus_per_client=num_cpus_per_client,
                              num_gpus_per_client=num_gpus_per_client,
                              ray_address=ray_address, stream_to=stream_to,
                              progress_to=progress_to, progress_header=header,
                              timeout=timeout)


def run_flower_app(
    app: str | Path,
    *,
    num_supernodes: int,
    run_config: Path | Mapping[str, Any] | None = None,
    num_cpus_per_client: float = 1.0,
    num_gpus_per_client: float = 0.0,
    ray_address: str | None = None,
    stream_to: Any = None,
    progress_to: TextIO | None = None,
    progress_header: str = "",
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run any Flower app (a folder with its ``pyproject.toml``) under Flower's Simulation
    Engine on a SuperLink of its own (the module docstring, steps 1-4).

    Args:
        app: The app folder (what ``flwr run <app>`` takes).
        num_supernodes: Virtual SuperNodes.
        run_config: A TOML file of ``--run-config`` overrides, or the overrides themselves.
        num_cpus_per_client, num_gpus_per_client, ray_address, stream_to, progress_to,
            timeout: As for :func:`run_flower_simulation`.
        progress_header: Appended to the line ``progress_to`` receives when the SuperLink is up.

    Returns:
        Flower's record of the finished run (``flwr ls --format json``).

    Raises:
        ConfigError: If a resource or the address is malformed (nothing is started).
        RayClusterError: If the Ray cluster cannot be found or reached (nothing is started).
        FlowerRunError: If the SuperLink does not start, or the run does not reach the status
            ``finished:completed``.
    """
    ray_opts = RayOptions(address=ray_address, num_cpus_per_client=num_cpus_per_client,
                          num_gpus_per_client=num_gpus_per_client)
    env = ray_opts.environment(flower_env())
    with tempfile.TemporaryDirectory(prefix="fedkit-flower-sim-") as tmp:
        work = Path(tmp)
        env["FLWR_HOME"] = str(work / "flwr-home")
        try:
            superlink = start_superlink(
                port=free_port(), database=work / "superlink.db", log_file=work / "superlink.log",
                extra_args=["--simulation", "--isolation", "subprocess"], env=env)
        except ProcessError as exc:
            raise FlowerRunError(f"could not start the simulation SuperLink: {exc}") from exc
        try:
            write_connection(Connection(_CONNECTION, superlink.address), env=env)
            cmd = ["flwr", "run", str(app), _CONNECTION, "--stream",
                   "--federation-config", ray_opts.federation_config(num_supernodes)]
            if isinstance(run_config, Mapping):
                overrides = work / "run_config.toml"
                overrides.write_text(tomli_w.dumps(dict(run_config)))
                run_config = overrides
            if run_config is not None:
                cmd += ["--run-config", str(run_config)]
            if stream_to is None and progress_to is not None:
                where = f", Ray cluster {env['RAY_ADDRESS']}" if ray_opts.address else ""
                progress_to.write(f"Flower Simulation Engine: SuperLink {superlink.address} "
                                  f"(pid {superlink.pid}){where}, {progress_header}\n")
                progress_to.flush()
                stream_to = _ProgressOnly(progress_to)
            run_id, lines = stream_flwr_run(cmd, env, stream_to=stream_to, timeout=timeout)
            status = run_status(run_id, env, _CONNECTION)
        except FlowerRunError as exc:
            # Say what became of the SuperLink: its log is gone with the temporary folder.
            state = ("running" if superlink.alive()
                     else f"exited with status {superlink.popen.returncode}")
            exc.args = (f"{exc}\nthe simulation SuperLink {superlink.address} (pid "
                        f"{superlink.pid}) is {state}; its log ends with:\n"
                        f"{superlink.log_tail()}",)
            raise
        finally:
            superlink.stop()
            logger.info("stopped the simulation SuperLink %s (pid %s)", superlink.address,
                        superlink.pid)
    return check_completed(status, lines)
