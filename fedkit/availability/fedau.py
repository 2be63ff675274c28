"""FedAU's data-correlated participation with Bernoulli, Markov and cyclic patterns.

Client n's probability correlates with its labels through one weight vector
``w ~ Dirichlet(alpha_w * 1_L)`` drawn once from ``numpy_rng(seed, "availability-weights")``:
``p_n = min(1, max(p_floor, mean_p * L * <label_distribution_n, w>))`` (mean about
``mean_p``; the ``min(1, .)`` clip is fedkit's and never binds for FedAU's values). The
pattern turns ``p_n`` into rounds online: ``bernoulli``; ``markov`` (stationary at ``p_n``,
mean offline session ``1 / markov_speed``, mean online session
``p_n / (markov_speed (1 - p_n))``, started from the stationary law); ``cyclic`` (online
``A_n = max(1, round(period * p_n))`` rounds per period, numpy's half-to-even ``round`` as
FedAU's, with FedAU's random phase from ``numpy_rng(seed, "availability-phase")``). See
docs/availability.md, "FedAU patterns".

References:
    S. Wang, M. Ji, "A Lightweight Method for Tackling Unknown Participation Statistics in
    Federated Averaging", ICLR 2024 (arXiv:2306.03401), Sec. 6 and App. D; code
    github.com/IBM/fedau ``util/util.py`` (``data_participation_each_node``, ``WorkerSampler``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fedkit.availability._checks import check_int, check_keys, check_real, check_round
from fedkit.availability.base import ClientInfo, bernoulli_draw
from fedkit.availability.markov import TwoStateChain
from fedkit.seeding import numpy_rng

__all__ = ["FedAUAvailability", "fedau_probabilities"]

_PATTERNS = ("bernoulli", "markov", "cyclic")


def fedau_probabilities(
    label_distribution: np.ndarray, weights: np.ndarray, *, mean_p: float, p_floor: float
) -> np.ndarray:
    """``min(1, max(p_floor, mean_p * L * label_distribution @ weights))`` per client.

    Example:
        >>> fedau_probabilities(np.eye(2), np.array([0.9, 0.1]), mean_p=0.1, p_floor=0.02)
        array([0.18, 0.02])
    """
    num_classes = label_distribution.shape[1]
    raw = mean_p * num_classes * (label_distribution @ weights)
    return np.clip(raw, p_floor, 1.0)


@dataclass(frozen=True, kw_only=True, eq=False)
class FedAUAvailability:
    """FedAU's label-correlated participation (see the module docstring for the patterns).

    Args:
        client_info: The clients (every client must hold at least one example).
        pattern: ``"bernoulli"``, ``"markov"`` or ``"cyclic"``.
        mean_p: Target mean participation probability, in (0, 1].
        p_floor: Smallest participation probability, in (0, 1].
        alpha_w: Concentration of the per-label weight Dirichlet, > 0.
        markov_speed: ``P(off -> on)`` of the markov pattern, in (0, 1].
        period: Period of the cyclic pattern in rounds, >= 2.
        seed: Root seed of the run (draws ``w``, the cyclic phases and the rounds).

    Example:
        >>> info = ClientInfo.one_class_per_client([0, 1, 2, 3], num_classes=4)
        >>> m = FedAUAvailability(client_info=info, pattern="markov", seed=3)
        >>> bool((m.participation_probabilities >= 0.02).all())
        True
    """

    NAME: ClassVar[str] = "fedau"
    SPEC_KEYS: ClassVar[tuple[str, ...]] = (
        "pattern", "mean_p", "p_floor", "alpha_w", "markov_speed", "period"
    )

    client_info: ClientInfo = field(repr=False)
    pattern: str = "bernoulli"
    mean_p: float = 0.1
    p_floor: float = 0.02
    alpha_w: float = 0.1
    markov_speed: float = 0.05
    period: int = 100
    seed: int = 0
    _p: np.ndarray = field(init=False, repr=False)
    _chain: TwoStateChain | None = field(init=False, repr=False, default=None)
    _cycle: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(
        init=False, repr=False, default=None
    )

    def __post_init__(self) -> None:
        if self.pattern not in _PATTERNS:
            raise ValueError(f"fedau.pattern = {self.pattern!r}, expected one of {_PATTERNS}")
        check_real("fedau.mean_p", self.mean_p, low=0.0, high=1.0, low_open=True)
        check_real("fedau.p_floor", self.p_floor, low=0.0, high=1.0, low_open=True)
        check_real("fedau.alpha_w", self.alpha_w, low=0.0, low_open=True)
        check_real("fedau.markov_speed", self.markov_speed, low=0.0, high=1.0, low_open=True)
        check_int("fedau.period", self.period, 2)
        check_int("fedau.seed", self.seed, 0)
        self.client_info.require_labels(self.NAME)
        num_classes = self.client_info.num_classes
        w = numpy_rng(self.seed, "availability-weights").dirichlet(
            np.full(num_classes, float(self.alpha_w))
        )
        p = fedau_probabilities(
            self.client_info.label_distribution, w, mean_p=self.mean_p, p_floor=self.p_floor
        )
        p.flags.writeable = False
        object.__setattr__(self, "_p", p)
        if self.pattern == "markov":
            to_on = np.full(p.size, float(self.markov_speed))
            to_off = to_on * (1.0 / p - 1.0)
            scale = np.maximum(to_off, 1.0)  # FedAU: divide both by P(on -> off) when it is > 1
            chain = TwoStateChain(self.seed, to_off / scale, to_on / scale)
            object.__setattr__(self, "_chain", chain)
        elif self.pattern == "cyclic":
            active = np.maximum(1, np.round(self.period * p).astype(np.int64))
            inactive = np.maximum(1, self.period - active)
            rng = numpy_rng(self.seed, "availability-phase")
            offset = np.floor(rng.random(p.size) * inactive).astype(np.int64)
            object.__setattr__(self, "_cycle", (active, inactive, offset))

    @property
    def num_clients(self) -> int:
        """N, the number of clients."""
        return self.client_info.num_clients

    @property
    def participation_probabilities(self) -> np.ndarray:
        """``(N,)`` the clients' ``p_n`` (also the long-run online rate of every pattern)."""
        return self._p.copy()

    @property
    def cycle(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Cyclic pattern only: ``(A_n, I_n, o_n)`` online length, offline length, offset."""
        return None if self._cycle is None else tuple(a.copy() for a in self._cycle)

    @classmethod
    def from_spec(
        cls, params: Mapping[str, Any], client_info: ClientInfo, *, seed: int
    ) -> FedAUAvailability:
        """Build from scenario parameters (see :attr:`SPEC_KEYS`)."""
        check_keys(cls.NAME, params, cls.SPEC_KEYS)
        return cls(client_info=client_info, seed=seed, **params)

    def available(self, server_round: int) -> np.ndarray:
        if self._chain is not None:
            return self._chain.state(server_round)
        if self._cycle is not None:
            server_round = check_round(server_round)
            active, inactive, offset = self._cycle
            return (server_round - 1 - offset) % (active + inactive) < active
        return bernoulli_draw(self.seed, server_round, self._p)

    def probabilities(self, server_round: int) -> np.ndarray | None:
        check_round(server_round)
        return None if self.pattern == "cyclic" else self._p.copy()

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.NAME,
            "pattern": self.pattern,
            "mean_p": float(self.mean_p),
            "p_floor": float(self.p_floor),
            "alpha_w": float(self.alpha_w),
            "markov_speed": float(self.markov_speed),
            "period": int(self.period),
            "seed": self.seed,
        }
