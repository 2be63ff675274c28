"""fedkit.deploy without Flower processes: certificates, keys, node configs, connections, CLI."""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import stat
import tomllib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key
from flwr.app import Context, RecordDict
from flwr.cli.supernode.register import try_load_public_key

from fedkit.config import RunConfig
from fedkit.deploy import Connection, write_connection, write_node_keys, write_tls_files
from fedkit.deploy.cli import add_parser
from fedkit.deploy.processes import free_port, node_config_arg
from fedkit.flower.apps.task import client_id_of, node_run_config


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tls_files_chain_to_the_ca_and_name_every_host(tmp_path):
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    files = write_tls_files(tmp_path, ["127.0.0.1", "server.example.org", "::1"], now=now)
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                       ipaddress.ip_address("::1")]
    assert san.get_values_for_type(x509.DNSName) == ["server.example.org"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert server.not_valid_before_utc < now < server.not_valid_after_utc
    key = load_pem_private_key(files.server_key.read_bytes(), None)
    assert key.public_key().public_numbers() == server.public_key().public_numbers()
    assert _mode(files.ca_key) == _mode(files.server_key) == 0o600


def test_tls_files_need_a_host(tmp_path):
    with pytest.raises(ValueError, match="hosts is empty"):
        write_tls_files(tmp_path, [])


def test_node_keys_are_what_flower_loads(tmp_path):
    # The SuperNode reads the private key with load_ssh_private_key (EC); `flwr supernode
    # register` reads the public key with try_load_public_key (NIST curve, OpenSSH format).
    (keys,) = write_node_keys(tmp_path, ["node0"])
    private = load_ssh_private_key(keys.private_key.read_bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp384r1"
    assert try_load_public_key(keys.public_key)
    assert keys.public_key.read_text().startswith("ecdsa-sha2-nistp384 ")
    assert _mode(keys.private_key) == 0o600


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_node_key_names_are_plain(tmp_path, name):
    with pytest.raises(ValueError, match="plain, non-empty file name"):
        write_node_keys(tmp_path, [name])


def _context(node_config, **run):
    cfg = RunConfig(num_clients=4, clients_per_round=2, **run)
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(),
                   run_config=cfg.to_dict())


def test_node_config_overrides_data_dir_and_availability():
    context = _context({"client-id": 3, "data-dir": "/data/cifar", "availability": "bernoulli"},
                       data_dir="/server/data")
    cfg = node_run_config(context)
    assert (cfg.data_dir, cfg.availability) == ("/data/cifar", "bernoulli")
    assert client_id_of(context, cfg.num_clients) == 3
    # Absent: the run config applies unchanged.
    plain = _context({"client-id": 0}, data_dir="/server/data")
    assert node_run_config(plain) == RunConfig.from_mapping(plain.run_config)


@pytest.mark.parametrize("value", [3, "", True])
def test_node_config_override_must_be_a_string(value):
    with pytest.raises(ValueError, match=r"node config 'data-dir' = .* expected a non-empty"):
        node_run_config(_context({"client-id": 0, "data-dir": value}))


def test_node_config_arg_is_parsed_back_by_flower():
    from flwr.common.config import parse_config_args

    values = {"client-id": 2, "data-dir": "/data/my folder", "availability": "bernoulli",
              "flag": True, "rate": 0.5}
    assert parse_config_args([node_config_arg(values)]) == values
    with pytest.raises(ValueError, match="without double quotes"):
        node_config_arg({"data-dir": 'a"b'})
    with pytest.raises(ValueError, match="plain word"):
        node_config_arg({"a b": 1})


def test_write_connection_keeps_flowers_defaults_and_replaces_ours(tmp_path):
    env = {"FLWR_HOME": str(tmp_path)}
    path = write_connection(Connection("lab", "10.0.0.5:9200", tmp_path / "ca.pem"), env=env)
    write_connection(Connection("lab", "10.0.0.6:9200"), env=env, make_default=True)
    data = tomllib.loads(path.read_text())["superlink"]
    assert data["lab"] == {"address": "10.0.0.6:9200", "insecure": True}
    assert data["local"] == {"address": ":local:"} and data["default"] == "lab"


@pytest.mark.parametrize("address", ["10.0.0.5", ":9200", "host:port"])
def test_connection_needs_host_and_port(address):
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        Connection("lab", address)


def test_free_ports_are_distinct():
    assert len({free_port() for _ in range(20)}) == 20


def test_deploy_cli_parses_every_action():
    parser = argparse.ArgumentParser(prog="fedkit")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["deploy", "local", "--nodes", "3", "--tls", "--set", "rounds=2"])
    assert (args.deploy_command, args.nodes, args.tls, args.overrides) == \
        ("local", 3, True, ["rounds=2"])
    args = parser.parse_args(["deploy", "supernode", "--client-id", "4", "--insecure",
                              "--data-dir", "/d", "--availability", "bernoulli"])
    assert (args.client_id, args.insecure, args.data_dir) == (4, True, "/d")
    with pytest.raises(SystemExit):  # TLS or --insecure must be chosen
        parser.parse_args(["deploy", "run", "--superlink", "h:1"])


