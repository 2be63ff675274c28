"""How many clients a round trains and evaluates: fedkit's K or Flower's fractions.

A fedkit strategy accepts either convention (docs/flower.md, "Strategies"):

* **fedkit's** ``clients_per_round = K``: K clients train (all online ones when fewer are
  online; nobody is waited for, since clients coming and going is what the
  unavailability-robust algorithms are for);
* **Flower's** ``fraction_train`` / ``min_train_nodes`` / ``min_available_nodes``, with the
  defaults and meanings of ``flwr.serverapp.strategy.FedAvg``: ``max(int(n *
  fraction_train), min_train_nodes)`` of the n online nodes train, after waiting (polling the
  grid once a second) until ``max(min_available_nodes, min_train_nodes)`` nodes are online.

Federated evaluation follows Flower's ``fraction_evaluate`` / ``min_evaluate_nodes`` in both
conventions (under fedkit's, without waiting). Sample sizes are capped at the number online.
``min_available_nodes`` given explicitly is waited for under either convention.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from flwr.serverapp import Grid

__all__ = ["Participation", "wait_for_nodes"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Participation:
    """Resolved sample sizes and waits of one strategy (see the module docstring).

    Build it with :meth:`from_arguments`, which applies the defaults of the chosen
    convention. Attributes are those of Flower's ``FedAvg`` plus fedkit's
    ``clients_per_round`` (None under Flower's convention).
    """

    clients_per_round: int | None
    fraction_train: float
    min_train_nodes: int
    fraction_evaluate: float
    min_evaluate_nodes: int
    min_available_nodes: int

    def __post_init__(self) -> None:
        for name in ("fraction_train", "fraction_evaluate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} = {value}, expected a fraction in [0, 1]")
        for name in ("min_train_nodes", "min_evaluate_nodes", "min_available_nodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} = {value!r}, expected an integer >= 0")
        if self.clients_per_round is not None and self.clients_per_round < 1:
            raise ValueError(f"clients_per_round = {self.clients_per_round}, expected >= 1")

    @classmethod
    def from_arguments(
        cls,
        *,
        clients_per_round: int | None,
        num_clients: int | None,
        fraction_train: float | None,
        min_train_nodes: int | None,
        fraction_evaluate: float,
        min_evaluate_nodes: int,
        min_available_nodes: int | None,
    ) -> Participation:
        """Apply the defaults of fedkit's or Flower's convention.

        Raises:
            ValueError: If both conventions are mixed, K is not in ``1..num_clients``, or a
                value is out of range.
        """
        if clients_per_round is not None:
            if fraction_train is not None or min_train_nodes is not None:
                raise ValueError(
                    f"clients_per_round = {clients_per_round} and fraction_train = "
                    f"{fraction_train} / min_train_nodes = {min_train_nodes} both given; "
                    "expected fedkit's clients_per_round or Flower's fraction_train/"
                    "min_train_nodes, not both"
                )
            if num_clients is not None and not 1 <= clients_per_round <= num_clients:
                raise ValueError(f"clients_per_round = {clients_per_round}, expected "
                                 f"1..num_clients ({num_clients})")
            fraction_train, min_train_nodes = 1.0, 0
            min_available_nodes = 0 if min_available_nodes is None else min_available_nodes
        else:
            fraction_train = 1.0 if fraction_train is None else fraction_train
            min_train_nodes = 2 if min_train_nodes is None else min_train_nodes
            min_available_nodes = 2 if min_available_nodes is None else min_available_nodes
        # Flower's FedAvg: a zero fraction switches the phase off, minimum included.
        if fraction_train == 0.0:
            min_train_nodes = 0
        if fraction_evaluate == 0.0:
            min_evaluate_nodes = 0
        return cls(clients_per_round=clients_per_round, fraction_train=fraction_train,
                   min_train_nodes=min_train_nodes, fraction_evaluate=fraction_evaluate,
                   min_evaluate_nodes=min_evaluate_nodes,
                   min_available_nodes=min_available_nodes)

    @property
    def flower_convention(self) -> bool:
        """True when sample sizes come from Flower's fractions (no ``clients_per_round``)."""
        return self.clients_per_round is None

    @property
    def trains(self) -> bool:
        """False when ``fraction_train = 0`` (Flower: training is skipped)."""
        return self.clients_per_round is not None or self.fraction_train > 0.0

    @property
    def evaluates(self) -> bool:
        """False when ``fraction_evaluate = 0`` (federated evaluation is skipped)."""
        return self.fraction_evaluate > 0.0

    def nodes_to_wait_for(self, phase: str) -> int:
        """Nodes that must be online before ``phase`` (``"train"``/``"evaluate"``) samples."""
        if not self.flower_convention:
            return self.min_available_nodes
        floor = self.min_train_nodes if phase == "train" else self.min_evaluate_nodes
        return max(self.min_available_nodes, floor)

    def train_sample_size(self, num_online: int) -> int:
        """Clients to train among ``num_online``: K, or Flower's fraction with its floor."""
        if self.clients_per_round is not None:
            return min(self.clients_per_round, num_online)
        wanted = max(int(num_online * self.fraction_train), self.min_train_nodes)
        return min(wanted, num_online) if self.trains else 0

    def evaluate_sample_size(self, num_online: int) -> int:
        """Clients to evaluate among ``num_online`` (Flower's fraction with its floor)."""
        if not self.evaluates:
            return 0
        wanted = max(int(num_online * self.fraction_evaluate), self.min_evaluate_nodes)
        return min(wanted, num_online)


def wait_for_nodes(grid: Grid, minimum: int, *, poll_seconds: float = 1.0,
                   sleep: Callable[[float], None] = time.sleep) -> int:
    """Wait until ``grid`` reports at least ``minimum`` nodes; return how many it reports.

    Polls ``grid.get_node_ids()`` every ``poll_seconds`` and logs each wait, as Flower's
    strategies do; with no limit on the wait, as Flower's (a run whose nodes never connect
    waits until it is stopped).

    Args:
        grid: The grid to poll.
        minimum: Nodes required (0: return at once).
        poll_seconds: Seconds between polls.
        sleep: The clock (a seam for tests).
    """
    while (count := len(list(grid.get_node_ids()))) < minimum:
        logger.info("waiting for nodes to connect: %d connected (minimum required: %d)",
                    count, minimum)
        sleep(poll_seconds)
    return count
