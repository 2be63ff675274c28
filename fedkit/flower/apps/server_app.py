"""fedkit's ServerApp: any fedkit algorithm, availability scenarios, checkpoints, results.

``main(grid, context)`` validates the run config, builds the initial model (seeded) and the
strategy, wraps the grid with the availability scenario (simulation: only online clients are
visible) and, on the Deployment Engine, with reply polling every 0.2 s
(:mod:`fedkit.flower.runtime.polling`; Flower's grid polls every 3 s), runs the round loop
(:mod:`fedkit.flower.apps.loop`), checkpoints every ``checkpoint_every`` rounds, and writes
``results.json`` (with the scenario card), ``accuracy.png`` and ``scenario.png`` into the
run's results folder. With ``task = "submodel"`` it runs
:func:`fedkit.flower.submodel.server.run_submodel_server` instead.
The same object runs under Flower's Simulation Engine, Flower's Deployment Engine and
fedkit's in-process grid.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.superlink.grid import HttpGrid

from fedkit.algorithms import FedAU, FedAvg, FedkitStrategy, FedLaAvg, FedVARP, Mifa
from fedkit.algorithms.directory import ClientDirectory
from fedkit.availability import availability_schedule, plot_scenario_card, scenario_card
from fedkit.bench import RunLog, plot_accuracy
from fedkit.config import RunConfig
from fedkit.flower.apps.checkpoint import load_checkpoint, save_checkpoint
from fedkit.flower.apps.loop import RoundOutcome, run_rounds
from fedkit.flower.apps.progress import ProgressLine
from fedkit.flower.apps.task import (
    arrays_of,
    availability_model,
    client_info,
    load_data,
    model_with_arrays,
    new_model,
)
from fedkit.flower.runtime.availability import AvailabilityGrid
from fedkit.flower.runtime.polling import ReplyPollingGrid
from fedkit.flower.secagg.grid import SecureAggregationGrid
from fedkit.flower.secagg.workflow import SecureAggregationSettings
from fedkit.training import evaluate

__all__ = ["app", "run_server", "make_strategy"]

logger = logging.getLogger(__name__)

app = ServerApp()


def make_strategy(cfg: RunConfig, directory: ClientDirectory | None = None) -> FedkitStrategy:
    """The strategy named by ``cfg.algorithm``, configured from the run config.

    fedkit's runs evaluate centrally on the test set (``eval_every``), so federated
    evaluation is off (``fraction_evaluate = 0``).
    """
    common = {"clients_per_round": cfg.clients_per_round, "num_clients": cfg.num_clients,
              "seed": cfg.seed, "directory": directory, "fraction_evaluate": 0.0}
    if cfg.algorithm == "fedavg":
        return FedAvg(weighting=cfg.weighting, **common)
    if cfg.algorithm == "fedlaavg":
        return FedLaAvg(mode=cfg.fedlaavg_mode, warmup_rounds=cfg.warmup_rounds, **common)
    if cfg.algorithm == "mifa":
        return Mifa(wait_for_all=cfg.mifa_wait_for_all, **common)
    if cfg.algorithm == "fedau":
        return FedAU(cutoff=cfg.fedau_cutoff, server_lr=cfg.server_lr, **common)
    if cfg.algorithm == "fedvarp":
        return FedVARP(server_lr=cfg.server_lr, **common)
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
    if "secagg-aborted" in train:
        record["secagg_aborted"] = bool(train["secagg-aborted"])
        record["secagg_seconds"] = float(train["secagg-seconds"])
        record["secagg_bytes_up"] = int(train["secagg-bytes-up"])
        if "secagg-clipped-fraction" in train:
            record["secagg_clipped_fraction"] = float(train["secagg-clipped-fraction"])
    if outcome.central_metrics is not None:
        record["test_loss"] = outcome.central_metrics["test-loss"]
        record["test_accuracy"] = outcome.central_metrics["test-accuracy"]
    return record


def _scenario_card(cfg: RunConfig, data, info, log: RunLog
                   ) -> tuple[dict, np.ndarray, np.ndarray]:
    rounds = len(log.rounds)
    available = availability_schedule(availability_model(cfg, data), rounds)
    participated = np.zeros_like(available)
    for i, record in enumerate(log.rounds):
        participated[i, record["clients"]] = True
    if cfg.availability_enforce == "client":
        # Only the clients know; a client that trained was online.
        available = available | participated
    return scenario_card(available, participated, info), available, participated


def run_server(grid: Grid, cfg: RunConfig, *, runtime: str = "flower") -> RunLog:
    """Run a whole fedkit experiment on ``grid`` and write its results; return the log."""
    started = time.perf_counter()
    data = load_data(cfg)
    model = new_model(cfg, data)
    arrays = arrays_of(model)
    directory = ClientDirectory(cfg.num_clients)
    strategy = make_strategy(cfg, directory)
    strategy.summary()
    info = client_info(data)
    partition = {"sizes": info.sizes.tolist(),
                 "label_histograms": info.label_histograms.tolist()}
    log = RunLog(cfg.to_dict(), runtime=runtime, partition=partition)
    before_round = None
    if cfg.availability_enforce == "server":
        grid = AvailabilityGrid(grid, availability_model(cfg, data), directory)
        before_round = grid.set_round
    first_round = 1
    checkpoint = load_checkpoint(cfg.results_dir) if cfg.resume else None
    if checkpoint is not None:
        first_round = int(checkpoint["server_round"]) + 1
        arrays = checkpoint["arrays"]
        strategy.load_state_dict(checkpoint["strategy"])
        for record in checkpoint["rounds"]:
            log.add_round(record)
        logger.info("resuming run %r from its checkpoint after round %s", cfg.name,
                    first_round - 1)
    progress = ProgressLine(cfg.rounds) if cfg.progress else None
    evaluated = [r for r in log.rounds if r.get("test_accuracy") is not None]
    last_accuracy: list[float | None] = [evaluated[-1]["test_accuracy"] if evaluated else None]

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        result = evaluate(model_with_arrays(cfg, data, arrays), data.test)
        return MetricRecord({"test-loss": result.loss, "test-accuracy": result.accuracy})

    def on_round(outcome: RoundOutcome, arrays: ArrayRecord) -> None:
        record = _round_record(cfg, outcome)
        log.add_round(record)
        if record.get("test_accuracy") is not None:
            last_accuracy[0] = record["test_accuracy"]
        if progress is not None:
            progress.update(outcome.server_round, loss=record["train_loss"],
                            accuracy=last_accuracy[0])
        r = outcome.server_round
        if cfg.checkpoint_every and (r % cfg.checkpoint_every == 0 or r == cfg.rounds):
            save_checkpoint(cfg.results_dir, server_round=r, arrays=arrays,
                            strategy_state=strategy.state_dict(), rounds=log.rounds)
            if r < cfg.rounds:  # interim results: `fedkit report` can read a run in progress
                log.scenario_card = _scenario_card(cfg, data, info, log)[0]
                log.write(cfg.results_dir)

    if cfg.secure_aggregation:
        grid = SecureAggregationGrid(grid, SecureAggregationSettings.from_run_config(cfg),
                                     strategy=strategy, timeout=cfg.round_timeout)
    run_rounds(
        strategy,
        grid,
        arrays,
        num_rounds=cfg.rounds,
        timeout=cfg.round_timeout,
        train_config_fn=lambda r: ConfigRecord({"lr": cfg.lr_at(r)}),
        evaluate_fn=evaluate_fn,
        eval_every=cfg.eval_every,
        on_round=on_round,
        before_round=before_round,
        first_round=first_round,
    )
    card, available, participated = _scenario_card(cfg, data, info, log)
    log.scenario_card = card
    path = log.write(cfg.results_dir)
    plot_accuracy(log.to_dict(), cfg.results_dir / "accuracy.png")
    plot_scenario_card(card, available, participated, cfg.results_dir / "scenario.png")
    logger.info("run %r finished in %.1f s; results in %s", cfg.name,
                time.perf_counter() - started, path)
    return log


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Flower entry point: the run config comes from ``context.run_config``."""
    runtime = getattr(grid, "runtime_name", "flower")
    if isinstance(grid, HttpGrid):  # Deployment Engine: replies every 0.2 s, not every 3 s
        grid = ReplyPollingGrid(grid)
    cfg = RunConfig.from_mapping(context.run_config)
    if cfg.task == "submodel":
        from fedkit.flower.submodel.server import run_submodel_server

        run_submodel_server(grid, cfg, runtime=runtime)
        return
    run_server(grid, cfg, runtime=runtime)
