"""``fedkit deploy``: run fedkit on Flower's Deployment Engine (SuperLink and SuperNodes).

Subcommands:

* ``certs``: a development CA, the SuperLink's TLS certificate and SuperNode key pairs;
* ``superlink``: start ``flower-superlink`` in the foreground (TLS or ``--insecure``);
* ``supernode``: start ``flower-supernode`` for one client id (node config: client id, data
  folder, availability scenario);
* ``register``: register SuperNode public keys on a SuperLink with SuperNode authentication;
* ``run``: launch a fedkit run on a SuperLink and exit non-zero unless it completed;
* ``local``: all of it on 127.0.0.1 (temporary certificates, a SuperLink, N SuperNodes, one
  run, clean shutdown).

Wire it into ``fedkit`` with ``add_parser(subparsers)`` and dispatch ``command == "deploy"``
to ``main(args)``. See docs/deployment.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import time
from pathlib import Path

from fedkit.config import ConfigError, RunConfig, apply_overrides, load_config_file

__all__ = ["add_parser", "main"]

logger = logging.getLogger(__name__)

_EPILOG = """examples:
  fedkit deploy certs --out certs --host 127.0.0.1 --host server.example.org --nodes 3
  fedkit deploy superlink --certs certs --port 9200 --database superlink.db
  fedkit deploy supernode --client-id 0 --superlink server.example.org:9200 \\
      --root-certificates certs/ca.pem --auth-key certs/node0.key --data-dir /data
  fedkit deploy run --config simulations/demo.toml --set num_clients=3 \\
      --superlink server.example.org:9200 --root-certificates certs/ca.pem
  fedkit deploy local --nodes 3 --tls --set rounds=2 --set num_clients=3
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``deploy`` and its subcommands on ``fedkit``'s subparsers; return it."""
    deploy = subparsers.add_parser(
        "deploy", help="run on Flower's Deployment Engine (SuperLink/SuperNodes)",
        description="Run fedkit on Flower's Deployment Engine (SuperLink and SuperNodes); "
                    "see docs/deployment.md.", epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = deploy.add_subparsers(dest="deploy_command", metavar="ACTION", required=True)

    certs = sub.add_parser("certs", help="development CA, server certificate, SuperNode keys")
    certs.add_argument("--out", type=Path, required=True, help="folder to write into")
    certs.add_argument("--host", dest="hosts", action="append", default=[],
                       help="a name or IP address SuperNodes dial (repeatable; default "
                            "127.0.0.1 and localhost)")
    certs.add_argument("--nodes", type=int, default=0,
                       help="also write SuperNode auth key pairs node0..node<N-1>")
    certs.add_argument("--secagg-keys", type=int, default=0, metavar="N",
                       help="also write secure-aggregation signing keys for client ids "
                            "0..N-1 (secagg-keys/client-<id>.pem and key-list.json; "
                            "secagg_consistency_check, docs/secagg.md)")

    link = sub.add_parser("superlink", help="start flower-superlink (foreground)")
    link.add_argument("--host", default="0.0.0.0", help="address to listen on")
    link.add_argument("--port", type=int, default=9200)
    link.add_argument("--database", type=Path, default=Path("superlink.db"),
                      help="SQLite link state (keeps registrations and runs across restarts)")
    _tls_server_args(link)
    link.add_argument("--auth", action="store_true",
                      help="--enable-supernode-auth: only registered SuperNodes may connect")
    link.add_argument("--log", type=Path, default=Path("superlink.log"))

    node = sub.add_parser("supernode", help="start flower-supernode for one client")
    node.add_argument("--client-id", type=int, required=True)
    node.add_argument("--superlink", default="127.0.0.1:9200", help="HOST:PORT")
    _tls_client_args(node)
    node.add_argument("--auth-key", type=Path, help="SuperNode private key (OpenSSH, EC)")
    node.add_argument("--port", type=int, default=None,
                      help="this SuperNode's local API port (default 9300 + client id)")
    node.add_argument("--data-dir", help="this device's data folder (node config data-dir)")
    node.add_argument("--availability",
                      help="availability scenario enforced on this client (node config)")
    node.add_argument("--secagg-signing-key", type=Path,
                      help="this client's secure-aggregation signing key (client-<id>.pem of "
                           "`deploy certs --secagg-keys`; node config secagg-signing-key)")
    node.add_argument("--secagg-key-list", type=Path,
                      help="the operator's key list, the same file on every device (node "
                           "config secagg-key-list)")
    node.add_argument("--secagg-require-consistency-check", action="store_true",
                      help="refuse secure-aggregation rounds without signed keys and the "
                           "consistency round (node config secagg-require-consistency-check)")
    _isolation_args(node)
    node.add_argument("--log", type=Path, default=None)

    register = sub.add_parser("register", help="register SuperNode public keys")
    register.add_argument("keys", nargs="+", type=Path, help="<name>.pub files")
    _connection_args(register)

    run = sub.add_parser("run", help="run fedkit on a SuperLink")
    _run_args(run)
    _connection_args(run)
    run.add_argument("--timeout", type=float, default=None, help="seconds before giving up")

    local = sub.add_parser("local", help="SuperLink + N SuperNodes + one run on 127.0.0.1")
    _run_args(local)
    local.add_argument("--nodes", type=int, default=3)
    local.add_argument("--base-port", type=int, default=None,
                       help="SuperLink on this port, SuperNode i on base + 1 + i "
                            "(default: free ports)")
    _isolation_args(local)
    local.add_argument("--tls", action="store_true", help="TLS with a temporary CA")
    local.add_argument("--auth", action="store_true", help="SuperNode authentication (--tls)")
    local.add_argument("--workdir", type=Path, default=None,
                       help="keep certificates, link state and logs here (default: temporary)")
    return deploy


def _isolation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--isolation", choices=("process", "subprocess"), default="process",
                        help="how a SuperNode runs the ClientApp: 'process' (default): "
                             "long-lived workers that import torch and fedkit once, "
                             "restarted if they die; 'subprocess': Flower's new "
                             "flwr-clientapp process per message")
    parser.add_argument("--workers", type=int, default=1,
                        help="ClientApp workers per SuperNode with --isolation process "
                             "(default 1; the SuperNode runs one message at a time)")


