"""Test helpers for the submodel workflow: a small config, a run on the in-process grid, and
ClientApp wrappers that drop a node at a phase or record what the server receives."""

from __future__ import annotations

import numpy as np
from flwr.app import Message

from fedkit.config import RunConfig
from fedkit.flower.apps.client_app import app as fedkit_app
from fedkit.flower.runtime.inprocess import InProcessGrid
from fedkit.flower.submodel.records import TRAIN_TYPE, Phase, read_phase
from fedkit.flower.submodel.server import run_submodel_server


def small_config(tmp_path, **changes) -> RunConfig:
    """6 synthetic users over 80 items, 5 per round, dim 3: a secure round takes ~0.2 s."""
    base = dict(name="submodel-test", task="submodel", dataset="synthetic-rec", num_items=80,
                num_clients=6, clients_per_round=5, rounds=1, embedding_dim=3,
                negatives_per_positive=1, lr=0.1, batch_size=8, eval_every=0,
                progress=False, submodel_mode="secure", submodel_preset="eps2",
                output_dir=str(tmp_path / "out"))
    base.update(changes)
    return RunConfig(**base)


def run(cfg: RunConfig, client_app=None):
    """Run the submodel server on an in-process grid; return ``(grid, log, final model)``."""
    grid = InProcessGrid(client_app or fedkit_app, num_nodes=cfg.num_clients,
                         run_config=cfg.to_dict(), seed=cfg.seed)
    log, model = run_submodel_server(grid, cfg, runtime="inprocess")
    return grid, log, model


def floor_off(app):
    """``app`` on nodes whose own row floor is 1 (``secagg-min-row-holders``): with
    ``submodel_min_row_holders = 1`` the rows of every survivor are summed, crowd or not."""

    def client(msg: Message, context) -> Message:
        context.node_config["secagg-min-row-holders"] = 1
        return app(msg, context)

    return client


def phase_of(msg: Message) -> Phase | None:
    """The submodel phase of a train message, else None."""
    if msg.metadata.message_type != TRAIN_TYPE:
        return None
    return read_phase(msg)[0]


def dropping(app, plan: dict[Phase, set[int]]):
    """``app``, but node ``pid`` raises at every phase ``p`` with ``pid in plan[p]``."""

    def client(msg: Message, context) -> Message:
        pid = context.node_config["partition-id"]
        if pid in plan.get(phase_of(msg), set()):
            raise ConnectionError(f"node {pid} went offline at {phase_of(msg).value}")
        return app(msg, context)

    return client


def recording(app, log: list):
    """``app``, appending ``(pid, phase, request, reply)`` of every message to ``log``."""

    def client(msg: Message, context) -> Message:
        reply = app(msg, context)
        log.append((context.node_config["partition-id"], phase_of(msg), msg, reply))
        return reply

    return client


def all_arrays(content) -> list[np.ndarray]:
    """Every numpy array in a RecordDict's ArrayRecords."""
    return [a.numpy() for record in content.array_records.values() for a in record.values()]
