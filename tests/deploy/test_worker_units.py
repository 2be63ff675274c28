"""Process isolation without processes: code identity, commands, the ClientApp's lean import."""

from __future__ import annotations

import argparse
import subprocess
import sys
import types

import pytest

from fedkit.deploy import LocalFederation
from fedkit.deploy.cli import add_parser
from fedkit.deploy.processes import start_supernode
from fedkit.deploy.supervisor import supervisor_command
from fedkit.deploy.worker import same_package_code


def _package(tmp_path, files: dict[str, str]) -> types.ModuleType:
    folder = tmp_path / "loaded" / "mypkg"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    package = types.ModuleType("mypkg")
    package.__path__ = [str(folder)]
    return package


def _fab(tmp_path, files: dict[str, str]):
    project = tmp_path / "fab"
    for name, text in files.items():
        (project / "mypkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (project / "mypkg" / name).write_text(text)
    return project


FILES = {"__init__.py": "", "app.py": "x = 1\n", "data/scenario.toml": "a = 1\n"}


def test_a_fab_with_the_imported_files_is_the_same_code(tmp_path):
    package = _package(tmp_path, {**FILES, "__pycache__/app.cpython-311.pyc": "bytes"})
    assert same_package_code(_fab(tmp_path, FILES), package)


@pytest.mark.parametrize("change", [
    {"app.py": "x = 2\n"},                       # an edited module
    {"data/scenario.toml": "a = 2\n"},           # an edited data file
    {"new.py": "y = 1\n"},                       # a module the imported package lacks
])
def test_a_fab_with_other_files_is_other_code(tmp_path, change):
    package = _package(tmp_path, FILES)
    assert not same_package_code(_fab(tmp_path, {**FILES, **change}), package)


def test_a_fab_without_the_package_is_other_code(tmp_path):
    (tmp_path / "fab").mkdir()
    assert not same_package_code(tmp_path / "fab", _package(tmp_path, FILES))


def test_same_package_code_needs_a_package():
    with pytest.raises(ValueError, match="'plain' is not a package with a folder on disk"):
        same_package_code(__import__("pathlib").Path("."), types.ModuleType("plain"))


def test_supervisor_command_wraps_a_process_isolated_supernode():
    cmd = supervisor_command(["flower-supernode", "--port", "9300", "--isolation", "process"],
                             runtime_api_address="127.0.0.1:9300", num_workers=2,
                             preload=["a.b:c"], poll_interval=0.5)
    assert cmd[1:3] == ["-m", "fedkit.deploy.supervisor"]
    assert cmd[cmd.index("--workers") + 1] == "2"
    assert cmd[cmd.index("--preload") + 1] == "a.b:c"
    assert cmd[cmd.index("--poll-interval") + 1] == "0.5"
    assert cmd[cmd.index("--") + 1:] == ["flower-supernode", "--port", "9300", "--isolation",
                                         "process"]


@pytest.mark.parametrize("supernode", [
    ["flower-supernode", "--port", "9300"],
    ["flower-supernode", "--isolation", "subprocess"],
])
def test_supervisor_refuses_a_supernode_that_runs_its_own_executor(supernode):
    with pytest.raises(ValueError, match="must run with --isolation process"):
        supervisor_command(supernode, runtime_api_address="127.0.0.1:9300")


@pytest.mark.parametrize("num_workers", [0, -1, True, 1.5])
def test_supervisor_needs_at_least_one_worker(num_workers):
    with pytest.raises(ValueError, match=r"num_workers = .*expected an integer >= 1"):
        supervisor_command(["flower-supernode", "--isolation", "process"],
                           runtime_api_address="127.0.0.1:9300", num_workers=num_workers)


def test_unknown_isolation_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"isolation = 'thread', expected one of"):
        start_supernode(superlink="127.0.0.1:1", port=2, node_config={},
                        log_file=tmp_path / "x.log", isolation="thread")
    with pytest.raises(ValueError, match=r"isolation = 'thread', expected one of"):
        LocalFederation(tmp_path, num_nodes=1, isolation="thread")


def test_deploy_cli_isolation_defaults_to_long_lived_workers():
    parser = argparse.ArgumentParser(prog="fedkit")
    add_parser(parser.add_subparsers(dest="command"))
    base = ["deploy", "supernode", "--client-id", "0", "--insecure"]
    args = parser.parse_args(base)
    assert (args.isolation, args.workers) == ("process", 1)
    args = parser.parse_args([*base, "--isolation", "subprocess"])
    assert args.isolation == "subprocess"
    args = parser.parse_args(["deploy", "local", "--isolation", "process", "--workers", "2"])
    assert (args.isolation, args.workers) == ("process", 2)


def test_the_client_app_imports_torch_only_when_used():
    # A flwr-clientapp process that only answers the client-id query never imports torch;
    # warm_up pays for torch and its lazy torch._dynamo import once, in a long-lived worker.
    script = ("import sys\n"
              "import fedkit.flower.apps.client_app as c\n"
              "before = 'torch' in sys.modules\n"
              "c.warm_up()\n"
              "print(before, 'torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, check=True)
    assert out.stdout.split() == ["False", "True"]
