"""fedkit's Flower runtime on a running two-node Ray cluster (docs/scaling.md).

The test starts a Ray head node and one worker node on 127.0.0.1 with the commands of
docs/scaling.md, each ``ray start ... --block`` in a session of its own, so that its PID owns
every Ray process of its node (Ray's processes stay in that session). It runs ``fedkit
simulate --runtime flower --ray-address`` and ``fedkit bench --runtime flower --ray-address``
against them and compares the results with the in-process grid for the same seeds. Each node
has one CPU and each virtual client asks for one, so Flower's actor pool (one actor per node
CPU) needs both nodes; the ClientApp actors are seen in each node's process tree. At the end
each node is stopped by its PID (SIGTERM, then SIGKILL to what remains below it or in its
session) and no process of either node may be left.

Several Ray nodes on one machine need ports of their own for what the doc leaves to Ray's
defaults (:data:`SAME_MACHINE_FLAGS`), and a temporary folder each; nothing here touches
another Ray instance of the machine, and ``ray stop`` (which stops every Ray process of the
user) is never used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fedkit.bench import read_results
from fedkit.cli import main
from fedkit.config import RunConfig
from fedkit.deploy.processes import free_port
from fedkit.flower import run_inprocess
from fedkit.flower.apps.checkpoint import load_checkpoint

pytestmark = pytest.mark.ray_cluster

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
NUM_CPUS_PER_NODE = 1

# The commands of docs/scaling.md, "Start the cluster" and "Run", with the test's values.
HEAD = ("ray start --head --port {port} --num-cpus {cpus} --include-dashboard=false "
        "--disable-usage-stats --temp-dir {temp_dir} --block")
WORKER = ("ray start --address {address} --num-cpus {cpus} --disable-usage-stats "
          "--temp-dir {temp_dir} --block")
SIMULATE = ("fedkit simulate --runtime flower --ray-address {address} --cpus-per-client 1 "
            "--config {config} --output-dir {output_dir}")
BENCH = ("fedkit bench {suite} --runtime flower --ray-address {address} --cpus-per-client 1 "
         "--output-dir {output_dir}")
# What two nodes on one machine need besides (docs/scaling.md, "Trying it on one machine").
SAME_MACHINE_FLAGS = ("--node-manager-port", "--object-manager-port", "--min-worker-port",
                      "--max-worker-port", "--dashboard-agent-listen-port",
                      "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
                      "--metrics-export-port", "--ray-client-server-port",
                      "--object-store-memory")

RUN = {"name": "ray-cluster", "algorithm": "fedlaavg", "availability": "bernoulli",
       "num_clients": 6, "clients_per_round": 4, "rounds": 2, "checkpoint_every": 2,
       "seed": 3}


# --- processes, seen from /proc -------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            out += children
            todo += children
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"


def _session_members(sid: int) -> list[int]:
    """Live processes whose session id is ``sid`` (field 6 of /proc/<pid>/stat)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _read(f"/proc/{entry.name}/stat").rsplit(")", 1)[-1].split()
            if len(fields) > 3 and int(fields[3]) == sid and _alive(int(entry.name)):
                members.append(int(entry.name))
    return members