@pytest.mark.parametrize("base_port", [80, 65535, True, "9200"])
def test_local_federation_refuses_a_base_port_out_of_range(tmp_path, base_port):
    from fedkit.deploy import LocalFederation

    with pytest.raises(ValueError, match="base_port"):
        LocalFederation(tmp_path, num_nodes=3, tls=False, base_port=base_port)


def test_local_federation_base_port_fixes_every_port(tmp_path):
    import socket

    from fedkit.deploy import LocalFederation
    from fedkit.deploy.processes import ProcessError

    base = free_port()
    fed = LocalFederation(tmp_path, num_nodes=3, tls=False, base_port=base)
    assert [fed._port(c) for c in (-1, 0, 2)] == [base, base + 1, base + 3]
    with socket.socket() as busy:  # a port in the range already taken: named, not reused
        busy.bind(("127.0.0.1", base + 2))
        busy.listen()
        with pytest.raises(ProcessError, match=f"port {base + 2} for the SuperNode of client 1"):
            fed._port(1)
    args = argparse.ArgumentParser()
    add_parser(args.add_subparsers(dest="command"))
    parsed = args.parse_args(["deploy", "local", "--base-port", "9400"])
    assert parsed.base_port == 9400


def _fake_flower(monkeypatch, statuses):
    """run_on_superlink against a stand-in `flwr`: the log stream ends at once and the run's
    status goes through ``statuses`` (the last one repeats); returns the commands run."""
    from fedkit.deploy import runner

    calls = []
    monkeypatch.setattr(runner, "stream_flwr_run", lambda cmd, env, **kw: (7, ["log\n"]))
    seq = iter(statuses)
    last = {}

    def status(run_id, env, name):
        last["s"] = next(seq, last.get("s"))
        return {"run-id": run_id, "status": last["s"]}

    monkeypatch.setattr(runner, "run_status", status)
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    monkeypatch.setattr(runner.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    return runner, calls


def test_a_run_still_going_when_its_log_stream_ends_is_waited_for(monkeypatch, tmp_path):
    runner, calls = _fake_flower(monkeypatch, ["running"] * 5 + ["finished:completed"])
    status = runner.run_on_superlink({"x": 1}, "fed", project_root=tmp_path, timeout=600,
                                     settle=0.0)
    assert status["status"] == "finished:completed"
    assert calls == []  # nothing stopped


def test_a_run_that_outlasts_the_timeout_after_its_stream_is_stopped(monkeypatch, tmp_path):
    from fedkit.flower.runtime.flwr_cli import FlowerRunTimeout

    runner, calls = _fake_flower(monkeypatch, ["running"])
    clock = iter(range(0, 10_000, 100))
    monkeypatch.setattr(runner.time, "monotonic", lambda: float(next(clock)))
    with pytest.raises(FlowerRunTimeout, match="run 7 on 'fed' was still 'running'") as err:
        runner.run_on_superlink({"x": 1}, "fed", project_root=tmp_path, timeout=600,
                                settle=0.0)
    assert err.value.run_id == 7
    assert calls == [["flwr", "stop", "7", "fed"]]


def _deploy_args(*argv):
    parser = argparse.ArgumentParser(prog="fedkit")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["deploy", *argv])


