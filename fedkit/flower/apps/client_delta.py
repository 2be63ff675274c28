"""FedLaAvg's client-delta mode on the client: keep G_i, send ΔG_i, recover a lost G_i.

Each client keeps its latest gradient sum G_i = (x - x_local)/lr in its Flower
``context.state`` and uploads only ΔG_i = G_i^new - G_i^old, as float64, so the server needs
O(d) memory (Yan et al., arXiv:2002.07399; code ``mikudehuane/FedLaAvg``). A client whose
stored version differs from the server's ``expected-version`` replies ``state-lost = 1``
instead of a delta against the wrong base; when next selected it gets the model of the round
its update was last folded (``recovery-arrays``, ``recovery-round``, ``recovery-lr``) and
recomputes that G_i exactly, local training being deterministic in (seed, round, client id).
See docs/design.md, "Unavailability-robust strategies".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict

from fedkit.algorithms.arrays import flatten, from_flower_array, to_flower_array

__all__ = ["GradientStore", "gradient_sum", "STATE_LOST"]

STATE_LOST = "state-lost"
_G_KEY = "fedkit.fedlaavg.g"
_META_KEY = "fedkit.fedlaavg.meta"


def gradient_sum(sent: ArrayRecord, local: ArrayRecord, lr: float) -> np.ndarray:
    """G = (x_sent - x_local) / lr as one float64 vector (the sum of the local gradients)."""
    return (flatten(sent) - flatten(local)) / lr


class GradientStore:
    """The client's (G_i, version) in ``context.state``."""

    def __init__(self, context: Context) -> None:
        self.state: RecordDict = context.state

    def load(self) -> tuple[np.ndarray | None, int]:
        """The stored G_i and its version (None, 0 when nothing is stored)."""
        if _G_KEY not in self.state.array_records:
            return None, 0
        g = from_flower_array(self.state.array_records[_G_KEY]["g"])  # read-only view
        version = int(self.state.config_records[_META_KEY]["version"])
        return g, version

    def save(self, g: np.ndarray, version: int) -> None:
        """Store G_i (float64) and its version."""
        self.state[_G_KEY] = ArrayRecord({"g": to_flower_array(np.asarray(g, np.float64))})
        self.state[_META_KEY] = ConfigRecord({"version": version})

    def base(self, expected_version: int, recompute: Callable[[], np.ndarray] | None,
             dim: int) -> np.ndarray | None:
        """G_i^old to subtract, or None when the state is lost and cannot be recovered yet.

        Args:
            expected_version: The server's count of folded updates of this client.
            recompute: Recomputes G_i^old from the recovery model, if the server sent one.
            dim: Model size (a never-seen client's G_i^old is zero).
        """
        if expected_version == 0:
            return np.zeros(dim, dtype=np.float64)
        g, version = self.load()
        if g is not None and version == expected_version:
            return g
        if recompute is not None:
            return recompute()
        return None