class _ActorWatch(threading.Thread):
    """Polls each node's process tree for Flower's ClientApp actors (``ray::ClientAppActor``
    process titles) and notes the actors that loaded torch, i.e. ran fedkit's ClientApp: the
    actor imports the ClientApp when it handles its first message."""

    def __init__(self, nodes: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.nodes = nodes
        self.actors: dict[str, set[int]] = {name: set() for name in nodes}
        self.ran: dict[str, set[int]] = {name: set() for name in nodes}
        self.peak_rss_mb = 0.0  # of any actor, for docs/scaling.md
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            for name, pid in self.nodes.items():
                for child in _descendants(pid):
                    if _read(f"/proc/{child}/cmdline").startswith("ray::ClientAppActor"):
                        self.actors[name].add(child)
                        if "libtorch" in _read(f"/proc/{child}/maps"):
                            self.ran[name].add(child)
                        rss = re.search(r"VmRSS:\s+(\d+) kB", _read(f"/proc/{child}/status"))
                        if rss:
                            self.peak_rss_mb = max(self.peak_rss_mb, int(rss.group(1)) / 1024)
            self.stop_event.wait(0.2)


# --- the cluster ------------------------------------------------------------------------------

@dataclasses.dataclass
class _Node:
    """A ``ray start ... --block`` process started in a session of its own."""

    name: str
    popen: subprocess.Popen
    log_file: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> list[int]:
        """SIGTERM to the ``ray start`` process (it stops its node's processes), then SIGKILL
        to whatever remains below it or in its session; returns what had to be killed.

        Only the PID: a SIGTERM to the whole process group as well (as
        ``FlowerProcess.stop`` sends) left a worker node's ``ray start`` hanging for a
        minute in our tries."""
        family = [self.pid, *_descendants(self.pid)]
        self.popen.terminate()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        remaining = sorted({p for p in family if _alive(p)} | set(_session_members(self.pid)))
        for pid in remaining:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(timeout=10)
        return remaining


def _start_node(name: str, command: str, extra: list[str], folder: Path) -> _Node:
    argv = [RAY, *shlex.split(command)[1:], *extra]
    log_file = folder / f"{name}.log"
    with log_file.open("ab") as log:
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    return _Node(name, popen, log_file)


def _wait_started(node: _Node, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while "Ray runtime started" not in node.log_text():
        assert node.popen.poll() is None, f"{node.name} exited:\n{node.log_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{node.name} not up:\n{node.log_text()[-3000:]}"
        time.sleep(0.5)


_NODES_SCRIPT = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps([n["Resources"].get("CPU", 0) for n in ray.nodes() if n["Alive"]]))
"""


def _alive_node_cpus(address: str) -> list[float]:
    """CPUs of each alive node of the cluster, asked from a separate Ray driver."""
    done = subprocess.run([sys.executable, "-c", _NODES_SCRIPT, address], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _same_machine_flags(head: bool) -> list[str]:
    flags = [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
             "--min-worker-port=0", "--max-worker-port=0",
             f"--dashboard-agent-listen-port={free_port()}",
             f"--dashboard-agent-grpc-port={free_port()}",
             f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
             "--object-store-memory=100000000"]
    return flags + ([f"--ray-client-server-port={free_port()}"] if head else [])


@pytest.fixture(scope="module")
def ray_cluster():
    """A head and a worker node on 127.0.0.1, one CPU each; stopped and checked gone."""
    # Not pytest's tmp_path: Ray's socket paths must stay under 107 characters, and other
    # pytest sessions on the machine prune old numbered tmp folders.
    folder = Path(tempfile.mkdtemp(prefix="fedkit-ray-", dir="/tmp"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    nodes: list[_Node] = []
    try:
        head = _start_node("head", HEAD.format(port=port, cpus=NUM_CPUS_PER_NODE,
                                               temp_dir=folder / "h"),
                           _same_machine_flags(head=True), folder)
        nodes.append(head)
        _wait_started(head)
        worker = _start_node("worker", WORKER.format(address=address, cpus=NUM_CPUS_PER_NODE,
                                                     temp_dir=folder / "w"),
                             _same_machine_flags(head=False), folder)
        nodes.append(worker)
        _wait_started(worker)
        deadline = time.monotonic() + 60
        while (cpus := _alive_node_cpus(address)) != [NUM_CPUS_PER_NODE] * 2:
            assert time.monotonic() < deadline, f"the worker did not join: {cpus}"
            time.sleep(1)
        yield {"address": address, "nodes": {n.name: n.pid for n in nodes}, "folder": folder}
    finally:
        killed, leftovers = {}, {}
        for node in reversed(nodes):  # the worker first, then the head
            family = [node.pid, *_descendants(node.pid)]
            killed[node.name] = node.stop()
            leftovers[node.name] = sorted({p for p in family if _alive(p)}
                                          | set(_session_members(node.pid)))
        shutil.rmtree(folder, ignore_errors=True)
    # Every process of both nodes is gone, and SIGTERM alone stopped them.
    assert leftovers == {n.name: [] for n in nodes}, leftovers
    assert killed == {n.name: [] for n in nodes}, killed


# --- the runs ---------------------------------------------------------------------------------

def _inprocess_reference(folder: Path) -> tuple[dict, dict]:
    cfg = RunConfig(**RUN, progress=False, output_dir=str(folder))
    run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, seed=cfg.seed)
    return read_results(folder), load_checkpoint(folder)


def _assert_same_run(got_folder: Path, results: dict, checkpoint: dict) -> None:
    got = read_results(got_folder)
    assert got["runtime"] == "flower"
    for mine, want in zip(got["rounds"], results["rounds"], strict=True):
        assert mine["clients"] == want["clients"]
        assert mine["num_rejected"] == 0
        assert mine["test_loss"] == pytest.approx(want["test_loss"], rel=1e-5)
        assert mine["test_accuracy"] == pytest.approx(want["test_accuracy"], abs=1e-9)
    model = load_checkpoint(got_folder)
    assert model["server_round"] == checkpoint["server_round"] == RUN["rounds"]
    assert sorted(model["arrays"]) == sorted(checkpoint["arrays"])
    for name, array in checkpoint["arrays"].items():
        np.testing.assert_allclose(model["arrays"][name].numpy(), array.numpy(), rtol=1e-5,
                                   atol=1e-6)


def _run_watched(nodes: dict[str, int], argv: list[str]) -> tuple[int, _ActorWatch]:
    watch = _ActorWatch(nodes)
    watch.start()
    try:
        code = main(argv)
    finally:
        watch.stop_event.set()
        watch.join()
    return code, watch


def _no_client_actors_left(nodes: dict[str, int], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_read(f"/proc/{c}/cmdline").startswith("ray::ClientAppActor")
                   for pid in nodes.values() for c in _descendants(pid)):
            return True
        time.sleep(0.5)
    return False


def test_simulate_and_bench_on_a_two_node_ray_cluster_match_the_inprocess_grid(
        ray_cluster, tmp_path, capsys):
    address, nodes = ray_cluster["address"], ray_cluster["nodes"]
    results, checkpoint = _inprocess_reference(tmp_path / "inprocess")
    config = tmp_path / "run.toml"
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in RUN.items()))

    command = SIMULATE.format(address=address, config=config, output_dir=tmp_path / "sim")
    started = time.monotonic()
    code, watch = _run_watched(nodes, shlex.split(command)[1:])
    seconds = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"Ray cluster {address}" in err
    _assert_same_run(tmp_path / "sim", results, checkpoint)
    # One actor per node CPU, so one on each node; each ran ClientApp messages.
    assert {name: len(pids) for name, pids in watch.actors.items()} == {"head": 1, "worker": 1}
    assert all(watch.ran.values()), (watch.actors, watch.ran)
    peak_rss = watch.peak_rss_mb
    # The run's actors end with it; its SuperLink is stopped.
    assert _no_client_actors_left(nodes)
    superlink = int(re.search(r"SuperLink \S+ \(pid (\d+)\)", err).group(1))
    assert not _alive(superlink)

    suite = tmp_path / "suite.toml"
    suite.write_text(f'[suite]\nname = "ray"\n\n[base]\ninclude = "{config}"\n\n'
                     f'[grid]\nseed = [{RUN["seed"]}]\n')
    command = BENCH.format(suite=suite, address=address, output_dir=tmp_path / "bench")
    code, watch = _run_watched(nodes, shlex.split(command)[1:])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "1 of 1 runs have results" in out.out
    (run_folder,) = (tmp_path / "bench" / "runs").iterdir()
    _assert_same_run(run_folder, results, checkpoint)
    assert all(watch.ran.values()), (watch.actors, watch.ran)
    assert _no_client_actors_left(nodes)
    print(f"simulate on the two-node cluster: {seconds:.1f} s; peak RSS of a ClientApp "
          f"actor {peak_rss:.0f} MB")


def test_an_unreachable_ray_address_fails_at_once_naming_it(tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    code = main(["simulate", "--runtime", "flower", "--ray-address", address,
                 "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert time.monotonic() - started < 15
    assert f"Ray cluster at {address} is not reachable" in err and "nothing was run" in err
    assert not (tmp_path / "out").exists()
    code = main(["bench", str(ROOT / "simulations" / "availability_zoo.toml"), "--runtime",
                 "flower", "--ray-address", address, "--output-dir", str(tmp_path / "b")])
    assert code == 1 and f"Ray cluster at {address} is not reachable" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_port_that_is_not_a_ray_head_is_refused(tmp_path, capsys):
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never speaks gRPC
        address = f"127.0.0.1:{server.getsockname()[1]}"
        code = main(["simulate", "--runtime", "flower", "--ray-address", address,
                     "--output-dir", str(tmp_path / "out")])
    assert code == 1
    assert f"{address} accepts connections but does not answer as a Ray head node" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, match", [
    (["--ray-address", "ray://10.0.0.5:10001"], r"Ray Client addresses \(ray://\)"),
    (["--ray-address", "10.0.0.5"], r"--ray-address '10\.0\.0\.5': expected HOST:PORT"),
    (["--cpus-per-client", "0.5"], r"--cpus-per-client 0\.5: expected a whole number"),
    (["--gpus-per-client", "-1"], r"--gpus-per-client -1\.0: expected a number >= 0"),
])
def test_bad_ray_options_are_configuration_errors(argv, match, tmp_path, capsys):
    code = main(["simulate", "--runtime", "flower", *argv, "--output-dir", str(tmp_path)])
    assert code == 2
    assert re.search(match, capsys.readouterr().err)


def test_ray_options_need_the_flower_runtime(tmp_path, capsys):
    assert main(["simulate", "--ray-address", "auto", "--output-dir", str(tmp_path)]) == 2
    assert "--ray-address applies to --runtime flower only" in capsys.readouterr().err
    assert main(["bench", str(ROOT / "simulations" / "availability_zoo.toml"),
                 "--runtime", "flower", "--jobs", "2", "--output-dir", str(tmp_path)]) == 2
    assert "--jobs 2 with --runtime flower" in capsys.readouterr().err


def test_auto_finds_the_cluster_ray_start_recorded(tmp_path, monkeypatch):
    from fedkit.flower.runtime.ray_cluster import RayClusterError, resolve_ray_address

    env = {"RAY_TMPDIR": str(tmp_path)}
    with pytest.raises(RayClusterError, match=r"--ray-address auto: no Ray cluster found"):
        resolve_ray_address("auto", env)
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("10.0.0.5:6379\n")
    assert resolve_ray_address("auto", env) == "10.0.0.5:6379"
    assert resolve_ray_address("auto", {**env, "RAY_ADDRESS": "10.0.0.6:6380"}) == \
        "10.0.0.6:6380"
    assert resolve_ray_address("10.0.0.7:1", env) == "10.0.0.7:1"


def test_federation_config_is_unchanged_without_gpus():
    from fedkit.flower.runtime.ray_cluster import RayOptions

    assert RayOptions().federation_config(4) == "num-supernodes=4 client-resources-num-cpus=1"
    assert RayOptions(num_cpus_per_client=2.0, num_gpus_per_client=0.25).federation_config(
        3) == "num-supernodes=3 client-resources-num-cpus=2 client-resources-num-gpus=0.25"
    assert RayOptions().environment({"A": "1"}) == {"A": "1"}


def _doc_commands() -> list[list[str]]:
    text = (ROOT / "docs" / "scaling.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines += [line.split("#")[0].strip() for line in block.replace("\\\n", " ").split("\n")]
    return [shlex.split(line) for line in lines
            if line.startswith(("ray start", "fedkit simulate", "fedkit bench"))]


def _flags(argv: list[str]) -> list[str]:
    return sorted({a.split("=")[0] for a in argv if a.startswith("--")})


def test_the_doc_runs_the_commands_this_test_runs():
    documented = {(" ".join(argv[:2]) + (" --head" if "--head" in argv else "")): _flags(argv)
                  for argv in _doc_commands()}
    ran = {"ray start --head": HEAD, "ray start": WORKER, "fedkit simulate": SIMULATE,
           "fedkit bench": BENCH}
    for key, command in ran.items():
        assert documented.get(key) == _flags(shlex.split(command)), key
    text = (ROOT / "docs" / "scaling.md").read_text()
    assert all(flag in text for flag in SAME_MACHINE_FLAGS)
