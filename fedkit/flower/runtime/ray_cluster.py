"""Where Flower's Simulation Engine puts the virtual clients: Ray, alone or on a cluster.

Flower 1.42 starts Ray inside the simulation process (``flwr-simulation``, spawned by the
SuperLink's SuperExec): its Ray backend calls ``ray.init(**init_args)`` with no address
(``flwr/server/superlink/fleet/vce/backend/raybackend.py``, ``RayBackend.init_ray``), and
``ray.init`` then joins the cluster named by the ``RAY_ADDRESS`` environment variable, if
set (``ray/_private/worker.py``, ``init``: "use RAY_ADDRESS to override if the address was
left unspecified"). The simulation process inherits the SuperLink's environment (the
SuperExec starts it with ``subprocess.Popen(args)``), so :class:`RayOptions` puts
``RAY_ADDRESS`` into the environment of the SuperLink fedkit starts, and nothing else changes:
the ServerApp still runs in that process on this machine, and the ClientApps run in Flower's
Ray actors (``ClientAppActor``) wherever Ray places them.

Resources per virtual client travel in Flower's own federation config, ``flwr run
--federation-config "client-resources-num-cpus=C client-resources-num-gpus=G"``
(``flwr/proto/federation_config.proto``, ``SimulationConfig``: ``num_cpus`` is an integer,
``num_gpus`` a float). Flower sizes its actor pool node by node, ``floor(node CPUs / C)``
(and ``floor(node GPUs / G)`` when G > 0), summed over the cluster's nodes
(``flwr/simulation/ray_transport/ray_actor.py``, ``pool_size_from_resources``). The
``init-args-num-cpus/gpus`` keys are not used: Ray refuses them when joining a cluster.

Without an address nothing is added: Flower's Ray starts as it always did. An address is
checked before anything starts (a TCP connection to the head's GCS port and a gRPC handshake,
a few seconds at most), because Ray itself retries an unreachable address for a minute or
more before the run fails. See ``docs/scaling.md``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from fedkit.config import ConfigError
from fedkit.flower.runtime.flwr_cli import FlowerRunError

__all__ = ["RayClusterError", "RayOptions", "resolve_ray_address"]

logger = logging.getLogger(__name__)

RAY_ADDRESS_VAR = "RAY_ADDRESS"
_AUTO = "auto"
_CONNECT_TIMEOUT = 5.0


class RayClusterError(FlowerRunError):
    """The Ray cluster named with ``--ray-address`` cannot be found or reached; nothing ran."""


def _split_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` (``[v6]:PORT`` for IPv6), or None if malformed."""
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return host, int(port)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RayOptions:
    """Where the virtual clients run and what each one reserves.

    Attributes:
        address: A running Ray cluster to join: ``HOST:PORT`` of its head node (the port
            given to ``ray start --head --port``) or ``"auto"`` (``$RAY_ADDRESS``, else the
            cluster ``ray start --head`` recorded on this machine). None: Flower starts Ray
            itself, as without this option.
        num_cpus_per_client: CPUs Ray reserves per virtual client (an integer: Flower 1.42's
            federation config carries it as one).
        num_gpus_per_client: GPUs Ray reserves per virtual client; a fraction shares a GPU
            (0.25: four clients per GPU). 0 reserves none.

    Raises:
        ConfigError: If a value is malformed or out of range (the message names the option).
    """

    address: str | None = None
    num_cpus_per_client: int = 1
    num_gpus_per_client: float = 0.0

    def __post_init__(self) -> None:
        cpus = self.num_cpus_per_client
        if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not (
                math.isfinite(cpus) and float(cpus).is_integer() and cpus >= 1):
            raise ConfigError(
                f"--cpus-per-client {cpus!r}: expected a whole number of CPUs >= 1 (Flower "
                "1.42's federation config takes client-resources-num-cpus as an integer)")
        object.__setattr__(self, "num_cpus_per_client", int(cpus))
        gpus = self.num_gpus_per_client
        if isinstance(gpus, bool) or not isinstance(gpus, int | float) or not (
                math.isfinite(gpus) and gpus >= 0):
            raise ConfigError(f"--gpus-per-client {gpus!r}: expected a number >= 0 (a "
                              "fraction shares one GPU between clients)")
        object.__setattr__(self, "num_gpus_per_client", float(gpus))
        if self.address is not None:
            address = str(self.address).strip()
            if "://" in address:
                raise ConfigError(
                    f"--ray-address {address!r}: Ray Client addresses ({address.split('://')[0]}"
                    "://) are not supported: the simulation joins the cluster as a driver, so "
                    "give the head node's HOST:PORT and run fedkit on a node of the cluster")
            if address != _AUTO and _split_address(address) is None:
                raise ConfigError(f"--ray-address {address!r}: expected HOST:PORT of the Ray "
                                  "head node (e.g. 10.0.0.5:6379) or 'auto'")
            object.__setattr__(self, "address", address)

    def federation_config(self, num_supernodes: int) -> str:
        """The ``flwr run --federation-config`` value for ``num_supernodes`` virtual clients.

        Without GPUs it is exactly what fedkit passed before GPUs could be asked for.
        """
        parts = [f"num-supernodes={num_supernodes}",
                 f"client-resources-num-cpus={self.num_cpus_per_client}"]
        if self.num_gpus_per_client > 0:
            parts.append(f"client-resources-num-gpus={self.num_gpus_per_client!r}")
        return " ".join(parts)

    def check(self, env: Mapping[str, str] | None = None) -> str | None:
        """The cluster's ``HOST:PORT``, found (:func:`resolve_ray_address`) and reachable: its
        head node accepts a TCP connection within a few seconds. None without an address.

        Raises:
            RayClusterError: If ``auto`` finds no cluster or the head node is unreachable.
        """
        if self.address is None:
            return None
        address = resolve_ray_address(self.address, env)
        _check_reachable(address, given=self.address)
        return address

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` for the SuperLink: with ``RAY_ADDRESS`` set to the checked cluster address.

        Without an address, ``env`` unchanged (a ``RAY_ADDRESS`` already in it is kept, as
        before).

        Raises:
            RayClusterError: As :meth:`check`.
        """
        out = dict(env)
        address = self.check(env)
        if address is not None:
            out[RAY_ADDRESS_VAR] = address
            logger.info("virtual clients run on the Ray cluster at %s", address)
        return out


def _ray_temp_dir(env: Mapping[str, str]) -> Path:
    # Ray's default temporary folder, as ray._common.utils.get_default_ray_temp_dir finds it.
    base = env.get("RAY_TMPDIR") or env.get("TMPDIR") or "/tmp"
    return Path(base) / "ray"


def resolve_ray_address(address: str, env: Mapping[str, str] | None = None) -> str:
    """The ``HOST:PORT`` that ``address`` names.

    ``HOST:PORT`` is returned as given. ``auto`` is, as Ray resolves it, ``$RAY_ADDRESS`` if
    set, else the address in ``ray_current_cluster`` of Ray's temporary folder
    (``$RAY_TMPDIR/ray``, else ``/tmp/ray``), which ``ray start`` writes on the machine it runs
    on (``ray/scripts/scripts.py``, ``write_ray_address``). Ray's last resort, any GCS
    process found on the machine, is not used: fedkit joins only a cluster it can name.

    Raises:
        RayClusterError: If ``auto`` finds no address.
    """
    env = os.environ if env is None else env
    if address != _AUTO:
        return address
    from_env = env.get(RAY_ADDRESS_VAR, "").strip()
    if from_env and from_env != _AUTO:
        return from_env
    record = _ray_temp_dir(env) / "ray_current_cluster"
    try:
        found = record.read_text().strip()
    except OSError:
        found = ""
    if not found:
        raise RayClusterError(
            f"--ray-address auto: no Ray cluster found ({RAY_ADDRESS_VAR} is not set and "
            f"{record} does not exist); start one with `ray start --head --port 6379` "
            "(docs/scaling.md) or give its HOST:PORT; nothing was run")
    return found


def _check_reachable(address: str, *, given: str, timeout: float = _CONNECT_TIMEOUT) -> None:
    """A TCP connection to the head node's GCS port, then a gRPC handshake (the GCS is a gRPC
    server; grpcio comes with Flower): ``timeout`` seconds each at most."""
    import grpc

    split = _split_address(address)
    named = address if given == address else f"{address} (from --ray-address {given})"
    if split is None:
        raise RayClusterError(f"Ray cluster address {named} is not HOST:PORT; nothing was run")
    host, port = split
    hint = (f"start its head node with `ray start --head --port {port}` (docs/scaling.md), or "
            "pass the address it printed; nothing was run")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = (f"no answer within {timeout:.0f} s" if isinstance(exc, TimeoutError)
                  else exc.strerror or str(exc))
        raise RayClusterError(f"Ray cluster at {named} is not reachable ({reason}); {hint}") \
            from None
    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise RayClusterError(
            f"{named} accepts connections but does not answer as a Ray head node (no gRPC "
            f"handshake within {timeout:.0f} s); give the port passed to `ray start --head "
            "--port` (docs/scaling.md); nothing was run") from None
    finally:
        channel.close()
