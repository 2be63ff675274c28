"""The ServerApp: Flower's own FedAvg (``Strategy.start``), train only, every node each round.

The only addition to Flower's quickstart is ``evaluate_fn``, which Flower calls before round 1
and after each round: it records the time, and the run writes the times to ``timings-path``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from flower_app.task import new_model

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    num_clients = int(cfg["num-clients"])
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=num_clients,
                      min_available_nodes=num_clients)
    times: list[float] = []

    def record_time(server_round: int, arrays: ArrayRecord) -> None:
        times.append(time.perf_counter())

    strategy.start(grid=grid, initial_arrays=ArrayRecord(new_model().state_dict()),
                   num_rounds=int(cfg["num-server-rounds"]),
                   train_config=ConfigRecord({"lr": float(cfg["lr"])}), evaluate_fn=record_time)
    if cfg["timings-path"]:
        seconds = [b - a for a, b in zip(times[:-1], times[1:], strict=True)]
        Path(str(cfg["timings-path"])).write_text(json.dumps({"round_seconds": seconds}) + "\n")
