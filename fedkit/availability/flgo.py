"""FLGo's availability modes: memoryless per-round probabilities from data or time.

``p_i`` (or ``p_{i,t}``) is the probability that client i is online in round t; FLGo flips an
independent coin per round (its state machine sets ``prob_unavailable = 1 - prob_available``),
and so does fedkit, with ``numpy_rng(seed, "availability", t)``. The modes IDL, YMF, MDF,
LDF, YFF, HOMO, LN, SLN and YC follow FLGo's code (``flgo/simulator/default_simulator.py``);
where its docstrings differ (MDF's tanh formula, LDF's ``(1 - beta)^(-|D_i|)``) the code
wins. LN and SLN draw ``T_i`` once from ``numpy_rng(seed, "availability-lognormal")`` with
FLGo's ``epsilon = 1e-6`` inside the log; ``t`` is fedkit's 1-based round, as FLGo's
``server.current_round``. Formulas and default betas: docs/availability.md, "FLGo modes".

References:
    Z. Wang, X. Fan, J. Qi, H. Jin, P. Yang, S. Shen, C. Wang, "FLGo: A Fully Customizable
    Federated Learning Platform", arXiv:2306.12079; code github.com/WwZzz/easyFL (FLGo branch),
    ``flgo/simulator/default_simulator.py``. LN/SLN follow M. Ribero, H. Vikalo, G. de Veciana,
    "Federated Learning Under Intermittent Client Availability and Time-Varying Communication
    Constraints", arXiv:2205.06730. YMF is MIFA's rule (Gu et al., NeurIPS 2021) with
    ``p_min = 1 - beta``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fedkit.availability._checks import check_int, check_keys, check_real, check_round
from fedkit.availability.base import ClientInfo, bernoulli_draw
from fedkit.seeding import numpy_rng

__all__ = ["FLGO_DEFAULT_BETA", "FLGoAvailability"]

FLGO_DEFAULT_BETA: dict[str, float | None] = {
    "IDL": None,
    "YMF": 0.1,
    "MDF": 1e-4,
    "LDF": 0.5,
    "YFF": 0.2,
    "HOMO": 0.2,
    "LN": 0.1,
    "SLN": 0.1,
    "YC": 0.5,
}
_EPSILON = 1e-6
_DAY = 24
_NEEDS_LABELS = ("YMF", "YFF", "YC", "MDF", "LDF")


@dataclass(frozen=True, kw_only=True, eq=False)
class FLGoAvailability:
    """One of FLGo's availability modes (table in the module docstring).

    Args:
        client_info: The clients (modes using labels or sizes need every client non-empty;
            YC needs L >= 2).
        mode: ``IDL``, ``YMF``, ``MDF``, ``LDF``, ``YFF``, ``HOMO``, ``LN``, ``SLN`` or ``YC``.
        beta: The mode's parameter; ``None`` takes FLGo's default. IDL takes none.
        seed: Root seed of the run.

    Example:
        >>> info = ClientInfo.one_class_per_client([0, 9], num_classes=10)
        >>> FLGoAvailability(client_info=info, mode="YMF", beta=0.1).probabilities(1).tolist()
        [0.9, 1.0]
    """

    NAME: ClassVar[str] = "flgo"
    SPEC_KEYS: ClassVar[tuple[str, ...]] = ("mode", "beta")

    client_info: ClientInfo = field(repr=False)
    mode: str = "YMF"
    beta: float | None = None
    seed: int = 0
    _p: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in FLGO_DEFAULT_BETA:
            raise ValueError(
                f"flgo.mode = {self.mode!r}, expected one of {', '.join(FLGO_DEFAULT_BETA)}"
            )
        check_int("flgo.seed", self.seed, 0)
        info = self.client_info
        if self.mode == "IDL":
            if self.beta is not None:
                raise ValueError(f"flgo.beta = {self.beta!r}, expected no beta for mode IDL")
            object.__setattr__(self, "_p", np.ones(info.num_clients))
            return
        beta = FLGO_DEFAULT_BETA[self.mode] if self.beta is None else self.beta
        if self.mode in ("MDF", "LDF"):
            beta = check_real(f"flgo.beta (mode {self.mode})", beta, low=0.0)
        elif self.mode in ("LN", "SLN"):
            beta = check_real(
                f"flgo.beta (mode {self.mode})", beta, low=0.0, high=1.0 - _EPSILON, high_open=True
            )
        else:
            beta = check_real(f"flgo.beta (mode {self.mode})", beta, low=0.0, high=1.0)
        object.__setattr__(self, "beta", beta)
        if self.mode in _NEEDS_LABELS:
            info.require_labels(f"flgo mode {self.mode}")
        if self.mode == "YC" and info.num_classes < 2:
            raise ValueError(
                f"flgo mode YC: num_classes = {info.num_classes}, expected >= 2 (YC divides "
                "by the largest label)"
            )
        object.__setattr__(self, "_p", self._static_probabilities(beta))

    def _static_probabilities(self, beta: float) -> np.ndarray:
        """Per-client p of the time-invariant modes; ``q_i`` for SLN; 0 placeholder for YC."""
        info = self.client_info
        n, num_classes = info.num_clients, info.num_classes
        sizes = info.sizes.astype(np.float64)
        if self.mode == "YMF":
            return beta * info.min_label / max(1, num_classes - 1) + (1 - beta)
        if self.mode == "MDF":
            return sizes**beta / np.max(sizes**beta)
        if self.mode == "LDF":
            return sizes ** (-beta) / np.max(sizes ** (-beta))
        if self.mode == "YFF":
            return beta * info.num_labels_present / num_classes + (1 - beta)
        if self.mode == "HOMO":
            return np.full(n, 1.0 - beta)
        if self.mode in ("LN", "SLN"):
            sigma = -np.log(1.0 - beta - _EPSILON)
            t = numpy_rng(self.seed, "availability-lognormal").lognormal(0.0, sigma, n)
            return t / t.max()
        return np.zeros(n)  # YC: computed per round

    @property
    def num_clients(self) -> int:
        """N, the number of clients."""
        return self.client_info.num_clients

    @classmethod
    def from_spec(
        cls, params: Mapping[str, Any], client_info: ClientInfo, *, seed: int
    ) -> FLGoAvailability:
        """Build from scenario parameters ``mode`` and ``beta``."""
        check_keys(cls.NAME, params, cls.SPEC_KEYS)
        return cls(client_info=client_info, seed=seed, **params)

    def probabilities(self, server_round: int) -> np.ndarray:
        t = check_round(server_round)
        if self.mode == "SLN":
            wave = 0.4 * np.sin(np.linspace(0.0, 2.0 * np.pi, _DAY)) + 0.5
            return wave[t % _DAY] * self._p
        if self.mode == "YC":
            beta = float(self.beta)  # type: ignore[arg-type]
            max_label = self.client_info.num_classes - 1
            position = 1.0 * (1 + t % _DAY) / _DAY
            low = 1.0 * self.client_info.min_label / max_label
            high = 1.0 * self.client_info.max_label / max_label
            inside = (position >= low) & (position <= high)
            return beta * inside + (1 - beta)
        return self._p.copy()

    def available(self, server_round: int) -> np.ndarray:
        return bernoulli_draw(self.seed, server_round, self.probabilities(server_round))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.NAME, "mode": self.mode}
        if self.beta is not None:
            out["beta"] = float(self.beta)
        out["seed"] = self.seed
        return out
