"""Memoryless availability: everyone, independent coin flips, and MIFA's class-correlated coins.

==================  ==========================================================================
name                client i is online in round r with probability
==================  ==========================================================================
always              1
bernoulli           ``p`` (one for all) or ``probabilities[i]`` (one per client)
class-correlated    ``p_min + (1 - p_min) * min_label_i / (L - 1)`` (Gu et al. 2021)
==================  ==========================================================================

Draws are independent across clients and rounds: round r uses
``numpy_rng(seed, "availability", r)`` (:func:`fedkit.availability.base.bernoulli_draw`).

References:
    X. Gu, K. Huang, J. Zhang, L. Huang, "Fast Federated Learning in the Presence of Arbitrary
    Device Unavailability", NeurIPS 2021 (arXiv:2106.04159), Sec. 7 and code
    github.com/hmgxr128/MIFA_code: Bernoulli participation
    ``p_i = p_min + (1 - p_min) * min(class_i) / 9`` on CIFAR-10 (devices holding low-index
    classes participate rarely).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fedkit.availability._checks import (
    check_int,
    check_keys,
    check_probability,
    check_round,
    check_sequence,
)
from fedkit.availability.base import ClientInfo, bernoulli_draw

__all__ = ["AlwaysAvailable", "BernoulliAvailability", "ClassCorrelatedAvailability"]


@dataclass(frozen=True, kw_only=True, eq=False)
class AlwaysAvailable:
    """Every client is online in every round (full client availability, "FCA").

    Example:
        >>> AlwaysAvailable(num_clients=3).available(7).tolist()
        [True, True, True]
    """

    NAME: ClassVar[str] = "always"
    SPEC_KEYS: ClassVar[tuple[str, ...]] = ()

    num_clients: int

    def __post_init__(self) -> None:
        check_int("always.num_clients", self.num_clients, 1)

    @classmethod
    def from_spec(
        cls, params: Mapping[str, Any], client_info: ClientInfo, *, seed: int
    ) -> AlwaysAvailable:
        """Build from scenario parameters (none are accepted)."""
        check_keys(cls.NAME, params, cls.SPEC_KEYS)
        return cls(num_clients=client_info.num_clients)

    def available(self, server_round: int) -> np.ndarray:
        check_round(server_round)
        return np.ones(self.num_clients, dtype=bool)

    def probabilities(self, server_round: int) -> np.ndarray:
        check_round(server_round)
        return np.ones(self.num_clients)

    def describe(self) -> dict[str, Any]:
        return {"model": self.NAME}


@dataclass(frozen=True, kw_only=True, eq=False)
class BernoulliAvailability:
    """Client i is online in each round independently with probability ``p_i``.

    Give exactly one of ``p`` (the same probability for every client) or
    ``client_probabilities`` (one per client; the scenario key is ``probabilities``).

    Args:
        num_clients: N.
        p: Common probability in [0, 1].
        client_probabilities: N probabilities in [0, 1].
        seed: Root seed of the run.

    Raises:
        ValueError: If both or neither of ``p`` / ``client_probabilities`` are given, a
            probability is outside [0, 1] or the list does not have N entries.

    Example:
        >>> m = BernoulliAvailability(num_clients=4, p=0.5, seed=1)
        >>> bool((m.available(3) == m.available(3)).all())
        True
    """

    NAME: ClassVar[str] = "bernoulli"
    SPEC_KEYS: ClassVar[tuple[str, ...]] = ("p", "probabilities")

    num_clients: int
    p: float | None = None
    client_probabilities: Sequence[float] | None = None
    seed: int = 0
    _p: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = check_int("bernoulli.num_clients", self.num_clients, 1)
        check_int("bernoulli.seed", self.seed, 0)
        if (self.p is None) == (self.client_probabilities is None):
            got = "both p and" if self.p is not None else "neither p nor"
            raise ValueError(
                f"bernoulli: got {got} probabilities, expected exactly one (p for all clients, "
                "or a list of one per client)"
            )
        if self.p is not None:
            probs = np.full(n, check_probability("bernoulli.p", self.p))
        else:
            values = check_sequence("bernoulli.probabilities", self.client_probabilities)
            if len(values) != n:
                raise ValueError(
                    f"bernoulli.probabilities has {len(values)} entries, expected one per "
                    f"client ({n})"
                )
            probs = np.array(
                [
                    check_probability(f"bernoulli.probabilities[{i}]", v)
                    for i, v in enumerate(values)
                ]
            )
            object.__setattr__(self, "client_probabilities", tuple(probs.tolist()))
        probs.flags.writeable = False
        object.__setattr__(self, "_p", probs)

    @classmethod
    def from_spec(
        cls, params: Mapping[str, Any], client_info: ClientInfo, *, seed: int
    ) -> BernoulliAvailability:
        """Build from scenario parameters ``p`` or ``probabilities``."""
        check_keys(cls.NAME, params, cls.SPEC_KEYS)
        return cls(
            num_clients=client_info.num_clients,
            p=params.get("p"),
            client_probabilities=params.get("probabilities"),
            seed=seed,
        )

    def available(self, server_round: int) -> np.ndarray:
        return bernoulli_draw(self.seed, server_round, self._p)

    def probabilities(self, server_round: int) -> np.ndarray:
        check_round(server_round)
        return self._p.copy()

    def describe(self) -> dict[str, Any]:
        if self.p is not None:
            return {"model": self.NAME, "p": float(self.p), "seed": self.seed}
        return {"model": self.NAME, "probabilities": self._p.tolist(), "seed": self.seed}


@dataclass(frozen=True, kw_only=True, eq=False)
class ClassCorrelatedAvailability:
    """MIFA's adversarial availability: low-index classes participate rarely.

    ``p_i = p_min + (1 - p_min) * min_label_i / (L - 1)``, with ``min_label_i`` the smallest
    class client i holds (``L = 1`` gives ``p_i = p_min``); independent Bernoulli per round.

    Args:
        client_info: The clients (every client must hold at least one example).
        p_min: Probability of the clients whose smallest class is 0, in [0, 1]; MIFA uses
            ``0.1 * level`` (0.1 at level 1).
        seed: Root seed of the run.

    Example:
        >>> info = ClientInfo.one_class_per_client([0, 5, 9], num_classes=10)
        >>> m = ClassCorrelatedAvailability(client_info=info, p_min=0.1)
        >>> m.probabilities(1).round(3).tolist()
        [0.1, 0.6, 1.0]

    References:
        Gu et al., NeurIPS 2021, Sec. 7 (experimental setup) and ``MIFA_code``.
    """

    NAME: ClassVar[str] = "class-correlated"
    SPEC_KEYS: ClassVar[tuple[str, ...]] = ("p_min",)

    client_info: ClientInfo = field(repr=False)
    p_min: float = 0.1
    seed: int = 0
    _p: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_probability("class-correlated.p_min", self.p_min)
        check_int("class-correlated.seed", self.seed, 0)
        self.client_info.require_labels(self.NAME)
        num_classes = self.client_info.num_classes
        ratio = self.client_info.min_label / max(1, num_classes - 1)
        probs = self.p_min + (1.0 - self.p_min) * ratio
        probs.flags.writeable = False
        object.__setattr__(self, "_p", probs)

    @property
    def num_clients(self) -> int:
        """N, the number of clients."""
        return self.client_info.num_clients

    @classmethod
    def from_spec(
        cls, params: Mapping[str, Any], client_info: ClientInfo, *, seed: int
    ) -> ClassCorrelatedAvailability:
        """Build from scenario parameter ``p_min``."""
        check_keys(cls.NAME, params, cls.SPEC_KEYS)
        return cls(client_info=client_info, seed=seed, **params)

    def available(self, server_round: int) -> np.ndarray:
        return bernoulli_draw(self.seed, server_round, self._p)

    def probabilities(self, server_round: int) -> np.ndarray:
        check_round(server_round)
        return self._p.copy()

    def describe(self) -> dict[str, Any]:
        return {"model": self.NAME, "p_min": float(self.p_min), "seed": self.seed}
