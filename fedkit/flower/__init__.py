"""fedkit on Flower: the ServerApp and ClientApp, the round loop and the in-process grid.

The app objects live in :mod:`fedkit.flower.server_app` and :mod:`fedkit.flower.client_app`
(imported lazily: Flower loads them by the names in pyproject.toml).
"""

from fedkit.flower.inprocess import InProcessGrid, run_inprocess
from fedkit.flower.loop import RoundOutcome, run_rounds

__all__ = ["InProcessGrid", "RoundOutcome", "run_inprocess", "run_rounds"]
