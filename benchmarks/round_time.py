"""Seconds per FedAvg round on CIFAR-10: Flower's Simulation Engine, fedkit's sequential
in-process grid and fedkit's batched in-process grid, measured in one script.

Workload (the FedLaAvg CIFAR-10 setup of Yan et al., arXiv:2002.07399 v1, as in
``simulations/fedlaavg_cifar10.toml``): LeNet-5, N = 1000 one-class clients, K = 100 per
round, 10 local SGD steps of batch 5. All variants execute the same ServerApp and ClientApp
on the same machine, one after the other. Per-round
seconds come from each run's results.json; the first round (warm-up and the client-id
directory query) and the last (central evaluation) are left out, and the median of the rest
is reported. Each in-process variant runs in a fresh child process so that its peak resident
memory (``peak_rss_mb``) is its own. The batched variant's achieved GFLOP/s is set against the
float32 matrix-multiply rate measured in the same script (2048 x 2048, all threads).

Usage:
    python benchmarks/round_time.py [--rounds 8] [--data-dir DIR] [--skip-flower] [--device cpu]
    python benchmarks/round_time.py --table-only   # README table from the existing result file

Writes benchmarks/results/round_time.json and regenerates the table in README.md from it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import tempfile
import time
from pathlib import Path

RESULT = Path(__file__).parent / "results" / "round_time.json"
README = Path(__file__).parents[1] / "README.md"
# LeNet-5 forward FLOPs per 3x32x32 sample (2 per multiply-add): conv1 705,600 + conv2
# 480,000 + fc 96,000 + 20,160 + 1,680; forward + backward ~ 3x forward.
LENET_TRAIN_FLOP_PER_SAMPLE = 3 * 1_303_440
LABELS = {"flower": "Flower Simulation Engine (Ray)",
          "sequential": "fedkit in-process grid, sequential",
          "batched": "fedkit in-process grid, batched"}


def setup(rounds: int, data_dir: Path, out: Path, name: str):
    from fedkit.config import RunConfig

    return RunConfig(
        name=name, dataset="cifar10", data_dir=str(data_dir), partition="one-class",
        num_clients=1000, clients_per_round=100, rounds=rounds, model="lenet5",
        weighting="uniform", local_steps=10, batch_size=5, lr=0.01, lr_decay=0.9999,
        eval_every=0, progress=False, output_dir=str(out / name),
    )


def measure(results_dir: Path, wall: float) -> dict:
    from fedkit.bench import read_results

    rounds = read_results(results_dir)["rounds"]
    steady = [r["seconds"] for r in rounds[1:-1]] or [r["seconds"] for r in rounds]
    return {
        "seconds_per_round": statistics.median(steady),
        "round_seconds": [r["seconds"] for r in rounds],
        "rounds_in_median": len(steady),
        "wall_seconds_total": wall,
    }


def _inprocess_child(cfg_dict: dict, engine: str, device: str, queue) -> None:
    from fedkit.flower import run_inprocess

    start = time.perf_counter()
    run_inprocess(cfg_dict, num_nodes=cfg_dict["num_clients"], seed=cfg_dict["seed"],
                  engine=engine, device=device)
    wall = time.perf_counter() - start
    queue.put((wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run_inprocess_variant(cfg, engine: str, device: str) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_inprocess_child, args=(cfg.to_dict(), engine, device, queue))
    proc.start()
    wall, peak_mb = queue.get()
    proc.join()
    report = measure(cfg.results_dir, wall)
    report["peak_rss_mb"] = peak_mb
    return report


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def readme_table(report: dict) -> str:
    """The README table, generated from the result file only."""
    machine = report["machine"]
    rows = ["| runtime | seconds per round (median) | speed relative to sequential "
            "| peak memory (MB) |", "|---|---|---|---|"]
    base = report["sequential"]["seconds_per_round"]
    for key in ("flower", "sequential", "batched"):
        if key in report:
            sec = report[key]["seconds_per_round"]
            peak = report[key].get("peak_rss_mb")
            rows.append(f"| {LABELS[key]} | {sec:.2f} | {base / sec:.2f}x |"
                        f" {f'{peak:.0f}' if peak else 'not measured (Ray processes)'} |")
    rows.append("")
    notes = [f"Measured on {machine['cpu']} ({machine['cpu_count']} cores), torch "
             f"{machine['packages']['torch']}, flwr {machine['packages']['flwr']}, "
             f"{report['setup']['rounds']} rounds per runtime, median of rounds 2..R-1"]
    if "batched" in report and "gflops" in report["batched"]:
        notes.append(f"batched: {report['batched']['gflops']:.1f} GFLOP/s = "
                     f"{100 * report['batched']['fraction_of_matmul']:.0f}% of the "
                     f"{report['matmul_gflops']:.0f} GFLOP/s float32 matmul rate")
    rows.append("; ".join(notes) + "; `benchmarks/results/round_time.json`.")
    return "\n".join(rows)


def update_readme(report: dict) -> None:
    """Regenerate the README section from ``report`` alone."""
    from fedkit.bench.readme import replace_section

    replace_section(README, "round-time-table", readme_table(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--skip-flower", action="store_true")
    parser.add_argument("--device", default="cpu", help="device of the batched variant")
    parser.add_argument("--output", type=Path, default=RESULT)
    parser.add_argument("--table-only", action="store_true",
                        help="only regenerate the README table from the result file")
    args = parser.parse_args()
    if args.table_only:
        update_readme(json.loads(RESULT.read_text()))
        return
    from fedkit.bench import environment_info
    from fedkit.data.cifar10 import default_data_dir
    from fedkit.flower.runtime.simulation import run_flower_simulation

    data_dir = (args.data_dir or default_data_dir()).resolve()
    report: dict = {"matmul_gflops": matmul_gflops()}
    print(f"float32 matmul: {report['matmul_gflops']:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory(prefix="fedkit-bench-") as tmp:
        out = Path(tmp)
        for engine in ("sequential", "batched"):
            cfg = setup(args.rounds, data_dir, out, engine)
            report[engine] = run_inprocess_variant(
                cfg, engine, args.device if engine == "batched" else "cpu")
            print(f"in-process {engine}: {report[engine]['seconds_per_round']:.3f} s/round")
        if not args.skip_flower:
            cfg = setup(args.rounds, data_dir, out, "flower")
            start = time.perf_counter()
            run_flower_simulation(cfg, num_cpus_per_client=1.0)
            report["flower"] = measure(cfg.results_dir, time.perf_counter() - start)
            print(f"Flower Simulation Engine: {report['flower']['seconds_per_round']:.3f} s/round")
    flop = 100 * 10 * 5 * LENET_TRAIN_FLOP_PER_SAMPLE
    report["batched"]["gflops"] = flop / report["batched"]["seconds_per_round"] / 1e9
    report["batched"]["fraction_of_matmul"] = report["batched"]["gflops"] / report["matmul_gflops"]
    report["speedup_batched_vs_sequential"] = (report["sequential"]["seconds_per_round"]
                                               / report["batched"]["seconds_per_round"])
    if "flower" in report:
        report["speedup_batched_vs_flower"] = (report["flower"]["seconds_per_round"]
                                               / report["batched"]["seconds_per_round"])
        report["speedup_sequential_vs_flower"] = (report["flower"]["seconds_per_round"]
                                                  / report["sequential"]["seconds_per_round"])
    report["setup"] = {
        "dataset": "CIFAR-10 (offline JPEG copy from shared/data/cifar10 when built by make)",
        "model": "lenet5", "num_clients": 1000, "clients_per_round": 100,
        "local_steps": 10, "batch_size": 5, "partition": "one-class", "rounds": args.rounds,
        "flower": "flwr run . local, num-supernodes=1000, client-resources-num-cpus=1",
        "batched_device": args.device,
        "train_gflop_per_round": flop / 1e9,
        "median_over": "rounds 2 .. R-1 (round 1: warm-up + client-id query; round R: eval)",
    }
    report["machine"] = environment_info()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output}")
    if args.output == RESULT:
        update_readme(report)


if __name__ == "__main__":
    main()