def _tls_server_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--certs", type=Path,
                       help="folder from `fedkit deploy certs` (server.pem, server.key, ca.pem)")
    group.add_argument("--insecure", action="store_true", help="no TLS (testing only)")


def _tls_client_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--root-certificates", type=Path, help="the CA certificate (ca.pem)")
    group.add_argument("--insecure", action="store_true", help="no TLS (testing only)")


def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--superlink", required=True, help="HOST:PORT of the SuperLink")
    _tls_client_args(parser)
    parser.add_argument("--connection", default="fedkit",
                        help="name of the connection written to $FLWR_HOME/config.toml")


def _run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, default=None, help="experiment file")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override one config key (repeatable)")


def _run_config(args: argparse.Namespace, *, default_num_clients: int | None = None
                ) -> RunConfig:
    values = load_config_file(args.config) if args.config else {}
    if default_num_clients is not None:
        values.setdefault("num_clients", default_num_clients)
        values.setdefault("clients_per_round", default_num_clients)
    values = apply_overrides(values, args.overrides)
    cfg = RunConfig.from_mapping(values)
    # The ServerApp runs in another process and folder: make local paths absolute.
    changes = {"output_dir": str(cfg.results_dir.resolve())}
    if cfg.data_dir:
        changes["data_dir"] = str(Path(cfg.data_dir).resolve())
    return cfg.replace(**changes)


def _connection(args: argparse.Namespace):
    from fedkit.deploy.runner import Connection, write_connection

    connection = Connection(args.connection, args.superlink,
                            None if args.insecure else args.root_certificates)
    write_connection(connection)
    return connection


def _certs(args: argparse.Namespace) -> int:
    from fedkit.deploy.certs import write_node_keys, write_tls_files

    files = write_tls_files(args.out, args.hosts or ["127.0.0.1", "localhost"])
    print(f"CA: {files.ca_cert} (key {files.ca_key}: keep it off the devices)")
    print(f"SuperLink: {files.server_cert}, {files.server_key}")
    for keys in write_node_keys(args.out, [f"node{i}" for i in range(args.nodes)]):
        print(f"SuperNode {keys.name}: private {keys.private_key}, public {keys.public_key}")
    if args.secagg_keys:
        from fedkit.privacy.secagg.signing import write_signing_keys

        paths, key_list = write_signing_keys(Path(args.out) / "secagg-keys", args.secagg_keys)
        print(f"secure-aggregation signing keys: {paths[0].parent}/client-<id>.pem for client "
              f"ids 0..{args.secagg_keys - 1} (each to its own device only), key list "
              f"{key_list} (to every device)")
    return 0


class _StopSignal(Exception):
    """A stop signal arrived (SIGTERM, SIGINT or SIGHUP) while a process ran in the foreground."""


# Signals that stop a foreground Flower process: SIGTERM (kill, systemd), SIGINT (Ctrl-C) and
# SIGHUP (the terminal closed). Each is handled even where it was ignored when we started
# (nohup ignores SIGHUP and a background shell job ignores SIGINT): the wrapper must never
# exit and leave its SuperLink/SuperNode and their children running.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _raise_stop(signum, frame) -> None:
    raise _StopSignal(signal.Signals(signum).name)


