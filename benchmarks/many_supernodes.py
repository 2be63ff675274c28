"""How many SuperNodes one machine holds: memory per SuperNode and seconds per round.

Starts a local federation on 127.0.0.1 (``fedkit.deploy.LocalFederation``: a SuperLink and N
SuperNodes, insecure by default, ``--tls`` for TLS) for each N in ``--nodes`` (10, 25, 50),
then:

* **memory**: with the federation idle, the resident set (VmRSS from ``/proc``) of each
  SuperNode's process tree (``flower-supernode`` and the ``flower-superexec`` it starts),
  and of the SuperLink's tree; reported as the median per SuperNode and the total;
* **latency**: a tiny job (Synthetic(1, 1), logistic regression, FedAvg, K =
  ``--clients-per-round`` clients per round (default 10, at most N), 5 local steps),
  ``--rounds`` rounds; the median of the steady rounds (first and
  last left out, as in ``benchmarks/deployment_latency.py``); the peak of the machine's
  used memory during the run (MemTotal - MemAvailable, sampled every 0.5 s) minus the idle
  value is what the round's ClientApp processes add.

K stays fixed by default so that the rounds do the same work at every N and what grows is
the number of SuperNodes polling the SuperLink: in subprocess isolation each selected client
starts a ClientApp process that imports torch (about 0.5 GB each, measured as the round's
extra memory), so K = N = 50 would need about 25 GB on top of the idle SuperNodes, more than
this 24 GiB machine has.

``--isolation`` picks how the SuperNodes run their ClientApps (default ``subprocess``: a
process per message, nothing resident; ``process``: fedkit's long-lived workers, each of
which keeps torch resident, counted in the SuperNode's tree). Several ``--isolation`` values
may be given (comma-separated); each size runs in each mode, and a run whose idle
federation alone would not fit in the machine's available memory (estimated from the
previous size of the same mode) is recorded as skipped, with the estimate, not started.

The 1-minute load average before and after each run is recorded: on a shared machine other
jobs only ever add time. Every process is started by the federation and stopped by PID.

Usage:
    python benchmarks/many_supernodes.py [--nodes 10,25,50] [--rounds 4] [--tls]
        [--isolation subprocess,process]

Writes benchmarks/results/many_supernodes.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from round_time import measure

RESULT = Path(__file__).parent / "results" / "many_supernodes.json"


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and every process below it, in MiB."""
    from fedkit.deploy.processes import _descendants

    return sum(_rss_mb(p) for p in [pid, *_descendants(pid)])


