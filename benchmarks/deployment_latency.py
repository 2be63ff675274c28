"""Seconds per deployed round: a plain Flower app vs fedkit (both isolations) vs in-process.

Workload, the same shape for every variant: 3 clients, all in every round, a logistic
regression trained for 10 local steps of batch 10 (milliseconds), FedAvg, train only -- so a
round's time is the runtime's own overhead. Deployed variants run on a fresh
``fedkit.deploy.LocalFederation`` each: a SuperLink with TLS and 3 SuperNodes on 127.0.0.1,
the run launched with ``flwr run``. Variants, one after the other on this machine:

* ``inprocess``: fedkit's in-process grid (sequential engine), no processes, no network;
* ``flower_app``: the plain Flower app in ``benchmarks/flower_app`` (Message API ClientApp
  training a torch logistic regression with ``torch.optim.SGD``, Flower's own FedAvg
  ServerApp; no fedkit import) with Flower's defaults: subprocess isolation (a new
  ``flwr-clientapp`` per message) and Flower's reply polling;
* ``fedkit_subprocess``: fedkit (Synthetic(1, 1), logreg, FedAvg) with the same subprocess
  isolation;
* ``fedkit_process``: fedkit with ``isolation="process"``: long-lived ClientApp workers
  (``fedkit.deploy.worker``) that imported torch and fedkit at start;
* ``flower_app_process``: the plain Flower app on fedkit's workers (its ServerApp keeps
  Flower's 3 s reply polling): separates what the workers save from what fedkit's faster
  reply polling saves.

Per-round seconds: fedkit's from its results.json, the plain app's from the times its
ServerApp records (Flower's ``evaluate_fn`` hook, called after every round). The first round
(fedkit's client-id query, first FAB install) and the last are left out and the median of
the others is taken. With ``--repeats R`` the variants run R times, interleaved, and the
smallest of a variant's medians is reported (all are kept): other jobs on a shared machine
only ever add time. The 1-minute load average is recorded around each run.

Usage:
    python benchmarks/deployment_latency.py [--rounds 6] [--repeats 2] [--variants ...]

Writes benchmarks/results/deployment_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from round_time import measure  # same median-of-steady-rounds rule as the round-time benchmark

RESULT = Path(__file__).parent / "results" / "deployment_latency.json"
FLOWER_APP = Path(__file__).parent / "flower_app"
VARIANTS = ("inprocess", "flower_app", "fedkit_subprocess", "fedkit_process",
            "flower_app_process")
NUM_CLIENTS = 3
LABELS = {"inprocess": "fedkit, in-process grid (sequential)",
          "flower_app": "plain Flower app, Flower defaults (subprocess isolation)",
          "fedkit_subprocess": "fedkit, subprocess isolation",
          "fedkit_process": "fedkit, process isolation (long-lived workers)",
          "flower_app_process": "plain Flower app on fedkit's long-lived workers"}


def setup(rounds: int, out: Path, name: str):
    from fedkit.config import RunConfig

    return RunConfig(name=name, algorithm="fedavg", dataset="synthetic", model="logreg",
                     num_clients=NUM_CLIENTS, clients_per_round=NUM_CLIENTS, rounds=rounds,
                     local_steps=10, batch_size=10, eval_every=0, progress=False,
                     output_dir=str(out / name))


def _steady(seconds: list[float]) -> dict:
    steady = seconds[1:-1] or seconds
    return {"seconds_per_round": statistics.median(steady), "round_seconds": seconds,
            "rounds_in_median": len(steady)}


def run_variant(name: str, rounds: int, out: Path) -> dict:
    from fedkit.deploy import LocalFederation
    from fedkit.flower import run_inprocess

    cfg = setup(rounds, out, name)
    load_before = os.getloadavg()[0]
    if name == "inprocess":
        start = time.perf_counter()
        run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, engine="sequential")
        report = measure(cfg.results_dir, time.perf_counter() - start)
        report["load_average_1min"] = [load_before, os.getloadavg()[0]]
        return report
    plain = name.startswith("flower_app")
    isolation = "process" if name in ("fedkit_process", "flower_app_process") else "subprocess"
    start = time.perf_counter()
    with LocalFederation(out / f"{name}-federation", num_nodes=NUM_CLIENTS, tls=True,
                         isolation=isolation) as fed:
        started = time.perf_counter() - start
        run_start = time.perf_counter()
        if plain:
            timings = out / f"{name}-timings.json"
            status = fed.run({"num-server-rounds": rounds, "num-clients": NUM_CLIENTS,
                              "timings-path": str(timings)},
                             project_root=FLOWER_APP, timeout=1800)
            wall = time.perf_counter() - run_start
            report = _steady(json.loads(timings.read_text())["round_seconds"])
            report["wall_seconds_total"] = wall
        else:
            status = fed.run(cfg, timeout=1800)
            report = measure(cfg.results_dir, time.perf_counter() - run_start)
    report["federation_start_seconds"] = started
    # Flower's own accounting: seconds from a message's arrival at a SuperNode to its reply
    # (a train message per round and client, plus fedkit's client-id query in round 1).
    messages = NUM_CLIENTS * (rounds + (0 if plain else 1))
    compute = status.get("compute-time", {})
    report["serverapp_seconds"] = compute.get("serverapp-seconds")
    report["clientapp_seconds_per_message"] = (
        compute["clientapp-seconds"] / messages if "clientapp-seconds" in compute else None)
    report["load_average_1min"] = [load_before, os.getloadavg()[0]]
    return report


def table(report: dict, variants: list[str]) -> str:
    """A markdown table of the variants (for docs/deployment.md)."""
    rows = ["| runtime | seconds per round (median) | round 1 | ClientApp seconds per message "
            "| load average (1 min) before, after |",
            "|---|---|---|---|---|"]
    for name in variants:
        r = report[name]
        per_msg = r.get("clientapp_seconds_per_message")
        rows.append(f"| {LABELS[name]} | {r['seconds_per_round']:.2f} | "
                    f"{r['round_seconds'][0]:.2f} | "
                    f"{'-' if per_msg is None else f'{per_msg:.2f}'} | "
                    f"{r['load_average_1min'][0]:.1f}, {r['load_average_1min'][1]:.1f} |")
    if "fedkit_process" in report and "flower_app" in report:
        rows.append("")
        rows.append(f"fedkit (process isolation) / plain Flower app: "
                    f"{report['ratio_fedkit_process_to_flower_app']:.2f}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {','.join(VARIANTS)}")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the variants this many times, interleaved")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; expected some of {list(VARIANTS)}")
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    from fedkit.bench import environment_info

    runs: dict[str, list[dict]] = {name: [] for name in variants}
    failures: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fedkit-deploy-bench-") as tmp:
        for repeat in range(args.repeats):
            out = Path(tmp) / f"repeat{repeat}"
            for name in variants:
                try:
                    runs[name].append(run_variant(name, args.rounds, out))
                except Exception as exc:  # noqa: BLE001 - recorded, the others still run
                    failures.append({"variant": name, "repeat": repeat, "error": str(exc)})
                    print(f"{name}: failed: {exc}", flush=True)
                    continue
                print(f"{name}: {runs[name][-1]['seconds_per_round']:.3f} s/round "
                      f"{[round(s, 2) for s in runs[name][-1]['round_seconds']]} "
                      f"(load {runs[name][-1]['load_average_1min']})", flush=True)
    variants = [name for name in variants if runs[name]]
    report: dict = {"failures": failures}
    for name in variants:
        best = min(runs[name], key=lambda r: r["seconds_per_round"])
        report[name] = {**best, "label": LABELS[name],
                        "all_seconds_per_round": [r["seconds_per_round"] for r in runs[name]]}
    if "fedkit_process" in report and "flower_app" in report:
        report["ratio_fedkit_process_to_flower_app"] = (
            report["fedkit_process"]["seconds_per_round"]
            / report["flower_app"]["seconds_per_round"])
        if len(runs["fedkit_process"]) == len(runs["flower_app"]):  # no repeat failed
            pairs = zip(runs["fedkit_process"], runs["flower_app"], strict=True)
            report["ratio_per_repeat"] = [a["seconds_per_round"] / b["seconds_per_round"]
                                          for a, b in pairs]
    print(table(report, variants))
    report["setup"] = {
        "workload": "3 clients, all in every round, logistic regression, 10 local steps of "
                    "batch 10, FedAvg, train only",
        "fedkit": "dataset synthetic (natural split), model logreg, eval_every 0",
        "flower_app": "benchmarks/flower_app: torch nn.Linear(60, 10) on synthetic data, "
                      "torch.optim.SGD, Flower's FedAvg (Strategy.start)",
        "rounds": args.rounds, "repeats": args.repeats,
        "deployment": "a fresh LocalFederation per run on 127.0.0.1: 1 SuperLink (TLS), "
                      "3 SuperNodes, flwr run",
        "median_over": "rounds 2 .. R-1 (round 1: client-id query, first FAB install; "
                       "round R: fedkit's final evaluation)",
        "reported": "smallest median over the repeats (all_seconds_per_round: every one); "
                    "ratio_fedkit_process_to_flower_app: of those; ratio_per_repeat: within "
                    "each repeat",
    }
    report["machine"] = environment_info()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