def test_certs_writes_a_signing_key_set_every_node_can_verify(tmp_path):
    from fedkit.deploy.cli import main
    from fedkit.privacy.secagg.signing import KeyList, SigningKey

    assert main(_deploy_args("certs", "--out", str(tmp_path), "--secagg-keys", "3")) == 0
    key_list = KeyList.load(tmp_path / "secagg-keys" / "key-list.json")
    assert sorted(key_list) == [0, 1, 2]
    for cid in range(3):
        path = tmp_path / "secagg-keys" / f"client-{cid}.pem"
        assert _mode(path) == 0o600
        signature = SigningKey.load(path).sign(b"statement")
        assert key_list.verify(cid, signature, b"statement")
        assert not key_list.verify((cid + 1) % 3, signature, b"statement")


def test_supernode_refuses_a_missing_key_file_before_starting(tmp_path, capsys):
    from fedkit.deploy.cli import main

    args = _deploy_args("supernode", "--client-id", "1", "--insecure",
                        "--secagg-signing-key", str(tmp_path / "absent.pem"))
    assert main(args) == 2
    assert "--secagg-signing-key" in capsys.readouterr().err
    args = _deploy_args("supernode", "--client-id", "1", "--insecure",
                        "--secagg-require-consistency-check")
    assert args.secagg_require_consistency_check is True


def test_local_federation_gives_each_keyed_node_its_own_signing_key(tmp_path):
    from fedkit.deploy import LocalFederation
    from fedkit.flower.secagg.identity import node_identity
    from fedkit.privacy.secagg import SecAggConfigError

    fed = LocalFederation(tmp_path, num_nodes=3, tls=False, secagg_keys=2)
    configs = {cid: fed._secagg_node_config(cid) for cid in range(3)}
    assert configs[2] == {}  # outside the key set: no key, so it refuses consistency rounds
    assert configs[0]["secagg-key-list"] == configs[1]["secagg-key-list"]
    assert configs[0]["secagg-signing-key"] != configs[1]["secagg-signing-key"]
    assert str(fed.secagg_key_list) == configs[0]["secagg-key-list"]  # the server's copy
    assert LocalFederation(tmp_path / "none", num_nodes=1, tls=False).secagg_key_list is None
    node_config_arg({"client-id": 0, **configs[0]})  # what flower-supernode is given
    for cid in (0, 1):  # each node's identity is its own id's entry of the shared list
        identity = node_identity(_context({"client-id": cid, **configs[cid]}))
        identity.check_owner(cid)
        with pytest.raises(SecAggConfigError, match="signing key is not the key"):
            identity.check_owner(1 - cid)
    with pytest.raises(SecAggConfigError, match="has no signing key"):
        node_identity(_context({"client-id": 2, **configs[2]}))
    with pytest.raises(ValueError, match="secagg_keys"):
        LocalFederation(tmp_path, num_nodes=3, tls=False, secagg_keys=-1)


def test_a_superlink_that_cannot_be_asked_gets_settle_seconds_not_the_timeout(monkeypatch,
                                                                              tmp_path):
    # a killed SuperLink: the run's status cannot be read; the caller hears of it after
    # `settle` seconds, not at the end of a long timeout
    from fedkit.flower.runtime.flwr_cli import FlowerRunError

    runner, calls = _fake_flower(monkeypatch, [])

    asked = []

    def unreachable(run_id, env, name):
        asked.append(run_id)
        raise FlowerRunError("connection refused")

    monkeypatch.setattr(runner, "run_status", unreachable)
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr(runner.time, "monotonic", lambda: float(next(clock)))
    with pytest.raises(FlowerRunError, match="could not read the status of run 7"):
        runner.run_on_superlink({"x": 1}, "fed", project_root=tmp_path, timeout=3600,
                                settle=60.0)
    assert calls == []
    assert len(asked) <= 7  # the clock moves 10 s per reading: about 60 s of asking, not 3600
