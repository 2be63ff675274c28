"""Pure server rules of the unavailability-robust algorithms (numpy + stdlib only).

The Flower strategies in ``fedkit.algorithms`` are thin shells over these functions: each
rule is an ``(init, update)`` pair over flat float64 model vectors ``x`` of shape ``(d,)``,
with a frozen state dataclass passed in and returned (``(result, new_state)`` order) and
``state_dict()`` / ``from_state_dict()`` for checkpoints. Client ids are ints 0..N-1.

* :mod:`~fedkit.algorithms.rules.latest_table` -- every client's latest update and their mean
  (shared by FedLaAvg's server-table mode, MIFA and FedVARP).
* :mod:`~fedkit.algorithms.rules.selection` -- FedLaAvg's longest-waiting selection.
* :mod:`~fedkit.algorithms.rules.fedlaavg` -- FedLaAvg (Yan et al., arXiv 2002.07399).
* :mod:`~fedkit.algorithms.rules.mifa` -- MIFA (Gu et al., NeurIPS 2021).
* :mod:`~fedkit.algorithms.rules.fedau` -- FedAU (Wang & Ji, ICLR 2024).
* :mod:`~fedkit.algorithms.rules.fedvarp` -- FedVARP (Jhunjhunwala et al., UAI 2022).
"""

from fedkit.algorithms.rules.fedau import (
    FedAUState,
    fedau_init,
    fedau_observe,
    fedau_step,
    fedau_weights,
)
from fedkit.algorithms.rules.fedlaavg import (
    FedLaAvgState,
    apply_update,
    fedlaavg_init,
    fold_delta_sum,
    fold_deltas,
    fold_latest,
    gradient_sum,
)
from fedkit.algorithms.rules.fedvarp import FedVARPState, fedvarp_init, fedvarp_step
from fedkit.algorithms.rules.latest_table import LatestUpdateTable, table_init, table_update
from fedkit.algorithms.rules.mifa import MifaState, mifa_init, mifa_step
from fedkit.algorithms.rules.selection import longest_waiting

__all__ = [
    "FedAUState",
    "FedLaAvgState",
    "FedVARPState",
    "LatestUpdateTable",
    "MifaState",
    "apply_update",
    "fedau_init",
    "fedau_observe",
    "fedau_step",
    "fedau_weights",
    "fedlaavg_init",
    "fedvarp_init",
    "fedvarp_step",
    "fold_delta_sum",
    "fold_deltas",
    "fold_latest",
    "gradient_sum",
    "longest_waiting",
    "mifa_init",
    "mifa_step",
    "table_init",
    "table_update",
]
