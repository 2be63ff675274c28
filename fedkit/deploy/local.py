"""A whole Flower deployment on one machine: certificates, a SuperLink, N SuperNodes, runs.

:class:`LocalFederation` is what ``fedkit deploy local``, the end-to-end tests and the
latency benchmark use. Everything listens on 127.0.0.1 on free ports and lives under one
work folder: ``certs/`` (development CA, server certificate, SuperNode keys),
``flwr-home/`` (``FLWR_HOME`` of every process and CLI call: the connection, installed
apps), ``superlink.db`` (link state: a restarted SuperLink keeps registrations and runs) and
``logs/``. Closing it stops exactly the processes it started, SuperNodes first (a cleanly
stopped SuperNode deactivates at once), then the SuperLink.

Example:
    >>> with LocalFederation(workdir, num_nodes=3, tls=True) as fed:  # doctest: +SKIP
    ...     fed.run(RunConfig(num_clients=3, clients_per_round=3, rounds=2))
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedkit.config import RunConfig
from fedkit.deploy.certs import NodeKeyFiles, TlsFiles, write_node_keys, write_tls_files
from fedkit.deploy.processes import (
    ISOLATION_MODES,
    FlowerProcess,
    ProcessError,
    free_port,
    port_free,
    start_superlink,
    start_supernode,
    wait_connected,
    wait_workers_ready,
    worker_pids,
)
from fedkit.deploy.runner import (
    Connection,
    register_supernodes,
    run_on_superlink,
    write_connection,
)
from fedkit.flower.runtime.flwr_cli import flower_env

__all__ = ["LocalFederation"]

logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"
# What a SuperNode logs when the SuperLink refuses to activate it (exit code 305).
_ACTIVATION_REFUSED = "Failed to activate SuperNode"


class LocalFederation:
    """One SuperLink and SuperNodes with client ids ``0 .. num_nodes - 1`` on 127.0.0.1.

    Args:
        workdir: Folder for certificates, Flower's home, the link state and logs.
        num_nodes: SuperNodes started by :meth:`start`, client ids 0 .. num_nodes - 1.
        tls: Serve the SuperLink over TLS with a fresh development CA.
        auth: SuperNode authentication (needs ``tls``): one key pair per client id,
            registered with ``flwr supernode register`` before the SuperNode starts; a
            restarted SuperNode keeps its node id.
        node_config: Extra node-config entries for every SuperNode (e.g. ``data-dir``);
            ``client-id`` is set per node.
        connection_name: Name of the connection written to ``flwr-home/config.toml``.
        base_port: Fixed ports instead of free ones: the SuperLink listens on
            ``base_port`` and the SuperNode of client ``i`` on ``base_port + 1 + i`` (for
            firewalls and for running several federations side by side). ``None``
            (default): free ports picked at start.
        isolation: How SuperNodes run the ClientApp: ``"process"`` (default), long-lived
            workers that import torch and fedkit once, restarted if they die; or
            ``"subprocess"``, Flower's new ``flwr-clientapp`` process per message (see
            :mod:`fedkit.deploy.processes`).
        num_workers: ClientApp workers per SuperNode under ``"process"``.
        secagg_keys: Signing keys for secure aggregation's consistency round
            (``secagg_consistency_check``, docs/secagg.md): a key set for client ids
            ``0 .. secagg_keys - 1`` is written under ``workdir/secagg-keys``
            (:func:`~fedkit.privacy.secagg.signing.write_signing_keys`) and the SuperNode of
            each of those ids gets its own key and the shared key list in its node config
            (``secagg-signing-key``, ``secagg-key-list``). 0 (default): none.

    Raises:
        ValueError: On ``num_nodes < 0``, auth without TLS, a ``base_port`` whose range
            ``base_port .. base_port + num_nodes`` leaves 1024-65535, or an unknown
            ``isolation``.
    """

    def __init__(self, workdir: str | Path, *, num_nodes: int, tls: bool = True,
                 auth: bool = False, node_config: Mapping[str, Any] | None = None,
                 connection_name: str = "fedkit-local", base_port: int | None = None,
                 isolation: str = "process", num_workers: int = 1,
                 secagg_keys: int = 0) -> None:
        if num_nodes < 0:
            raise ValueError(f"num_nodes = {num_nodes}, expected >= 0")
        if isinstance(secagg_keys, bool) or not isinstance(secagg_keys, int) or secagg_keys < 0:
            raise ValueError(f"secagg_keys = {secagg_keys!r}, expected an integer >= 0 (the "
                             "number of client ids to write signing keys for)")
        if base_port is not None and (isinstance(base_port, bool) or not isinstance(base_port, int)
                                      or not 1024 <= base_port <= 65535 - num_nodes):
            raise ValueError(f"base_port = {base_port!r}, expected an integer in 1024.."
                             f"{65535 - num_nodes} (the SuperLink takes base_port, SuperNode i "
                             "takes base_port + 1 + i)")
        if isolation not in ISOLATION_MODES:
            raise ValueError(f"isolation = {isolation!r}, expected one of {ISOLATION_MODES}")
        if auth and not tls:
            raise ValueError("auth = True needs tls = True: Flower refuses SuperNode "
                             "authentication without TLS")
        self.workdir = Path(workdir).resolve()
        self.num_nodes = num_nodes
        self.tls, self.auth = tls, auth
        self.node_config = dict(node_config or {})
        self.connection_name = connection_name
        self.base_port = base_port
        self.isolation, self.num_workers = isolation, num_workers
        self.secagg_keys = secagg_keys
        self._secagg_key_files: dict[int, Path] = {}
        self._secagg_key_list: Path | None = None
        self.env = flower_env({**os.environ, "FLWR_HOME": str(self.workdir / "flwr-home")})
        self.tls_files: TlsFiles | None = None
        self.connection: Connection | None = None
        self.superlink: FlowerProcess | None = None
        self.nodes: dict[int, FlowerProcess] = {}
        self._node_keys: dict[int, NodeKeyFiles] = {}
        self._node_ports: dict[int, int] = {}

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> LocalFederation:
        """Create certificates, start the SuperLink and the SuperNodes; wait until all are up."""
        try:
            self.start_superlink()
            self.add_nodes(range(self.num_nodes))
        except BaseException:
            self.close()
            raise
        return self

    def start_superlink(self) -> FlowerProcess:
        """Start (or restart, on the same port and database) the SuperLink."""
        (self.workdir / "flwr-home").mkdir(parents=True, exist_ok=True)
        if self.tls and self.tls_files is None:
            self.tls_files = write_tls_files(self.workdir / "certs", [_HOST, "localhost"])
        if self.connection:
            port = int(self.connection.address.rsplit(":", 1)[1])
        else:
            port = self._port(-1)
        tls = self.tls_files
        self.superlink = start_superlink(
            port=port, host=_HOST, database=self.workdir / "superlink.db",
            log_file=self.workdir / "logs" / "superlink.log",
            certfile=tls.server_cert if tls else None, keyfile=tls.server_key if tls else None,
            ca_certfile=tls.ca_cert if tls else None, enable_supernode_auth=self.auth,
            env=self.env, cwd=self.workdir)
        if self.connection is None:
            self.connection = Connection(self.connection_name, f"{_HOST}:{port}",
                                         tls.ca_cert if tls else None)
            write_connection(self.connection, env=self.env, make_default=True)
        return self.superlink

    def add_nodes(self, client_ids, **node_config: Any) -> list[FlowerProcess]:
        """Start SuperNodes for ``client_ids`` (registering their keys first under auth)."""
        client_ids = list(client_ids)
        if self.auth:
            new = [c for c in client_ids if c not in self._node_keys]
            keys = write_node_keys(self.workdir / "certs", [f"node{c}" for c in new])
            self._node_keys.update(zip(new, keys, strict=True))
            if new:
                register_supernodes([k.public_key for k in keys], self.connection, env=self.env)
        procs = [self.start_node(c, wait=False, **node_config) for c in client_ids]
        for proc in procs:
            wait_connected(proc)
        for proc in procs:
            self._wait_workers(proc)
        return procs

    def start_node(self, client_id: int, *, wait: bool = True, retry_for: float = 120.0,
                   **node_config: Any) -> FlowerProcess:
        """Start (or restart) the SuperNode of ``client_id``; wait until it is active.

        Under SuperNode authentication a crashed node keeps its node id, and the SuperLink
        refuses to activate it again while it still counts as online (until its heartbeat
        expires: up to 2 x 30 s after the crash); the SuperNode then exits with code 305.
        With ``wait`` such a start is retried every few seconds for ``retry_for`` seconds.
        """
        old = self.nodes.get(client_id)
        if old is not None and old.alive():
            raise RuntimeError(f"the SuperNode of client {client_id} is running (pid {old.pid})")
        if client_id not in self._node_ports:
            self._node_ports[client_id] = self._port(client_id)
        deadline = time.monotonic() + retry_for
        while True:
            proc = self._launch_node(client_id, node_config, wait)
            if not wait:
                return proc
            try:
                wait_connected(proc)
                self._wait_workers(proc)
                return proc
            except ProcessError:
                refused = _ACTIVATION_REFUSED in proc.log_text()
                if not (self.auth and refused and time.monotonic() < deadline):
                    raise
                logger.info("SuperNode of client %s not activated yet (the SuperLink still "
                            "counts it online); retrying", client_id)
                time.sleep(2.0)

    def _wait_workers(self, proc: FlowerProcess) -> None:
        if self.isolation == "process":
            wait_workers_ready(proc, self.num_workers)

    def _port(self, client_id: int) -> int:
        """The SuperLink's port (``client_id = -1``) or a SuperNode's: fixed, or a free one."""
        if self.base_port is None:
            return free_port(_HOST)
        port = self.base_port + 1 + client_id
        if not port_free(_HOST, port):
            what = "the SuperLink" if client_id < 0 else f"the SuperNode of client {client_id}"
            raise ProcessError(f"port {port} for {what} (base port {self.base_port}) is in use "
                               "on 127.0.0.1; pick another --base-port")
        return port

    def _launch_node(self, client_id: int, node_config: Mapping[str, Any],
                     wait: bool) -> FlowerProcess:
        key = self._node_keys.get(client_id)
        proc = start_supernode(
            superlink=self.connection.address, port=self._node_ports[client_id], host=_HOST,
            node_config={"client-id": client_id, **self._secagg_node_config(client_id),
                         **self.node_config, **node_config},
            log_file=self.workdir / "logs" / f"supernode-{client_id}.log",
            root_certificates=self.tls_files.ca_cert if self.tls_files else None,
            auth_private_key=key.private_key if key else None, isolation=self.isolation,
            num_workers=self.num_workers, env=self.env, cwd=self.workdir, wait=None)
        self.nodes[client_id] = proc
        return proc

    @property
    def secagg_key_list(self) -> Path | None:
        """The key list the SuperNodes were given (``secagg_keys``), for the run config's
        ``secagg_key_list`` (the server's copy); None without signing keys."""
        return self._secagg_key_set()[1]

    def _secagg_key_set(self) -> tuple[dict[int, Path], Path | None]:
        """Each keyed client's key file and the key list, written on first use."""
        if self.secagg_keys and self._secagg_key_list is None:
            from fedkit.privacy.secagg.signing import write_signing_keys

            self._secagg_key_files, self._secagg_key_list = write_signing_keys(
                self.workdir / "secagg-keys", self.secagg_keys)
        return self._secagg_key_files, self._secagg_key_list

    def _secagg_node_config(self, client_id: int) -> dict[str, str]:
        """Node-config entries naming ``client_id``'s signing key and the key list; none for
        an id outside ``0 .. secagg_keys - 1``."""
        files, key_list = self._secagg_key_set()
        if client_id not in files:
            return {}
        return {"secagg-signing-key": str(files[client_id]), "secagg-key-list": str(key_list)}

    def worker_pids(self, client_id: int) -> list[int]:
        """PIDs of the ClientApp workers of the SuperNode of ``client_id`` (``"process"``)."""
        return worker_pids(self.nodes[client_id].pid)

    def kill_node(self, client_id: int) -> None:
        """SIGKILL the SuperNode of ``client_id`` and its ClientApp processes (a crash)."""
        self.nodes[client_id].kill()

    def stop_node(self, client_id: int) -> None:
        """Stop the SuperNode of ``client_id`` cleanly (it deactivates at the SuperLink)."""
        self.nodes[client_id].stop()

    def close(self) -> None:
        """Stop every SuperNode, then the SuperLink (only processes started here)."""
        for proc in self.nodes.values():
            proc.stop()
        if self.superlink is not None:
            self.superlink.stop()

    def __enter__(self) -> LocalFederation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs -----------------------------------------------------------------------------
    def run(self, cfg: RunConfig | Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Run ``cfg`` on this federation (see :func:`~fedkit.deploy.runner.run_on_superlink`)."""
        return run_on_superlink(cfg, self.connection, env=self.env, **kwargs)

    def logs(self) -> dict[str, Path]:
        """Log file of every process started here, by name."""
        procs = ([self.superlink] if self.superlink else []) + list(self.nodes.values())
        return {p.name: p.log_file for p in procs}