def used_memory_mb() -> float:
    """MemTotal - MemAvailable of the machine, in MiB."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = int(value.split()[0])
    return (info["MemTotal"] - info["MemAvailable"]) / 1024


class PeakSampler:
    """Samples :func:`used_memory_mb` every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.peak = interval, used_memory_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, used_memory_mb())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def available_memory_mb() -> float:
    """MemAvailable of the machine, in MiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def run_size(num_nodes: int, clients_per_round: int, rounds: int, tls: bool,
             workdir: Path, isolation: str = "subprocess") -> dict:
    from fedkit.config import RunConfig
    from fedkit.deploy import LocalFederation

    cfg = RunConfig(name=f"nodes{num_nodes}-{isolation}", algorithm="fedavg", dataset="synthetic",
                    model="logreg", num_clients=num_nodes,
                    clients_per_round=min(clients_per_round, num_nodes),
                    rounds=rounds, local_steps=5, batch_size=10, eval_every=0,
                    progress=False, round_timeout=1800.0,
                    output_dir=str(workdir / f"nodes{num_nodes}-{isolation}" / "out"))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with LocalFederation(workdir / f"nodes{num_nodes}-{isolation}", num_nodes=num_nodes,
                         tls=tls, isolation=isolation) as fed:
        started = time.perf_counter() - start
        time.sleep(5.0)  # let every SuperNode settle (first polls, SuperExec start)
        per_node = [tree_rss_mb(p.pid) for p in fed.nodes.values()]
        link = tree_rss_mb(fed.superlink.pid)
        idle_used = used_memory_mb()
        with PeakSampler() as sampler:
            run_start = time.perf_counter()
            status = fed.run(cfg, timeout=7200)
            report = measure(cfg.results_dir, time.perf_counter() - run_start)
    report.update({
        "num_supernodes": num_nodes,
        "isolation": isolation,
        "clients_per_round": cfg.clients_per_round,
        "status": status.get("status"),
        "federation_start_seconds": started,
        "supernode_rss_mb_median": statistics.median(per_node),
        "supernode_rss_mb_min_max": [min(per_node), max(per_node)],
        "supernodes_rss_mb_total": sum(per_node),
        "superlink_rss_mb": link,
        "round_peak_extra_used_mb": sampler.peak - idle_used,
        "load_average_1min": [load_before, os.getloadavg()[0]],
    })
    return report


def table(reports: list[dict]) -> str:
    """A markdown table for docs/deployment.md."""
    rows = ["| SuperNodes | isolation | clients per round | start (s) "
            "| RSS per SuperNode (MiB, median) | all SuperNodes (MiB) "
            "| SuperLink (MiB) | seconds per round (median) | extra memory during a round (MiB) "
            "| load (1 min) before, after |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        rows.append(f"| {r['num_supernodes']} | {r['isolation']} | {r['clients_per_round']} | "
                    f"{r['federation_start_seconds']:.0f} | "
                    f"{r['supernode_rss_mb_median']:.0f} | {r['supernodes_rss_mb_total']:.0f} | "
                    f"{r['superlink_rss_mb']:.0f} | {r['seconds_per_round']:.1f} | "
                    f"{r['round_peak_extra_used_mb']:.0f} | "
                    f"{r['load_average_1min'][0]:.1f}, {r['load_average_1min'][1]:.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="10,25,50", help="comma-separated SuperNode counts")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients-per-round", type=int, default=10,
                        help="K, the same at every size (at most the number of SuperNodes)")
    parser.add_argument("--tls", action="store_true", help="TLS between SuperNodes and SuperLink")
    parser.add_argument("--isolation", default="subprocess",
                        help="comma-separated ClientApp isolation modes: subprocess, process")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    sizes = [int(n) for n in args.nodes.split(",") if n]
    modes = [m for m in args.isolation.split(",") if m]
    for key, value in (("FLWR_TELEMETRY_ENABLED", "0"), ("FLWR_DISABLE_UPDATE_CHECK", "1"),
                       ("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")):
        os.environ.setdefault(key, value)
    from fedkit.bench import environment_info

    reports, failures = [], []
    with tempfile.TemporaryDirectory(prefix="fedkit-many-nodes-") as tmp:
        for mode in modes:
            per_node = None  # MiB per idle SuperNode tree, from the previous size
            for n in sizes:
                need = None if per_node is None else n * per_node
                if need is not None and need > 0.9 * available_memory_mb():
                    failures.append({"num_supernodes": n, "isolation": mode, "skipped": True,
                                     "estimated_idle_mb": need,
                                     "available_mb": available_memory_mb()})
                    print(f"{n} SuperNodes ({mode}): skipped, about {need:.0f} MiB needed "
                          f"idle, {available_memory_mb():.0f} MiB available", flush=True)
                    continue
                try:
                    reports.append(run_size(n, args.clients_per_round, args.rounds, args.tls,
                                            Path(tmp), isolation=mode))
                    per_node = reports[-1]["supernode_rss_mb_median"]
                    print(json.dumps(reports[-1]), flush=True)
                except Exception as exc:  # noqa: BLE001 - recorded; other sizes still run
                    failures.append({"num_supernodes": n, "isolation": mode,
                                     "error": str(exc)})
                    print(f"{n} SuperNodes ({mode}): failed: {exc}", flush=True)
    result = {"benchmark": "many_supernodes", "tls": args.tls, "rounds": args.rounds,
              "clients_per_round": args.clients_per_round, "isolation": modes,
              "environment": environment_info(), "runs": reports, "failures": failures,
              "table": table(reports)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(result["table"])


if __name__ == "__main__":
    main()
