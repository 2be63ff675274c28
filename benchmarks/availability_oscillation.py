"""Does accuracy oscillate with the availability period? Probe a suite run round by round.

A benchmark suite evaluates every 100 rounds; under the alternating schedule of the FedLaAvg
CIFAR-10 setup (classes 0-4 online for E = 10 rounds, then classes 5-9 for 5 rounds: a period
of 15) that samples the same phase over and over and hides any oscillation. This script
takes a run's latest checkpoint, copies it to a scratch folder, and continues the run from it
for a few periods with central evaluation after *every* round (the suite's own folder is only
read). A resumed run is exact (fedkit.flower.apps.checkpoint), so these are the rounds the run
itself would go through.

For each probed run it records, per round: test accuracy and loss, and the share of the
online clients whose data is from classes 0-4 (from the run's availability model). Written to
``<suite>/oscillation.csv``, ``oscillation.png`` and ``oscillation.md`` (amplitude = max - min
of test accuracy over the window; mean and standard deviation).

Usage:
    python benchmarks/availability_oscillation.py [--suite docs/results/fedlaavg_cifar10]
        [--runs NAME ...] [--periods 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SUITE = ROOT / "docs" / "results" / "fedlaavg_cifar10"
DEFAULT_RUNS = ("availability=alternating__algorithm=fedavg__seed=0",
                "availability=alternating__algorithm=fedlaavg__seed=0")


def run_config(suite: Path, name: str) -> dict:
    """The run's config as the suite runner wrote it (``suite.json``)."""
    runs = {r["name"]: r["config"] for r in json.loads((suite / "suite.json").read_text())["runs"]}
    if name not in runs:
        raise SystemExit(f"run {name!r} is not in {suite / 'suite.json'}; runs: {sorted(runs)}")
    return runs[name]


def period_of(config: dict) -> int:
    """Length of the alternating schedule's period, E + int(alpha E), from its scenario file."""
    from fedkit.availability import load_scenario

    scenario = load_scenario(config["availability"])
    if scenario.get("model") != "alternating":
        raise SystemExit(f"run uses availability {config['availability']!r}; this probe is for "
                         "the alternating schedule")
    return int(scenario["period_e"]) + int(scenario["alpha"] * scenario["period_e"])


def probe(suite: Path, name: str, periods: int) -> list[dict]:
    """Continue ``name`` from its checkpoint for ``periods`` periods, evaluating every round."""
    from fedkit.config import RunConfig
    from fedkit.flower import run_inprocess
    from fedkit.flower.apps.checkpoint import CHECKPOINT_DIR, load_checkpoint
    from fedkit.flower.apps.task import availability_model, client_info, load_data

    folder = suite / "runs" / name
    checkpoint = load_checkpoint(folder)
    if checkpoint is None:
        raise SystemExit(f"{folder} has no checkpoint yet; run the suite first")
    start = int(checkpoint["server_round"])
    config = run_config(suite, name)
    window = periods * period_of(config)
    with tempfile.TemporaryDirectory(prefix="fedkit-oscillation-") as tmp:
        scratch = Path(tmp) / name
        shutil.copytree(folder / CHECKPOINT_DIR, scratch / CHECKPOINT_DIR)
        cfg = RunConfig.from_mapping({**config, "output_dir": str(scratch), "resume": True,
                                   "rounds": start + window, "eval_every": 1,
                                   "checkpoint_every": 0, "progress": False})
        run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, seed=cfg.seed)
        rounds = json.loads((scratch / "results.json").read_text())["rounds"]
    data = load_data(cfg)
    dominant = client_info(data).label_histograms.argmax(axis=1)
    group = np.isin(dominant, [0, 1, 2, 3, 4])
    model = availability_model(cfg, data)
    records = []
    for record in rounds:
        if record["round"] <= start:
            continue
        online = np.asarray(model.available(record["round"]), dtype=bool)
        records.append({
            "run": name, "algorithm": cfg.algorithm, "round": record["round"],
            "test_accuracy": record["test_accuracy"], "test_loss": record["test_loss"],
            "online_share_classes_0_4": float(group[online].mean()) if online.any() else 0.0,
        })
    return records


def write_outputs(suite: Path, records: list[dict]) -> None:
    with (suite / "oscillation.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    by_run: dict[str, list[dict]] = {}
    for r in records:
        by_run.setdefault(r["algorithm"], []).append(r)
    first = next(iter(by_run.values()))
    for r in first:  # shade the rounds in which classes 0-4 are online
        if r["online_share_classes_0_4"] > 0.5:
            ax.axvspan(r["round"] - 0.5, r["round"] + 0.5, color="0.92", lw=0)
    for algorithm, rows in by_run.items():
        ax.plot([r["round"] for r in rows], [100 * r["test_accuracy"] for r in rows],
                marker=".", label=algorithm)
    ax.set_xlabel("round (shaded: classes 0-4 online)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    ax.set_title("Accuracy after every round, alternating availability")
    fig.tight_layout()
    fig.savefig(suite / "oscillation.png", dpi=120)
    plt.close(fig)

    lines = ["| algorithm | rounds | mean acc (%) | std (pp) | min (%) | max (%) "
             "| amplitude (pp) |", "|---|---|---|---|---|---|---|"]
    for algorithm, rows in by_run.items():
        acc = [100 * r["test_accuracy"] for r in rows]
        lines.append(f"| {algorithm} | {rows[0]['round']}-{rows[-1]['round']} | "
                     f"{statistics.mean(acc):.2f} | {statistics.pstdev(acc):.2f} | "
                     f"{min(acc):.2f} | {max(acc):.2f} | {max(acc) - min(acc):.2f} |")
    (suite / "oscillation.md").write_text(
        "Test accuracy after every round, continued from each run's latest checkpoint "
        "(`python benchmarks/availability_oscillation.py`; offline JPEG copy of CIFAR-10).\n\n"
        + "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE)
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS))
    parser.add_argument("--periods", type=int, default=3)
    args = parser.parse_args()
    if args.periods < 1:
        raise SystemExit(f"--periods = {args.periods}, expected at least 1")
    records = [r for name in args.runs for r in probe(args.suite, name, args.periods)]
    write_outputs(args.suite, records)
    print((args.suite / "oscillation.md").read_text())


if __name__ == "__main__":
    main()
