"""fedkit on Flower, one subpackage per feature.

* :mod:`fedkit.flower.apps` -- fedkit's ServerApp and ClientApp, the round loop, checkpoints;
* :mod:`fedkit.flower.runtime` -- the in-process grids (sequential and batched), the
  availability wrapper, Flower's Simulation Engine through ``flwr run``;
* :mod:`fedkit.flower.secagg` -- secure aggregation over Flower messages (one exchange, one
  workflow, the client mod);
* :mod:`fedkit.flower.submodel` -- secure federated submodel learning over Flower messages;
* :mod:`fedkit.flower.mods` -- the client mods that make any Flower ClientApp a fedkit
  client (``client_id_mod``, ``fedlaavg_mod``, ``secagg_mod``).

The app objects are imported lazily: Flower loads them by the names in ``pyproject.toml``.
"""

from fedkit.flower.apps.loop import RoundOutcome, run_rounds
from fedkit.flower.mods import (
    client_id_mod,
    fedlaavg_mod,
    register_client_id_query,
    secagg_mod,
)
from fedkit.flower.runtime.engines import run_inprocess
from fedkit.flower.runtime.inprocess import InProcessGrid

__all__ = ["InProcessGrid", "RoundOutcome", "client_id_mod", "fedlaavg_mod",
           "register_client_id_query", "run_inprocess", "run_rounds", "secagg_mod"]
