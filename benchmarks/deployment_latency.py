"""Seconds per round of a tiny fedkit job on Flower's Deployment Engine vs the in-process grid.

Workload: Synthetic(1, 1) with its natural split, logistic regression, N = K = 3 clients,
FedAvg, 10 local steps of batch 10 -- the training itself takes milliseconds, so a round's
time is the runtime's own overhead. Variants, one after the other on this machine:

* ``inprocess``: fedkit's in-process grid (sequential engine), no processes, no network;
* ``deploy_tls``: a local federation on 127.0.0.1 (``fedkit.deploy.LocalFederation``):
  SuperLink with TLS, 3 SuperNodes, ``flwr run``; Flower's default polling;
* ``deploy_insecure``: the same without TLS;
* ``deploy_tls_fast_superexec``: TLS with ``FLWR_SUPEREXEC_TASK_POLL_INTERVAL=0.1`` (the
  SuperExec's task polling, 1 s by default, the only polling interval Flower 1.42 exposes).

Per-round seconds come from each run's results.json; the first round (the client-id
directory query, first FAB install) and the last (central evaluation) are left out and the
median of the others is taken. With ``--repeats R`` the variants run R times, interleaved,
and the smallest of a variant's medians is reported (all are kept): other jobs on a shared
machine only ever add time, mostly to the one new ``flwr-clientapp`` process (which
imports torch) per message. The 1-minute load average is recorded around each run.

Usage:
    python benchmarks/deployment_latency.py [--rounds 6] [--variants deploy_tls,inprocess]

Writes benchmarks/results/deployment_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from round_time import measure  # same median-of-steady-rounds rule as the round-time benchmark

RESULT = Path(__file__).parent / "results" / "deployment_latency.json"
VARIANTS = ("inprocess", "deploy_tls", "deploy_insecure", "deploy_tls_fast_superexec")


def setup(rounds: int, out: Path, name: str):
    from fedkit.config import RunConfig

    return RunConfig(name=name, algorithm="fedavg", dataset="synthetic", model="logreg",
                     num_clients=3, clients_per_round=3, rounds=rounds, local_steps=10,
                     batch_size=10, eval_every=0, progress=False,
                     output_dir=str(out / name))


def run_variant(name: str, cfg, workdir: Path) -> dict:
    from fedkit.deploy import LocalFederation
    from fedkit.flower import run_inprocess

    load_before = os.getloadavg()[0]
    if name == "inprocess":
        start = time.perf_counter()
        run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, engine="sequential")
        report = measure(cfg.results_dir, time.perf_counter() - start)
    else:
        saved = os.environ.get("FLWR_SUPEREXEC_TASK_POLL_INTERVAL")
        if name == "deploy_tls_fast_superexec":
            os.environ["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = "0.1"
        try:
            start = time.perf_counter()
            with LocalFederation(workdir / name, num_nodes=cfg.num_clients,
                                 tls=name != "deploy_insecure") as fed:
                started = time.perf_counter() - start
                run_start = time.perf_counter()
                status = fed.run(cfg, timeout=1800)
                report = measure(cfg.results_dir, time.perf_counter() - run_start)
            report["federation_start_seconds"] = started
            # Flower's own accounting: seconds in flwr-clientapp processes, one per message
            # (a client-id query and one train message per round, per client).
            messages = cfg.num_clients * (1 + cfg.rounds)
            compute = status.get("compute-time", {})
            report["serverapp_seconds"] = compute.get("serverapp-seconds")
            report["clientapp_seconds_per_message"] = (
                compute["clientapp-seconds"] / messages if "clientapp-seconds" in compute
                else None)
        finally:
            if saved is None:
                os.environ.pop("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", None)
            else:
                os.environ["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = saved
    report["load_average_1min"] = [load_before, os.getloadavg()[0]]
    return report


LABELS = {"inprocess": "fedkit in-process grid (sequential)",
          "deploy_tls": "deployment, TLS",
          "deploy_insecure": "deployment, insecure",
          "deploy_tls_fast_superexec": "deployment, TLS, FLWR_SUPEREXEC_TASK_POLL_INTERVAL=0.1"}


def table(report: dict, variants: list[str]) -> str:
    """A markdown table of the variants (for docs/deployment.md)."""
    rows = ["| runtime | seconds per round (median) | round 1 (with client-id query) "
            "| ClientApp process seconds per message | load average (1 min) before, after |",
            "|---|---|---|---|---|"]
    for name in variants:
        r = report[name]
        per_msg = r.get("clientapp_seconds_per_message")
        rows.append(f"| {LABELS[name]} | {r['seconds_per_round']:.2f} | "
                    f"{r['round_seconds'][0]:.2f} | "
                    f"{'-' if per_msg is None else f'{per_msg:.1f}'} | "
                    f"{r['load_average_1min'][0]:.1f}, {r['load_average_1min'][1]:.1f} |")
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
                    runs[name].append(run_variant(name, setup(args.rounds, out, name), out))
                except Exception as exc:  # noqa: BLE001 - recorded, the others still run
                    failures.append({"variant": name, "repeat": repeat, "error": str(exc)})
                    print(f"{name}: failed: {exc}", flush=True)
                    continue
                print(f"{name}: {runs[name][-1]['seconds_per_round']:.3f} s/round "
                      f"(load {runs[name][-1]['load_average_1min']})", flush=True)
    variants = [name for name in variants if runs[name]]
    report: dict = {"failures": failures}
    for name in variants:
        best = min(runs[name], key=lambda r: r["seconds_per_round"])
        report[name] = {**best, "all_seconds_per_round": [r["seconds_per_round"]
                                                          for r in runs[name]]}
    print(table(report, variants))
    if "inprocess" in report:
        base = report["inprocess"]["seconds_per_round"]
        for name in variants:
            report[name]["relative_to_inprocess"] = report[name]["seconds_per_round"] / base
    report["setup"] = {
        "dataset": "synthetic (natural split)", "model": "logreg", "algorithm": "fedavg",
        "num_clients": 3, "clients_per_round": 3, "local_steps": 10, "batch_size": 10,
        "rounds": args.rounds, "eval_every": 0, "repeats": args.repeats,
        "deployment": "LocalFederation on 127.0.0.1: 1 SuperLink, 3 SuperNodes, flwr run",
        "median_over": "rounds 2 .. R-1 (round 1: client-id query; round R: evaluation)",
        "reported": "smallest median over the repeats (all_seconds_per_round: every one)",
    }
    report["machine"] = environment_info()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
