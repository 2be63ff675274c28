"""fedkit on Flower, one subpackage per feature.

* :mod:`fedkit.flower.apps` -- fedkit's ServerApp and ClientApp, the round loop, checkpoints;
* :mod:`fedkit.flower.runtime` -- the in-process grids (sequential and batched), the
  availability wrapper, Flower's Simulation Engine through ``flwr run``;
* :mod:`fedkit.flower.secagg` -- secure aggregation over Flower messages (one exchange, one
  workflow, the client mod);
* :mod:`fedkit.flower.submodel` -- secure federated submodel learning over Flower messages.

The app objects are imported lazily: Flower loads them by the names in ``pyproject.toml``.
"""

from fedkit.flower.apps.loop import RoundOutcome, run_rounds
from fedkit.flower.runtime.engines import run_inprocess
from fedkit.flower.runtime.inprocess import InProcessGrid

__all__ = ["InProcessGrid", "RoundOutcome", "run_inprocess", "run_rounds"]
