"""Cost of fedkit's secure aggregation: the protocol in one process, and one secure round in
Flower's Simulation Engine next to Flower's own SecAgg+ on the same workload.

Workload: every client holds 100,000 float32 values (weights 1..100, ``max_weight`` 100).

1. **Protocol** (``fedkit.privacy.secagg.run_secagg``, every message through its wire format):
   n = 10, 50, 100, 200 on the complete graph (SecAgg) and on SecAgg+'s k-regular graph with
   k = 2 * ceil(log2 n), n = 500 with SecAgg+ only; 0% and 10% dropout. The dropped 10% leave
   after sharing their keys, before sending a masked input: the server's worst case, since it
   must reconstruct each one's masking key and re-derive its pairwise masks. Per row: client
   compute per stage (median over clients), server compute per stage, bytes each client sends
   per stage against the float32 plaintext upload (4 m bytes). Every row checks the unmasked
   sum against the plaintext sum (quantisation error only) and raises otherwise. Medians over
   the clients of a repetition, then the median over the repetitions.
   **Committed graph** (``SecAggConfig(committed_graph=True)``, docs/secagg.md): n = 100 and
   500, SecAgg+ with the same k, no dropout, the option off and on in alternation within each
   of 3 repetitions on the same inputs: bytes each client sends and receives, client and
   server compute, and what the option adds (key ``committed_graph`` of the result file).
   **Consistency round** (``SecAggConfig(consistency_check=True)``): the same for n = 100 and
   500 on the complete graph and SecAgg+ (n = 500 complete: one repetition); key
   ``consistency_check``.
2. **Flower's Simulation Engine** (``flwr.simulation.run_simulation``, Ray, 1 CPU per actor),
   n = 50 virtual SuperNodes returning a fixed vector: (a) Flower's ``SecAggPlusWorkflow``
   (legacy API: ``DefaultWorkflow`` + ``LegacyContext`` + legacy ``FedAvg``; client
   ``secaggplus_mod`` around a ``NumPyClient``) with ``num_shares`` 11 (10 neighbours) and
   ``reconstruction_threshold`` 6, and (b) fedkit's ``SecureAggregation`` with 10 neighbours
   and t = 6 around a Message-API ClientApp wrapped in ``secagg_mod``. Secure and plain rounds
   alternate; only the fit step (Flower's fit workflow, fedkit's ``run`` call or plain
   ``send_and_receive``) is timed; the first round of each kind is a warm-up. Both runs lower
   the in-memory grid's poll interval from 0.1 s to 0.01 s. Each variant runs in a child
   process (its own Ray instance), and each checks its aggregate against the exact mean.

Usage:
    python benchmarks/secagg.py [--quick] [--skip-flower] [--output PATH]
    python benchmarks/secagg.py --skip-options  # defaults only; keep the options' sections
    python benchmarks/secagg.py --table-only   # README table from the existing result file
    python benchmarks/secagg.py --committed-graph-only  # only that section, into the file
    python benchmarks/secagg.py --consistency-check-only  # likewise

Writes benchmarks/results/secagg.json and regenerates the README table from it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULT = Path(__file__).parent / "results" / "secagg.json"
README = Path(__file__).parents[1] / "README.md"
M = 100_000
MAX_WEIGHT = 100.0
WEIGHT = 100  # every Flower-engine client's num-examples
FLOWER_NUM_SHARES, FLOWER_THRESHOLD = 11, 6  # 10 neighbours + self; fedkit: k = 10, t = 6
POLL_INTERVAL = 0.01
TARGETS = {"client_ms": ("<", 20.0), "server_s": ("<", 0.5),
           "bytes_ratio_n100": ("<=", 1.2), "speedup_vs_flower_n50": (">=", 5.0)}
_COMPARE = {"<": float.__lt__, "<=": float.__le__, ">=": float.__ge__}
STAGES = ("advertise_keys", "share_keys", "masked_input", "unmask")


# -- 1. protocol, in process -------------------------------------------------------------------
def _config(n: int, graph: str):
    from fedkit.privacy.secagg import SecAggConfig

    k = n - 1 if graph == "complete" else 2 * math.ceil(math.log2(n))
    return SecAggConfig.secagg_plus(num_clients=n, vector_length=M, num_neighbours=k,
                                    max_weight=MAX_WEIGHT)


def _check_sum(total, report, vectors, weights, config, label: str) -> float:
    """Raise unless the unmasked sum is the survivors' plaintext sum up to quantisation."""
    survivors = report.result.survivors
    plain = sum(weights[c] * np.clip(vectors[c].astype(np.float64), -config.clip, config.clip)
                for c in survivors)
    # stochastic rounding: < 1 step of max_weight / scale per client and element
    tolerance = len(survivors) * config.max_weight / config.resolved_scale
    error = float(np.max(np.abs(total - plain)))
    weight_error = abs(report.result.total_weight - sum(weights[c] for c in survivors))
    if not (error <= tolerance and weight_error <= tolerance) or report.rejected:
        raise RuntimeError(f"{label}: unmasked sum is off by {error:.3g} (weight by "
                           f"{weight_error:.3g}), tolerance {tolerance:.3g}; rejected: "
                           f"{report.rejected}")
    return error


