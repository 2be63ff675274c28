"""Seconds per FedAvg round on CIFAR-10: fedkit's in-process grid vs Flower's Simulation Engine.

Workload (the FedLaAvg CIFAR-10 setup, shared/reference/algorithms.md §1.5): LeNet-5,
N = 1000 one-class clients, K = 100 per round, 10 local SGD steps of batch 5. Both runtimes
execute the same ServerApp and ClientApp, one after the other in this script, on the same
machine. Per-round seconds come from each run's results.json; the first round (warm-up and the
client-id directory query) and the last (central evaluation) are left out, and the median of
the rest is reported.

Usage:
    python benchmarks/round_time.py [--rounds 8] [--data-dir DIR] [--skip-flower]
    python benchmarks/round_time.py --table-only   # README table from the existing result file

Writes benchmarks/results/round_time.json and regenerates the table in README.md from it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from fedkit.bench import environment_info, read_results
from fedkit.config import RunConfig
from fedkit.data.cifar10 import default_data_dir
from fedkit.flower import run_inprocess
from fedkit.flower.simulation import run_flower_simulation

RESULT = Path(__file__).parent / "results" / "round_time.json"
README = Path(__file__).parents[1] / "README.md"
MARKER_START = "<!-- round-time-table -->"
MARKER_END = "<!-- /round-time-table -->"


def readme_table(report: dict) -> str:
    """The README table, generated from the result file only."""
    machine = report["machine"]
    rows = [
        "| runtime | seconds per round (median) | relative |",
        "|---|---|---|",
    ]
    base = report["sequential"]["seconds_per_round"]
    for key, label in (("sequential", "fedkit in-process grid"),
                       ("flower", "Flower Simulation Engine (Ray)")):
        if key in report:
            sec = report[key]["seconds_per_round"]
            rows.append(f"| {label} | {sec:.2f} | {sec / base:.2f}x |")
    rows.append("")
    rows.append(
        f"Measured on {machine['cpu']} ({machine['cpu_count']} cores), torch "
        f"{machine['packages']['torch']}, flwr {machine['packages']['flwr']}, "
        f"{report['setup']['rounds']} rounds per runtime, median of rounds 2..R-1; "
        "`benchmarks/results/round_time.json`."
    )
    return "\n".join(rows)


def update_readme(report: dict) -> None:
    """Replace the text between the two README markers with :func:`readme_table`."""
    text = README.read_text()
    head, rest = text.split(MARKER_START, 1)
    _, tail = rest.split(MARKER_END, 1)
    README.write_text(f"{head}{MARKER_START}\n{readme_table(report)}\n{MARKER_END}{tail}")


def setup(rounds: int, data_dir: Path, out: Path, name: str) -> RunConfig:
    return RunConfig(
        name=name, dataset="cifar10", data_dir=str(data_dir), partition="one-class",
        num_clients=1000, clients_per_round=100, rounds=rounds, model="lenet5",
        weighting="uniform", local_steps=10, batch_size=5, lr=0.01, lr_decay=0.9999,
        eval_every=0, progress=False, output_dir=str(out / name),
    )


def measure(results_dir: Path, wall: float) -> dict:
    rounds = read_results(results_dir)["rounds"]
    steady = [r["seconds"] for r in rounds[1:-1]] or [r["seconds"] for r in rounds]
    return {
        "seconds_per_round": statistics.median(steady),
        "round_seconds": [r["seconds"] for r in rounds],
        "rounds_in_median": len(steady),
        "wall_seconds_total": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument("--table-only", action="store_true",
                        help="only regenerate the README table from the result file")
    args = parser.parse_args()
    if args.table_only:
        update_readme(json.loads(RESULT.read_text()))
        return
    data_dir = (args.data_dir or default_data_dir()).resolve()
    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="fedkit-bench-") as tmp:
        out = Path(tmp)
        cfg = setup(args.rounds, data_dir, out, "sequential")
        start = time.perf_counter()
        run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, seed=cfg.seed)
        report["sequential"] = measure(out / "sequential", time.perf_counter() - start)
        print(f"in-process (sequential): {report['sequential']['seconds_per_round']:.3f} s/round")
        if not args.skip_flower:
            cfg = setup(args.rounds, data_dir, out, "flower")
            start = time.perf_counter()
            run_flower_simulation(cfg, num_cpus_per_client=1.0)
            report["flower"] = measure(out / "flower", time.perf_counter() - start)
            print(f"Flower Simulation Engine: {report['flower']['seconds_per_round']:.3f} s/round")
    if "flower" in report:
        report["speedup_sequential_vs_flower"] = (
            report["flower"]["seconds_per_round"] / report["sequential"]["seconds_per_round"]
        )
    report["setup"] = {
        "dataset": "CIFAR-10 (offline JPEG copy from shared/data/cifar10 when built by make)",
        "model": "lenet5", "num_clients": 1000, "clients_per_round": 100,
        "local_steps": 10, "batch_size": 5, "partition": "one-class", "rounds": args.rounds,
        "flower": "flwr run . local, num-supernodes=1000, client-resources-num-cpus=1",
        "median_over": "rounds 2 .. R-1 (round 1: warm-up + client-id query; round R: eval)",
    }
    report["machine"] = environment_info()
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {RESULT}")
    update_readme(report)


if __name__ == "__main__":
    main()
