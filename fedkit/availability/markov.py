"""On/off sessions: a two-state Markov chain per client.

Client i goes ``on -> off`` with probability ``a_i`` and ``off -> on`` with ``b_i``: geometric
sessions of mean lengths ``1 / a_i`` and ``1 / b_i``, stationary online probability
``pi_i = b_i / (a_i + b_i)``, lag-1 autocorrelation ``1 - a_i - b_i``. The ``markov`` model
sets ``a = 1 / mean_on``, ``b = 1 / mean_off``. Round 1 starts from the stationary law, so
``probabilities(r) = pi``; round r moves client i with the i-th uniform of
``numpy_rng(seed, "availability", r)``, so a state is a pure function of ``(seed, r)``.
:class:`TwoStateChain` memoises the trajectory (a checkpoint every 256 rounds plus the 8
blocks of 256 rounds last asked for: ``O((R / 256 + 8 * 256) * N)`` bytes). See
docs/availability.md, "The contract".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fedkit.availability._checks import check_int, check_keys, check_real, check_round
from fedkit.availability.base import ClientInfo
from fedkit.seeding import numpy_rng

__all__ = ["MarkovAvailability", "TwoStateChain"]

_BLOCK = 256
_KEEP_BLOCKS = 8


class TwoStateChain:
    """Memoised trajectory of N independent two-state chains, pure in ``(seed, round)``.

    Args:
        seed: Root seed; round r uses ``numpy_rng(seed, "availability", r)``.
        to_off: ``(N,)`` probabilities ``P(on -> off)``.
        to_on: ``(N,)`` probabilities ``P(off -> on)``; ``to_off + to_on > 0`` per client.

    Example:
        >>> chain = TwoStateChain(0, np.array([0.2]), np.array([0.1]))
        >>> late, early = chain.state(500), chain.state(3)
        >>> bool((TwoStateChain(0, np.array([0.2]), np.array([0.1])).state(3) == early).all())
        True
    """

    def __init__(self, seed: int, to_off: np.ndarray, to_on: np.ndarray) -> None:
        self._seed = seed
        self._to_off = np.array(to_off, dtype=np.float64)
        self._to_on = np.array(to_on, dtype=np.float64)
        self._stationary = self._to_on / (self._to_off + self._to_on)
        self._checkpoints: dict[int, np.ndarray] = {}  # block b -> state of round b*B + 1
        self._blocks: OrderedDict[int, np.ndarray] = OrderedDict()  # LRU of recent blocks
        self._lock = threading.Lock()

    @property
    def stationary(self) -> np.ndarray:
        """``(N,)`` stationary online probability ``to_on / (to_off + to_on)``."""
        return self._stationary.copy()

    def _uniforms(self, server_round: int) -> np.ndarray:
        return numpy_rng(self._seed, "availability", server_round).random(self._to_off.size)

    def _step(self, state: np.ndarray, server_round: int) -> np.ndarray:
        u = self._uniforms(server_round)
        return np.where(state, u >= self._to_off, u < self._to_on)

    def _block_start(self, block: int) -> np.ndarray:
        """State of round ``block * B + 1``, from the nearest earlier checkpoint."""
        if 0 not in self._checkpoints:
            self._checkpoints[0] = self._uniforms(1) < self._stationary
        known = max(b for b in self._checkpoints if b <= block)
        state = self._checkpoints[known]
        for b in range(known, block):
            first = b * _BLOCK + 1
            for r in range(first + 1, first + _BLOCK + 1):
                state = self._step(state, r)
            self._checkpoints[b + 1] = state
        return state

    def state(self, server_round: int) -> np.ndarray:
        """``(N,)`` bool online states of the 1-based round ``server_round`` (a copy)."""
        server_round = check_round(server_round)
        block, offset = divmod(server_round - 1, _BLOCK)
        with self._lock:
            rows = self._blocks.get(block)
            if rows is None:
                rows = np.empty((_BLOCK, self._to_off.size), dtype=bool)
                rows[0] = self._block_start(block)
                first = block * _BLOCK + 1
                for i in range(1, _BLOCK):
                    rows[i] = self._step(rows[i - 1], first + i)
                self._blocks[block] = rows
                if len(self._blocks) > _KEEP_BLOCKS:
                    self._blocks.popitem(last=False)
            self._blocks.move_to_end(block)
            return rows[offset].copy()


@dataclass(frozen=True, kw_only=True, eq=False)
class MarkovAvailability:
    """On/off sessions with geometric lengths, the same chain for every client.

    ``P(on -> off) = 1 / mean_on``, ``P(off -> on) = 1 / mean_off``; stationary online rate
    ``mean_on / (mean_on + mean_off)``; started stationary. ``mean_on = mean_off = 1``
    alternates deterministically after round 1; persistence (positive lag-1 autocorrelation
    ``1 - 1/mean_on - 1/mean_off``) needs ``1/mean_on + 1/mean_off < 1``.

    Args:
        num_clients: N.
        mean_on: Mean online session length in rounds, >= 1.
        mean_off: Mean offline session length in rounds, >= 1.
        seed: Root seed of the run.

    Example:
        >>> m = MarkovAvailability(num_clients=3, mean_on=5, mean_off=10)
        >>> m.probabilities(1).round(3).tolist()
        [0.333, 0.333, 0.333]
    """

    NAME: ClassVar[str] = "markov"
    SPEC_KEYS: ClassVar[tuple[str, ...]] = ("mean_on", "mean_off")

    num_clients: int
    mean_on: float = 5.0
    mean_off: float = 10.0
    seed: int = 0
    _chain: TwoStateChain = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = check_int("markov.num_clients", self.num_clients, 1)
        check_int("markov.seed", self.seed, 0)
        mean_on = check_real("markov.mean_on", self.mean_on, low=1.0)
        mean_off = check_real("markov.mean_off", self.mean_off, low=1.0)
        chain = TwoStateChain(self.seed, np.full(n, 1.0 / mean_on), np.full(n, 1.0 / mean_off))
        object.__setattr__(self, "_chain", chain)

    @classmethod
    def from_spec(
        cls, params: Mapping[str, Any], client_info: ClientInfo, *, seed: int
    ) -> MarkovAvailability:
        """Build from scenario parameters ``mean_on`` and ``mean_off``."""
        check_keys(cls.NAME, params, cls.SPEC_KEYS)
        return cls(num_clients=client_info.num_clients, seed=seed, **params)

    def available(self, server_round: int) -> np.ndarray:
        return self._chain.state(server_round)

    def probabilities(self, server_round: int) -> np.ndarray:
        check_round(server_round)
        return self._chain.stationary

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.NAME,
            "mean_on": float(self.mean_on),
            "mean_off": float(self.mean_off),
            "seed": self.seed,
        }
