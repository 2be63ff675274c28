"""The ServerApp: Flower's ``Strategy.start`` with a fedkit strategy, scenario and secure
aggregation, each chosen by run config (``flwr run . --run-config 'strategy="fedavg"'``)."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from fedkit.algorithms import FedAU, FedAvg, FedLaAvg, FedVARP, Mifa  # fedkit
from fedkit.availability import ClientInfo, build_availability, load_scenario
from fedkit.flower.runtime.availability import AvailabilityGrid
from fedkit.flower.secagg.grid import SecureAggregationGrid
from fedkit.flower.secagg.workflow import SecureAggregationSettings
from quickstart_fedkit.task import NUM_CLASSES, accuracy, client_data, initial_arrays

STRATEGIES = {"fedavg": FedAvg, "fedlaavg": FedLaAvg, "mifa": Mifa, "fedau": FedAU,
              "fedvarp": FedVARP}

app = ServerApp()


def client_info(seed: int, num_clients: int) -> ClientInfo:
    """Sizes and label histograms, for scenarios that condition on them (simulation only)."""
    labels = [client_data(seed, c)[1] for c in range(num_clients)]
    return ClientInfo(label_histograms=np.stack([np.bincount(y, minlength=NUM_CLASSES)
                                                 for y in labels]),
                      sizes=np.array([len(y) for y in labels]))


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    seed, num_clients = int(cfg["seed"]), int(cfg["num-clients"])
    strategy = STRATEGIES[str(cfg["strategy"])](  # fedkit: the strategy
        num_clients=num_clients, clients_per_round=int(cfg["clients-per-round"]),
        fraction_evaluate=0.0, seed=seed)
    scenario = build_availability(load_scenario(str(cfg["scenario"])),  # fedkit: availability
                                  client_info(seed, num_clients), seed=seed)
    grid = AvailabilityGrid(grid, scenario, strategy.directory)
    if cfg["secure-aggregation"]:  # fedkit: secure aggregation
        grid = SecureAggregationGrid(grid, SecureAggregationSettings(clip=float(
            cfg["secagg-clip"])), strategy=strategy)

    def central_evaluation(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        data = [client_data(seed, c) for c in range(num_clients)]
        x, y = np.concatenate([d[0] for d in data]), np.concatenate([d[1] for d in data])
        loss, acc = accuracy(arrays, x, y)
        print(f"round {server_round}: accuracy {acc:.3f}", flush=True)
        return MetricRecord({"loss": loss, "accuracy": acc})

    result = strategy.start(grid=grid, initial_arrays=initial_arrays(seed),
                            num_rounds=int(cfg["num-server-rounds"]),
                            train_config=ConfigRecord({"lr": float(cfg["lr"])}),
                            evaluate_fn=central_evaluation)
    final = result.evaluate_metrics_serverapp[max(result.evaluate_metrics_serverapp)]
    print(f"final accuracy {final['accuracy']:.3f}", flush=True)