def _foreground(proc) -> int:
    """Supervise ``proc`` until it exits or a stop signal arrives; stop its whole tree.

    Returns:
        0 when the process ended normally or was stopped by a signal, 1 when it failed.
    """
    previous = {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}
    print(f"{proc.name} running (pid {proc.pid}), log: {proc.log_file}; Ctrl-C, SIGTERM or "
          "SIGHUP stops it", flush=True)
    stopped_by = None
    try:
        while proc.alive():
            time.sleep(0.5)
    except (_StopSignal, KeyboardInterrupt) as exc:
        stopped_by = str(exc) or "SIGINT"
    finally:
        # The stop itself must not be interrupted by a second signal (e.g. systemd's SIGTERM
        # followed by SIGHUP to the whole group): ignore them until the tree is down.
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        try:
            proc.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    code = proc.popen.returncode
    if stopped_by is not None:
        print(f"{proc.name} (pid {proc.pid}) stopped on {stopped_by}", flush=True)
        return 0
    if code != 0:
        print(f"{proc.name} (pid {proc.pid}) exited with status {code}; its log "
              f"{proc.log_file} ends with:\n{proc.log_tail()}", file=sys.stderr)
    return 0 if code == 0 else 1


def _superlink(args: argparse.Namespace) -> int:
    from fedkit.deploy.processes import start_superlink

    tls = {}
    if args.certs:
        tls = {"certfile": args.certs / "server.pem", "keyfile": args.certs / "server.key",
               "ca_certfile": args.certs / "ca.pem"}
    proc = start_superlink(port=args.port, host=args.host, database=args.database,
                           log_file=args.log, enable_supernode_auth=args.auth, wait=None,
                           **tls)
    return _foreground(proc)


def _supernode(args: argparse.Namespace) -> int:
    from fedkit.deploy.processes import start_supernode

    node_config: dict = {"client-id": args.client_id}
    if args.data_dir:
        node_config["data-dir"] = str(Path(args.data_dir).resolve())
    if args.availability:
        node_config["availability"] = args.availability
    for key in ("secagg_signing_key", "secagg_key_list"):
        if getattr(args, key):
            path = Path(getattr(args, key)).resolve()
            if not path.is_file():
                print(f"fedkit deploy supernode: --{key.replace('_', '-')} {path}: no such file",
                      file=sys.stderr)
                return 2
            node_config[key.replace("_", "-")] = str(path)
    if args.secagg_require_consistency_check:
        node_config["secagg-require-consistency-check"] = True
    port = args.port if args.port is not None else 9300 + args.client_id
    log = args.log or Path(f"supernode-{args.client_id}.log")
    proc = start_supernode(superlink=args.superlink, port=port, node_config=node_config,
                           log_file=log, root_certificates=args.root_certificates,
                           auth_private_key=args.auth_key, isolation=args.isolation,
                           num_workers=args.workers, wait=None)
    return _foreground(proc)


def _register(args: argparse.Namespace) -> int:
    from fedkit.deploy.runner import register_supernodes

    for key, node_id in register_supernodes(args.keys, _connection(args)).items():
        print(f"{key}: node id {node_id}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from fedkit.deploy.runner import run_on_superlink

    cfg = _run_config(args)
    status = run_on_superlink(cfg, _connection(args), stream_to=sys.stdout,
                              timeout=args.timeout)
    print(f"run {status.get('run-id')}: {status.get('status')}; results in {cfg.results_dir}")
    return 0


def _local(args: argparse.Namespace) -> int:
    from fedkit.deploy.local import LocalFederation

    cfg = _run_config(args, default_num_clients=args.nodes)
    with tempfile.TemporaryDirectory(prefix="fedkit-deploy-") as tmp:
        workdir = args.workdir or Path(tmp)
        with LocalFederation(workdir, num_nodes=args.nodes, tls=args.tls or args.auth,
                             auth=args.auth, base_port=args.base_port,
                             isolation=args.isolation, num_workers=args.workers,
                             # a run with the consistency round needs each node's signing
                             # key and the key list: a fresh set for this federation
                             secagg_keys=args.nodes if cfg.secagg_consistency_check else 0
                             ) as fed:
            print(f"SuperLink {fed.connection.address} ({'TLS' if args.tls else 'insecure'}), "
                  f"{args.nodes} SuperNodes; logs in {workdir / 'logs'}", flush=True)
            if fed.secagg_key_list and not cfg.secagg_key_list:
                # the server's copy: a badly signed node is dropped, not the round
                cfg = cfg.replace(secagg_key_list=str(fed.secagg_key_list))
            status = fed.run(cfg, stream_to=sys.stdout)
    print(f"run {status.get('run-id')}: {status.get('status')}; results in {cfg.results_dir}")
    return 0


def main(args: argparse.Namespace) -> int:
    """Run the ``deploy`` subcommand in ``args``; return the exit status."""
    from fedkit.deploy.processes import ProcessError
    from fedkit.flower.runtime.flwr_cli import FlowerRunError

    handlers = {"certs": _certs, "superlink": _superlink, "supernode": _supernode,
                "register": _register, "run": _run, "local": _local}
    try:
        return handlers[args.deploy_command](args)
    except ConfigError as exc:
        print(exc.line(), file=sys.stderr)
        return ConfigError.EXIT_STATUS
    except (FlowerRunError, ProcessError, ValueError) as exc:
        print(f"fedkit deploy {args.deploy_command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="fedkit")
    add_parser(_parser.add_subparsers(dest="command", required=True))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main(_parser.parse_args()))
