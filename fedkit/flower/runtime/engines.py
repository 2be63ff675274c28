"""Run fedkit's (or any) ServerApp and ClientApp in this process, on a chosen engine.

``engine = "sequential"`` delivers every message through the ClientApp, one at a time
(:class:`~fedkit.flower.runtime.inprocess.InProcessGrid`); ``engine = "batched"`` executes the
messages the ClientApp declares batchable together
(:class:`~fedkit.flower.runtime.batched.BatchedInProcessGrid`,
:mod:`fedkit.flower.runtime.batching`). Both give the same replies up to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import Context, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from fedkit.flower.runtime.batched import BatchedInProcessGrid
from fedkit.flower.runtime.inprocess import RUN_ID, SERVER_NODE_ID, InProcessGrid

__all__ = ["ENGINES", "run_inprocess"]

ENGINES = ("sequential", "batched")


def run_inprocess(
    run_config: Mapping[str, Any],
    *,
    num_nodes: int,
    server_app: ServerApp | None = None,
    client_app: ClientApp | None = None,
    seed: int = 0,
    engine: str = "batched",
    device: str = "cpu",
) -> InProcessGrid:
    """Run ``server_app`` against ``num_nodes`` in-process ClientApps; return the grid.

    Defaults to fedkit's own ServerApp and ClientApp. ``engine = "batched"`` executes the
    messages the ClientApp declares batchable together, on ``device``; fedkit's ClientApp
    declares its train messages (each round's clients train in one computation).

    Raises:
        ValueError: On an unknown engine.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine = {engine!r}, expected one of {list(ENGINES)}")
    if server_app is None:
        from fedkit.flower.apps.server_app import app as server_app
    if client_app is None:
        from fedkit.flower.apps.client_app import app as client_app
    if engine == "batched":
        grid: InProcessGrid = BatchedInProcessGrid(
            client_app, num_nodes=num_nodes, run_config=run_config, seed=seed, device=device)
    else:
        grid = InProcessGrid(client_app, num_nodes=num_nodes, run_config=run_config, seed=seed)
    server_context = Context(run_id=RUN_ID, node_id=SERVER_NODE_ID, node_config={},
                             state=RecordDict(), run_config=dict(run_config))
    server_app(grid, server_context)
    return grid
