"""Flower's SecAgg+ workflow around Flower's legacy FedAvg (Flower 1.42 offers SecAgg+ only
through the legacy API: ``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))``)."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.common import ndarrays_to_parameters
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from quickstart_secaggplus.task import accuracy, client_data, initial_arrays

app = ServerApp()


@app.main()
def main(grid, context) -> None:
    cfg = context.run_config
    seed, num_clients = int(cfg["seed"]), int(cfg["num-clients"])
    start = initial_arrays(seed)
    data = [client_data(seed, c) for c in range(num_clients)]
    x, y = np.concatenate([d[0] for d in data]), np.concatenate([d[1] for d in data])

    def central_evaluation(server_round, parameters, config):
        w, b = parameters
        loss, acc = accuracy(ArrayRecord({"w": Array(w), "b": Array(b)}), x, y)
        print(f"round {server_round}: accuracy {acc:.3f}", flush=True)
        return loss, {"accuracy": acc}

    k = int(cfg["clients-per-round"])
    strategy = FedAvg(
        fraction_fit=k / num_clients, min_fit_clients=k, min_available_clients=num_clients,
        fraction_evaluate=0.0, evaluate_fn=central_evaluation,
        on_fit_config_fn=lambda r: {"lr": float(cfg["lr"]), "server-round": r},
        initial_parameters=ndarrays_to_parameters([start["w"].numpy(), start["b"].numpy()]))
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=int(cfg["num-server-rounds"])),
                           strategy=strategy)
    secure = SecAggPlusWorkflow(num_shares=int(cfg["num-shares"]),
                                reconstruction_threshold=int(cfg["reconstruction-threshold"]),
                                clipping_range=float(cfg["clipping-range"]))
    DefaultWorkflow(fit_workflow=secure)(grid, legacy)
    print(f"final accuracy {legacy.history.metrics_centralized['accuracy'][-1][1]:.3f}",
          flush=True)