def _median_of(values) -> float:
    return float(statistics.median(values))


def _inputs(n: int, dropout: float):
    rng = np.random.default_rng(n)
    vectors = {cid: rng.uniform(-1.0, 1.0, M).astype(np.float32) for cid in range(n)}
    weights = {cid: float(rng.integers(1, 101)) for cid in range(n)}
    dropped = set(rng.choice(n, size=round(dropout * n), replace=False).tolist())
    return vectors, weights, dropped


def _protocol_run(config, vectors, weights, dropped: set, rep: int, label: str) -> dict:
    """One round of ``run_secagg``: per-stage medians over the clients, checked sum."""
    from fedkit.privacy.secagg import Stage, run_secagg

    total, report = run_secagg(vectors, weights, config, {Stage.MASKED_INPUT: dropped},
                               rng=np.random.default_rng(rep))
    label = f"{label} rep {rep}"
    error = _check_sum(total, report, vectors, weights, config, label)
    if set(report.result.dropped) != dropped:
        raise RuntimeError(f"{label}: dropped {report.result.dropped}, expected {dropped}")
    survivors = report.result.survivors
    per_stage = report.client_stage_seconds
    stages = config.stages
    return {
        "client_ms": {s.value: 1e3 * _median_of(per_stage[c][s] for c in per_stage
                                                if s in per_stage[c]) for s in stages},
        "client_total_ms": 1e3 * _median_of(report.client_seconds[c] for c in survivors),
        "server_s": {s.value: report.server_seconds[s] for s in stages},
        "bytes_up": {s.value: _median_of(report.bytes_up[c][s] for c in survivors)
                     for s in stages},
        "bytes_down": {s.value: _median_of(report.bytes_down[c].get(s, 0) for c in survivors)
                       for s in stages},
        "bytes_up_total": _median_of(sum(report.bytes_up[c].values()) for c in survivors),
        "bytes_down_total": _median_of(sum(report.bytes_down[c].values())
                                       for c in survivors),
        "max_abs_error": error,
    }


def _summary(runs: list[dict], stages) -> dict:
    """Medians over the repetitions of :func:`_protocol_run` results."""
    out: dict = {}
    for key in ("client_ms", "server_s", "bytes_up"):
        out[key] = {s: _median_of(r[key][s] for r in runs) for s in stages}
    for key in ("client_total_ms", "bytes_up_total", "bytes_down_total"):
        out[key] = _median_of(r[key] for r in runs)
    out["server_total_s"] = _median_of(sum(r["server_s"].values()) for r in runs)
    out["bytes_ratio"] = out["bytes_up_total"] / (4 * M)
    out["max_abs_error"] = max(r["max_abs_error"] for r in runs)
    return out


def protocol_row(n: int, graph: str, dropout: float, reps: int) -> dict:
    from fedkit.privacy.graph import neighbourhood_size

    config = _config(n, graph)
    vectors, weights, dropped = _inputs(n, dropout)
    runs = [_protocol_run(config, vectors, weights, dropped, rep,
                          f"n={n} {graph} dropout={dropout:.0%}") for rep in range(reps)]
    row = {"n": n, "graph": graph,
           "num_neighbours": neighbourhood_size(config.num_clients, config.num_neighbours),
           "threshold": config.threshold, "dropout": dropout, "num_dropped": len(dropped),
           "repetitions": reps}
    row.update(_summary(runs, STAGES))
    return row


