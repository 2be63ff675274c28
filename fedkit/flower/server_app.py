"""fedkit's ServerApp: FedAvg with seeded sampling and central evaluation.

``main(grid, context)`` validates the run config, builds the initial model (seeded), runs the
round loop (:mod:`fedkit.flower.loop`) and writes ``results.json`` and ``accuracy.png`` into
the run's results folder. The same object runs under Flower's Simulation Engine, Flower's
Deployment Engine and fedkit's in-process grid; only the grid differs.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from fedkit.algorithms import FedAvg
from fedkit.bench import RunLog, plot_accuracy
from fedkit.config import RunConfig
from fedkit.data import partition_report
from fedkit.flower.loop import RoundOutcome, run_rounds
from fedkit.flower.progress import ProgressLine
from fedkit.flower.task import arrays_of, load_data, model_with_arrays, new_model
from fedkit.training import evaluate

__all__ = ["app", "run_server", "make_strategy"]

logger = logging.getLogger(__name__)

app = ServerApp()


def make_strategy(cfg: RunConfig) -> FedAvg:
    """The strategy named by ``cfg.algorithm``."""
    if cfg.algorithm == "fedavg":
        return FedAvg(
            clients_per_round=cfg.clients_per_round,
            num_clients=cfg.num_clients,
            seed=cfg.seed,
            weighting=cfg.weighting,
        )
    raise ValueError(f"config key 'algorithm' = {cfg.algorithm!r} is not implemented")


def _round_record(cfg: RunConfig, outcome: RoundOutcome) -> dict:
    train = outcome.train_metrics
    record = {
        "round": outcome.server_round,
        "seconds": outcome.seconds,
        "lr": cfg.lr_at(outcome.server_round),
        "clients": [int(c) for c in train.get("clients", [])],
        "rejected_clients": [int(c) for c in train.get("rejected-clients", [])],
        "num_replies": int(train.get("num-replies", 0)),
        "num_rejected": int(train.get("num-rejected", 0)),
        "train_loss": train.get("train-loss"),
        "model_updated": outcome.model_updated,
    }
    if outcome.central_metrics is not None:
        record["test_loss"] = outcome.central_metrics["test-loss"]
        record["test_accuracy"] = outcome.central_metrics["test-accuracy"]
    return record


def run_server(grid: Grid, cfg: RunConfig, *, runtime: str = "flower") -> RunLog:
    """Run a whole fedkit experiment on ``grid`` and write its results; return the log."""
    started = time.perf_counter()
    data = load_data(cfg)
    model = new_model(cfg, data)
    initial = arrays_of(model)
    strategy = make_strategy(cfg)
    strategy.summary()
    report = partition_report(data.partition, np.asarray(data.train.y), data.train.num_classes)
    log = RunLog(cfg.to_dict(), runtime=runtime, partition=report.to_dict())
    progress = ProgressLine(cfg.rounds) if cfg.progress else None

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        result = evaluate(model_with_arrays(cfg, data, arrays), data.test)
        return MetricRecord({"test-loss": result.loss, "test-accuracy": result.accuracy})

    last_accuracy: list[float | None] = [None]

    def on_round(outcome: RoundOutcome) -> None:
        record = _round_record(cfg, outcome)
        log.add_round(record)
        if record.get("test_accuracy") is not None:
            last_accuracy[0] = record["test_accuracy"]
        if progress is not None:
            progress.update(outcome.server_round, loss=record["train_loss"],
                            accuracy=last_accuracy[0])

    run_rounds(
        strategy,
        grid,
        initial,
        num_rounds=cfg.rounds,
        timeout=cfg.round_timeout,
        train_config_fn=lambda r: ConfigRecord({"lr": cfg.lr_at(r)}),
        evaluate_fn=evaluate_fn,
        eval_every=cfg.eval_every,
        on_round=on_round,
    )
    path = log.write(cfg.results_dir)
    plot_accuracy(log.to_dict(), cfg.results_dir / "accuracy.png")
    logger.info("run %r finished in %.1f s; results in %s", cfg.name,
                time.perf_counter() - started, path)
    return log


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Flower entry point: the run config comes from ``context.run_config``."""
    runtime = getattr(grid, "runtime_name", "flower")
    run_server(grid, RunConfig.from_mapping(context.run_config), runtime=runtime)