# the options' sections: per option, its extra stage, the rows it measures (full, --quick)
# and how it is set up; n = 500 on the complete graph gets one repetition (it alone takes
# minutes), every other row three
OPTIONS = {
    "committed_graph": {
        "stage": "reveal_nonce",
        "cases": ((100, "secagg+"), (500, "secagg+")),
        "quick_cases": ((10, "secagg+"), (50, "secagg+")),
        "graphs": "SecAgg+ (k = 2 ceil(log2 n), t = floor((k + 1) / 2) + 1)"},
    "consistency_check": {
        "stage": "consistency_check",
        "cases": ((100, "complete"), (100, "secagg+"), (500, "secagg+"), (500, "complete")),
        "quick_cases": ((10, "complete"), (50, "secagg+")),
        "graphs": "complete (SecAgg, k = n - 1) and SecAgg+ (k = 2 ceil(log2 n)), t = "
                  "floor((k + 1) / 2) + 1; fresh Ed25519 keys per repetition (key generation "
                  "not timed)"},
}


def _option_reps(n: int, graph: str, quick: bool) -> int:
    return 1 if quick or (n >= 500 and graph == "complete") else 3


def option_rows(option: str, quick: bool) -> list[dict]:
    """The cost of a protocol option (one more stage): no dropout, the option off and on in
    alternation within each repetition (same inputs)."""
    import dataclasses

    from fedkit.privacy.graph import neighbourhood_size

    spec = OPTIONS[option]
    rows = []
    for n, graph in spec["quick_cases" if quick else "cases"]:
        reps = _option_reps(n, graph, quick)
        start = time.perf_counter()
        configs = {key: dataclasses.replace(_config(n, graph), **{option: on})
                   for key, on in (("off", False), ("on", True))}
        vectors, weights, dropped = _inputs(n, 0.0)
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        for rep in range(reps):
            for key, config in configs.items():
                runs[key].append(_protocol_run(config, vectors, weights, dropped, rep,
                                               f"n={n} {graph} {option}={key}"))
        config = configs["on"]
        row = {"n": n, "graph": graph,
               "num_neighbours": neighbourhood_size(config.num_clients, config.num_neighbours),
               "threshold": config.threshold, "dropout": 0.0, "repetitions": reps}
        for key, config in configs.items():
            row[key] = _summary(runs[key], [s.value for s in config.stages])
            row[key]["bytes_down"] = {s.value: _median_of(r["bytes_down"][s.value]
                                                          for r in runs[key])
                                      for s in config.stages}
        off, on = row["off"], row["on"]
        row["added"] = {
            "bytes_up": on["bytes_up_total"] - off["bytes_up_total"],
            "bytes_down": on["bytes_down_total"] - off["bytes_down_total"],
            "client_ms": on["client_total_ms"] - off["client_total_ms"],
            "server_s": on["server_total_s"] - off["server_total_s"],
            f"client_ms_{spec['stage']}": on["client_ms"][spec["stage"]],
            f"server_s_{spec['stage']}": on["server_s"][spec["stage"]],
        }
        rows.append(row)
        a = row["added"]
        print(f"n={n:4d} {graph:8s} k={row['num_neighbours']:3d}: {option} adds "
              f"{a['bytes_up']:.0f} B up, {a['bytes_down']:.0f} B down per client, client "
              f"{off['client_total_ms']:.2f} -> {on['client_total_ms']:.2f} ms, server "
              f"{off['server_total_s']:.3f} -> {on['server_total_s']:.3f} s "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return rows


def option_section(option: str, quick: bool) -> dict:
    """An option's section of the result file (key ``option``), with its own machine and
    load."""
    from importlib import metadata

    from fedkit.bench import environment_info

    machine = environment_info()
    machine["packages"]["cryptography"] = metadata.version("cryptography")
    load_start, start = os.getloadavg(), time.perf_counter()
    rows = option_rows(option, quick)
    return {"machine": machine, "quick": quick, "vector_length": M,
            "setup": f"{OPTIONS[option]['graphs']}, no dropout; {option} off and on in "
                     "alternation in each repetition, same inputs; per client: bytes sent / "
                     "received (median over clients), compute (median over clients); server "
                     "compute per round; medians over the repetitions (3; 1 for n = 500 on "
                     "the complete graph); 'added' = on - off",
            "load_average_at_start": load_start, "load_average_at_end": os.getloadavg(),
            "wall_seconds": time.perf_counter() - start, "rows": rows}


def protocol_rows(quick: bool) -> list[dict]:
    sizes = (10, 50) if quick else (10, 50, 100, 200, 500)
    protocol_row(10, "complete", 0.1, 1)  # warm-up: imports, first allocations
    rows = []
    for dropout in (0.0, 0.1):
        for n in sizes:
            for graph in ("complete", "secagg+"):
                if n >= 500 and graph == "complete":
                    continue
                reps = 1 if quick or n >= 200 else 3
                start = time.perf_counter()
                row = protocol_row(n, graph, dropout, reps)
                rows.append(row)
                print(f"n={n:4d} {graph:8s} k={row['num_neighbours']:3d} t={row['threshold']:3d}"
                      f" drop={dropout:.0%}: client {row['client_total_ms']:7.1f} ms, server "
                      f"{row['server_total_s']:6.3f} s, bytes x{row['bytes_ratio']:.3f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    return rows


# -- 2. Flower's Simulation Engine (each variant in a child process) ---------------------------
def fixed_vector(pid: int) -> np.ndarray:
    """The update of the SuperNode with partition id ``pid`` (its weight is WEIGHT)."""
    return np.random.default_rng(1000 + pid).uniform(-0.5, 0.5, M).astype(np.float32)


class _Rounds:
    """Per-kind seconds of the timed fit steps and the aggregate's worst error."""

    def __init__(self, num_nodes: int) -> None:
        self.expected = np.mean([fixed_vector(pid) for pid in range(num_nodes)], axis=0)
        self.seconds: dict[str, list[float]] = {"plain": [], "secure": []}
        self.stage_seconds: dict[str, list[float]] = {}
        self.max_abs_error = 0.0

    @staticmethod
    def kind(server_round: int) -> str:
        """Odd rounds plain, even rounds secure: a plain and a secure warm-up come first."""
        return "plain" if server_round % 2 else "secure"

    def timed(self, server_round: int, fit_fn, mean_fn) -> None:
        """Time ``fit_fn()``; check ``mean_fn(its result)`` against the exact mean."""
        kind = self.kind(server_round)
        start = time.perf_counter()
        result = fit_fn()
        self.seconds[kind].append(time.perf_counter() - start)
        mean = np.asarray(mean_fn(result), np.float64)
        error = float(np.max(np.abs(mean - self.expected)))
        if not error <= 1e-5:
            raise RuntimeError(f"{kind} round {server_round}: aggregate is off the exact mean "
                               f"by {error:.3g}")
        self.max_abs_error = max(self.max_abs_error, error)

    def stage_timer(self, name: str, fn):
        times = self.stage_seconds.setdefault(name, [])

        def timed(*args):
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                times.append(time.perf_counter() - start)

        return timed


def flower_apps(rounds: _Rounds, num_nodes: int, num_rounds: int):
    """Flower's SecAgg+ (legacy API) ServerApp and ClientApp."""
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
    from flwr.compat.common.recorddict_compat import arrayrecord_to_parameters
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
    from flwr.server.workflow.default_workflows import default_fit_workflow

    class Fixed(NumPyClient):
        def __init__(self, pid: int) -> None:
            self.pid = pid

        def fit(self, parameters, config):
            return [fixed_vector(self.pid)], WEIGHT, {}

    def secure_only(msg, context, call_next):
        # secaggplus_mod claims every train message; the plain rounds bypass it
        if RECORD_KEY_CONFIGS in msg.content.config_records:
            return secaggplus_mod(msg, context, call_next)
        return call_next(msg, context)

    client = ClientApp(client_fn=lambda ctx: Fixed(ctx.node_config["partition-id"]).to_client(),
                       mods=[secure_only])
    server = ServerApp()

    @server.main()
    def main(grid, context) -> None:
        grid.pull_interval = POLL_INTERVAL
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=num_nodes,
                          min_available_clients=num_nodes,
                          initial_parameters=ndarrays_to_parameters([np.zeros(M, np.float32)]))
        legacy = LegacyContext(context, config=ServerConfig(num_rounds=num_rounds),
                               strategy=strategy)
        secure = SecAggPlusWorkflow(FLOWER_NUM_SHARES, FLOWER_THRESHOLD, max_weight=WEIGHT,
                                    clipping_range=1.0)
        for name in ("setup", "share_keys", "collect_masked_vectors", "unmask"):
            stage = f"{name}_stage"
            setattr(secure, stage, rounds.stage_timer(name, getattr(secure, stage)))

        def fit(grid_, ctx) -> None:
            server_round = int(ctx.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND])
            step = secure if rounds.kind(server_round) == "secure" else default_fit_workflow
            rounds.timed(server_round, lambda: step(grid_, ctx), lambda _: parameters_to_ndarrays(
                arrayrecord_to_parameters(ctx.state.array_records[MAIN_PARAMS_RECORD],
                                          keep_input=True))[0])

        DefaultWorkflow(fit_workflow=fit)(grid, legacy)

    protocol = (f"SecAggPlusWorkflow(num_shares={FLOWER_NUM_SHARES}, reconstruction_threshold="
                f"{FLOWER_THRESHOLD}, max_weight={WEIGHT}, clipping_range=1.0) as fit_workflow "
                "of DefaultWorkflow, legacy FedAvg; client secaggplus_mod + NumPyClient")
    return server, client, protocol


def fedkit_apps(rounds: _Rounds, num_nodes: int, num_rounds: int):
    """fedkit's SecureAggregation ServerApp and a Message-API ClientApp under ``secagg_mod``."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    from fedkit.algorithms.secure_sum import VectorSpec
    from fedkit.flower.secagg.mod import secagg_mod
    from fedkit.flower.secagg.workflow import SecureAggregation, SecureAggregationSettings

    client = ClientApp()

    @client.train(mods=[secagg_mod])
    def train(msg: Message, context) -> Message:
        vector = fixed_vector(context.node_config["partition-id"])
        return Message(RecordDict({"arrays": ArrayRecord({"w": Array(vector)}),
                                   "metrics": MetricRecord({"num-examples": WEIGHT})}),
                       reply_to=msg)

    settings = SecureAggregationSettings(num_neighbours=FLOWER_NUM_SHARES - 1, threshold=0.5,
                                         clip=1.0, max_weight=WEIGHT)
    server = ServerApp()

    @server.main()
    def main(grid, context) -> None:
        grid.pull_interval = POLL_INTERVAL
        while len(nodes := sorted(grid.get_node_ids())) < num_nodes:
            time.sleep(0.1)
        model = ArrayRecord({"w": Array(np.zeros(M, np.float32))})

        def messages(server_round: int) -> list:
            content = RecordDict({"arrays": model,
                                  "config": ConfigRecord({"server-round": server_round})})
            return [(Message(content, node, "train", group_id=str(server_round)), cid)
                    for cid, node in enumerate(nodes)]

        def secure(server_round: int):
            return SecureAggregation(settings).run(grid, messages(server_round),
                                                   spec=VectorSpec(offset=False),
                                                   vector_length=M, server_round=server_round)

        def secure_mean(out) -> np.ndarray:
            if out.aborted or len(out.contributors) != num_nodes:
                raise RuntimeError(f"fedkit secure round: {out.aborted or out.failed}")
            for stage, seconds in out.stage_seconds.items():
                rounds.stage_seconds.setdefault(stage, []).append(seconds)
            return out.weighted_sum / out.total_weight

        def plain(server_round: int) -> np.ndarray:
            replies = list(grid.send_and_receive([m for m, _ in messages(server_round)]))
            weights = [float(m.content["metrics"]["num-examples"]) for m in replies]
            vectors = [m.content["arrays"]["w"].numpy() for m in replies]
            return np.average(vectors, axis=0, weights=weights)

        for r in range(1, num_rounds + 1):
            if rounds.kind(r) == "secure":
                rounds.timed(r, lambda r=r: secure(r), secure_mean)
            else:
                rounds.timed(r, lambda r=r: plain(r), lambda mean: mean)

    protocol = (f"SecureAggregation(num_neighbours={settings.num_neighbours}, threshold=0.5 "
                "-> t=6, clip=1.0, bits=32); client secagg_mod around a Message-API ClientApp")
    return server, client, protocol


def engine_child(variant: str, num_nodes: int, timed_rounds: int, output: Path) -> None:
    """Run one variant under ``run_simulation`` and write its timings to ``output``."""
    from flwr.simulation import run_simulation

    num_rounds = 2 * timed_rounds + 2
    rounds = _Rounds(num_nodes)
    apps = flower_apps if variant == "flower" else fedkit_apps
    server, client, protocol = apps(rounds, num_nodes, num_rounds)
    start = time.perf_counter()
    run_simulation(server_app=server, client_app=client, num_supernodes=num_nodes,
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": os.cpu_count()}})
    wall = time.perf_counter() - start
    if len(rounds.seconds["secure"]) != num_rounds // 2:
        raise RuntimeError(f"{variant}: {len(rounds.seconds['secure'])} secure rounds of "
                           f"{num_rounds // 2} finished (see the log above)")
    output.write_text(json.dumps({
        "protocol": protocol, "num_nodes": num_nodes, "wall_seconds": wall,
        "secure_rounds_s": rounds.seconds["secure"], "plain_rounds_s": rounds.seconds["plain"],
        "stage_seconds": rounds.stage_seconds, "max_abs_error": rounds.max_abs_error,
    }))


def engine_run(variant: str, num_nodes: int, timed_rounds: int) -> dict:
    """:func:`engine_child` in a fresh interpreter with its own Flower and Ray folders."""
    from fedkit.flower.runtime.flwr_cli import flower_env

    with tempfile.TemporaryDirectory(prefix="fk-sa-") as tmp:
        env = flower_env()
        env.update(FLWR_HOME=f"{tmp}/flwr", RAY_TMPDIR=f"{tmp}/ray")
        out = Path(tmp) / "out.json"
        subprocess.run([sys.executable, __file__, "--engine-child", variant, "--nodes",
                        str(num_nodes), "--rounds", str(timed_rounds), "--output", str(out)],
                       env=env, check=True)
        raw = json.loads(out.read_text())
    secure, plain = raw.pop("secure_rounds_s"), raw.pop("plain_rounds_s")
    stages = raw.pop("stage_seconds")
    return {**raw, "secure_round_s": statistics.median(secure[1:]),
            "plain_round_s": statistics.median(plain[1:]),
            "secure_rounds_s": secure, "plain_rounds_s": plain,
            "stage_s": {name: statistics.median(v[1:]) for name, v in stages.items()}}


# -- 3. result file and README table -----------------------------------------------------------
def _row(rows: list[dict], n: int, graph: str, dropout: float) -> dict | None:
    return next((r for r in rows if (r["n"], r["graph"], r["dropout"]) == (n, graph, dropout)),
                None)


def headline(report: dict) -> None:
    """Add the top-level figures and the targets to ``report``."""
    rows = report["protocol"]
    complete, plus = _row(rows, 100, "complete", 0.1), _row(rows, 100, "secagg+", 0.1)
    targets = {}
    if complete and plus:
        fits = all(_met(name, complete[key]) for name, key in (
            ("client_ms", "client_total_ms"), ("server_s", "server_total_s"),
            ("bytes_ratio_n100", "bytes_ratio")))
        chosen = complete if fits else plus
        report["n100_dropout10"] = {
            "graph": chosen["graph"], "num_neighbours": chosen["num_neighbours"],
            "threshold": chosen["threshold"],
            "note": ("complete graph (SecAgg) meets the targets" if fits else
                     f"the complete graph misses a target (client "
                     f"{complete['client_total_ms']:.1f} ms, server "
                     f"{complete['server_total_s']:.3f} s, bytes x{complete['bytes_ratio']:.3f}); "
                     f"figures of SecAgg+ with k = {plus['num_neighbours']}"),
            **{graph: {"client_ms": r["client_total_ms"], "server_s": r["server_total_s"],
                       "bytes_ratio": r["bytes_ratio"]}
               for graph, r in (("complete", complete), ("secagg+", plus))},
        }
        report["client_ms"] = chosen["client_total_ms"]
        report["server_s"] = chosen["server_total_s"]
        report["bytes_ratio_n100"] = chosen["bytes_ratio"]
        targets.update(client_ms=report["client_ms"], server_s=report["server_s"],
                       bytes_ratio_n100=report["bytes_ratio_n100"])
    engine = report.get("flower_engine", {})
    if engine.get("num_nodes") == 50:
        report["flower_secaggplus_n50_seconds"] = engine["flower"]["secure_round_s"]
        report["fedkit_n50_seconds"] = engine["fedkit"]["secure_round_s"]
        report["speedup_vs_flower_n50"] = (report["flower_secaggplus_n50_seconds"]
                                           / report["fedkit_n50_seconds"])
        targets["speedup_vs_flower_n50"] = report["speedup_vs_flower_n50"]
    report["targets"] = {
        name: {"target": f"{TARGETS[name][0]} {TARGETS[name][1]:g}", "measured": value,
               "met": _met(name, value)}
        for name, value in targets.items()}


def _met(name: str, value: float) -> bool:
    operator, bound = TARGETS[name]
    return _COMPARE[operator](float(value), bound)


def _yes(met: bool) -> str:
    return "**met**" if met else "**missed**"


def option_table(report: dict) -> list[str]:
    """README lines: what each active-server option (off by default) adds per round, from
    its own section of the result file."""
    rows = [(option, r) for option in OPTIONS for r in report.get(option, {}).get("rows", ())]
    if not rows:
        return []
    lines = ["", "Active-server options, off by default (`docs/secagg.md`, \"What holds, per "
             "option\"), each measured in its own run (`--<option>-only`, no dropout): what "
             "the option adds per round:", "",
             "| option | n | graph | k | t | bytes sent per client | bytes received per client "
             "| client ms | server s |", "|---|---|---|---|---|---|---|---|---|"]
    for option, r in rows:
        off, on = r["off"], r["on"]
        lines.append(
            f"| `{option}` | {r['n']} | {r['graph']} | {r['num_neighbours']} | {r['threshold']} "
            f"| +{r['added']['bytes_up']:.0f} B | +{r['added']['bytes_down'] / 1e3:.1f} kB "
            f"| {off['client_total_ms']:.1f} -> {on['client_total_ms']:.1f} "
            f"| {off['server_total_s']:.3f} -> {on['server_total_s']:.3f} |")
    return lines


def readme_table(report: dict) -> str:
    """The README section, generated from the result file only."""
    machine, setup, t = report["machine"], report["setup"], report["targets"]
    lines = ["| target | measured | met |", "|---|---|---|"] if t else []
    n100 = report.get("n100_dropout10", {})
    graph = (f"{n100['graph']}, k = {n100['num_neighbours']}, t = {n100['threshold']}"
             if n100 else "")
    labels = {"client_ms": f"client compute < 20 ms, n = 100, 10% dropout ({graph})",
              "server_s": f"server compute < 0.5 s, n = 100, 10% dropout ({graph})",
              "bytes_ratio_n100": f"client bytes sent <= 1.2x float32 plaintext, n = 100 "
                                  f"({graph})",
              "speedup_vs_flower_n50": ">= 5x faster than Flower's SecAgg+ end to end, n = 50"}
    units = {"client_ms": "{:.1f} ms", "server_s": "{:.3f} s", "bytes_ratio_n100": "{:.3f}x",
             "speedup_vs_flower_n50": "{:.1f}x"}
    for name, entry in t.items():
        lines.append(f"| {labels[name]} | {units[name].format(entry['measured'])} "
                     f"| {_yes(entry['met'])} |")
    if n100:
        lines += ["", f"n = 100, 10% dropout: {n100['note']}."]
    lines += ["", "Protocol in one process (`run_secagg`), per round:", "",
              "| n | graph | k | t | dropout | client ms: advertise / share / mask / unmask "
              "= total | server s: advertise / share / mask / unmask = total | bytes sent per "
              "client (x plaintext) |", "|---|---|---|---|---|---|---|---|"]
    for r in report["protocol"]:
        c, s = r["client_ms"], r["server_s"]
        lines.append(
            f"| {r['n']} | {r['graph']} | {r['num_neighbours']} | {r['threshold']} "
            f"| {r['dropout']:.0%} | {' / '.join(f'{c[x]:.1f}' for x in STAGES)} = "
            f"{r['client_total_ms']:.1f} | {' / '.join(f'{s[x]:.3f}' for x in STAGES)} = "
            f"{r['server_total_s']:.3f} | {r['bytes_up_total'] / 1e3:.0f} kB "
            f"({r['bytes_ratio']:.3f}x) |")
    engine = report.get("flower_engine")
    if engine:
        lines += ["", f"Flower Simulation Engine, n = {engine['num_nodes']} SuperNodes, "
                  "one fit step (median of the timed rounds):", "",
                  "| workflow | plain round (s) | secure round (s) | secure / plain | stages (s): "
                  "keys / share keys / masked input / unmask |",
                  "|---|---|---|---|---|"]
        for key, label in (
            ("flower", f"Flower SecAggPlusWorkflow (num_shares {FLOWER_NUM_SHARES}, "
                       f"t {FLOWER_THRESHOLD})"),
            ("fedkit", f"fedkit SecureAggregation (k {FLOWER_NUM_SHARES - 1}, "
                       f"t {FLOWER_THRESHOLD})")):
            e = engine[key]
            stages = " / ".join(f"{v:.2f}" for v in e["stage_s"].values())
            lines.append(f"| {label} | {e['plain_round_s']:.3f} | {e['secure_round_s']:.3f} "
                         f"| {e['secure_round_s'] / e['plain_round_s']:.1f}x | {stages} |")
    lines += option_table(report)
    load = (f"; 1-minute load average {report['load_average_at_start'][0]:.1f} at the start, "
            f"{report['load_average_at_end'][0]:.1f} at the end" if "load_average_at_end" in
            report else "")
    lines += ["", f"Measured on {machine['cpu']} ({machine['cpu_count']} cores, shared with other "
              f"work, so timings are noisy{load}), Python {machine['python']}, flwr "
              f"{machine['packages']['flwr']}, cryptography {machine['packages']['cryptography']}, "
              f"numpy {machine['packages']['numpy']}; m = {setup['vector_length']:,} float32 per "
              f"client; client ms: {setup['client_ms']}, median over clients; "
              f"{setup['dropout']}; {setup['median']}; `benchmarks/results/secagg.json` "
              "(`python benchmarks/secagg.py`)."]
    return "\n".join(lines)


def update_readme(report: dict) -> None:
    """Regenerate the README section from ``report`` alone."""
    from fedkit.bench.readme import replace_section

    replace_section(README, "secagg-table", readme_table(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: n = 10, 50, one repetition, 10 SuperNodes, one round")
    parser.add_argument("--skip-flower", action="store_true",
                        help="protocol only, no Simulation Engine runs")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"result file (default {RESULT}; --quick: a temporary file)")
    parser.add_argument("--skip-options", action="store_true",
                        help="measure the defaults only; keep the options' sections of the "
                             "existing result file (they have their own --<option>-only runs)")
    parser.add_argument("--table-only", action="store_true",
                        help="only regenerate the README table from the result file")
    for option in OPTIONS:
        parser.add_argument(f"--{option.replace('_', '-')}-only", action="store_true",
                            help=f"only measure the {option} option and write its section "
                                 f"(key {option}) into the existing result file")
    parser.add_argument("--engine-child", choices=("flower", "fedkit"), help=argparse.SUPPRESS)
    parser.add_argument("--nodes", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_child:
        engine_child(args.engine_child, args.nodes, args.rounds, args.output)
        return
    if args.table_only:
        update_readme(json.loads((args.output or RESULT).read_text()))
        return
    for option in OPTIONS:
        if getattr(args, f"{option}_only"):
            output = args.output or RESULT
            report = json.loads(output.read_text()) if output.exists() else {}
            report[option] = option_section(option, args.quick)
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(report, indent=1) + "\n")
            print(f"wrote the {option} section of {output}")
            return
    from importlib import metadata

    from fedkit.bench import environment_info

    output = args.output or (Path(tempfile.gettempdir()) / "fedkit-secagg-quick.json"
                             if args.quick else RESULT)
    machine = environment_info()
    machine["packages"]["cryptography"] = metadata.version("cryptography")
    report: dict = {"machine": machine, "setup": {
        "vector_length": M, "max_weight": MAX_WEIGHT,
        "dropout": "dropped clients leave after share keys, before the masked input "
                   "(the server's worst case)",
        "median": "protocol: median over clients, then over 3 repetitions (1 for n >= 200); "
                  "engine: median over the timed rounds after one warm-up",
        "protocol_graphs": "complete = SecAgg (k = n - 1); secagg+ = k-regular, "
                           "k = 2 ceil(log2 n); t = floor((k + 1) / 2) + 1",
        "client_ms": "compute of one client (decode the server's message, the stage, encode "
                     "the reply)",
        "server_s": "server compute (decode, validate, route/serialise, unmask)",
        "bytes": "serialised protocol messages a client sends; plaintext = 4 m bytes",
        "engine": f"flwr.simulation.run_simulation, Ray, 1 CPU per ClientApp actor, "
                  f"{os.cpu_count()} CPUs; InMemoryGrid.pull_interval {POLL_INTERVAL} s; "
                  "secure and plain rounds alternate, only the fit step timed",
        "quick": args.quick}}
    report["load_average_at_start"] = os.getloadavg()
    start = time.perf_counter()
    report["protocol"] = protocol_rows(args.quick)
    report["protocol_wall_seconds"] = time.perf_counter() - start
    previous = json.loads(output.read_text()) if output.exists() else {}
    for option in OPTIONS:
        if args.skip_options and option in previous:
            report[option] = previous[option]
        else:
            report[option] = option_section(option, args.quick)
    if not args.skip_flower:
        nodes, rounds = (10, 1) if args.quick else (50, 5)
        report["flower_engine"] = {"num_nodes": nodes, "timed_rounds": rounds}
        for variant in ("flower", "fedkit"):
            result = engine_run(variant, nodes, rounds)
            report["flower_engine"][variant] = result
            print(f"{variant} in Flower's engine, n={nodes}: secure "
                  f"{result['secure_round_s']:.3f} s, plain {result['plain_round_s']:.3f} s, "
                  f"stages {result['stage_s']}", flush=True)
    report["load_average_at_end"] = os.getloadavg()
    headline(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["targets"], indent=1))
    print(f"wrote {output}")
    if output == RESULT:
        update_readme(report)


if __name__ == "__main__":
    main()
