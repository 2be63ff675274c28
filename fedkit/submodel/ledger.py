"""Privacy of a client's index set under double randomized response: epsilons, presets, ledger.

Guarantee: **per-index local differential privacy relative to the union U** (the standard
binary randomized-response bound; Niu et al.'s own theorem could not be consulted). One round:
``eps_round = ln max{P5/P6, (1 - P6)/(1 - P5)}``; any number of rounds, since every report
post-processes the memoised permanent answer: ``eps_inf = ln max{p1/p2, (1 - p2)/(1 - p1)}``
(Erlingsson et al., CCS 2014, §3); after T rounds the exact loss (:func:`epsilon_after`), no
composition theorem assumed. Ratios take ``x/0 = inf`` and ``0/0 = 1``, in both directions.
Presets: the authors' code's ``cpp1``..``cpp5`` and ``eps1``/``eps2``/``eps2.7`` named by their
per-round epsilon. See docs/submodel.md, "Privacy ledger".

References:
    Ú. Erlingsson, V. Pihur, A. Korolova, "RAPPOR", CCS 2014 (permanent + instantaneous RR).
    C. Niu et al., "Secure Federated Submodel Learning", arXiv 1911.02254 (the ``cpp``
    presets of the authors' ``secure/SFSL/train_client.py``).
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from fedkit.submodel.rr import DoubleRRParams

__all__ = [
    "PRESETS",
    "ClientPrivacy",
    "PrivacyLedger",
    "epsilon_after",
    "epsilon_long_term",
    "epsilon_round",
    "expected_perturbed_size",
    "params_for_round_epsilon",
    "rr_epsilon",
]


def _log_ratio(a: float, b: float) -> float:
    if a == b:
        return 0.0  # 0/0 included: an impossible answer reveals nothing
    if a == 0.0 or b == 0.0:
        return math.inf
    return abs(math.log(a / b))


def rr_epsilon(p_in: float, p_out: float) -> float:
    """Epsilon of binary randomized response: ``ln max{p_in/p_out, (1-p_out)/(1-p_in)}``.

    Taken in both directions, with ``x/0 = inf`` and ``0/0 = 1`` (an answer impossible under
    both inputs reveals nothing).

    Example:
        >>> round(rr_epsilon(15 / 16, 1 / 16), 3), rr_epsilon(1.0, 0.0), rr_epsilon(0.5, 0.5)
        (2.708, inf, 0.0)
    """
    return max(_log_ratio(p_in, p_out), _log_ratio(1.0 - p_in, 1.0 - p_out))


def epsilon_round(params: DoubleRRParams) -> float:
    """One round: ``ln max{P5/P6, (1 - P6)/(1 - P5)}``.

    Example:
        >>> round(epsilon_round(PRESETS["cpp2"]), 3)
        2.019
    """
    return rr_epsilon(params.p5, params.p6)


def epsilon_long_term(params: DoubleRRParams) -> float:
    """Any number of rounds with the memo: ``ln max{p1/p2, (1 - p2)/(1 - p1)}``.

    Example:
        >>> round(epsilon_long_term(PRESETS["cpp2"]), 3), epsilon_long_term(PRESETS["cpp1"])
        (2.708, inf)
    """
    return rr_epsilon(params.p1, params.p2)


def epsilon_after(params: DoubleRRParams, num_rounds: int) -> float:
    """Exact per-index epsilon of ``num_rounds`` reports sharing one permanent answer.

    A T-round output sequence with ``a`` inclusions has probability
    ``p1 x_a + (1 - p1) y_a`` if j in S and ``p2 x_a + (1 - p2) y_a`` otherwise, where
    ``x_a = p3^a (1 - p3)^(T-a)`` and ``y_a = p4^a (1 - p4)^(T-a)``; the epsilon is the
    largest absolute log-ratio over ``a = 0..T`` (computed in log space). Rounds in which
    j was not in U only lower it, so T = the rounds a client took part in is an upper bound.

    Example:
        >>> params = PRESETS["cpp2"]
        >>> epsilon_after(params, 1) == epsilon_round(params)
        True
        >>> round(epsilon_after(params, 50), 3)
        2.708
    """
    if isinstance(num_rounds, bool) or not isinstance(num_rounds, int) or num_rounds < 0:
        raise ValueError(f"num_rounds={num_rounds!r} must be a non-negative int")
    if num_rounds == 0:
        return 0.0
    a = np.arange(num_rounds + 1, dtype=np.float64)
    b = num_rounds - a
    with np.errstate(divide="ignore", invalid="ignore"):
        log_x = _xlogy(a, params.p3) + _xlogy(b, 1.0 - params.p3)
        log_y = _xlogy(a, params.p4) + _xlogy(b, 1.0 - params.p4)
        log_in = np.logaddexp(np.log(params.p1) + log_x, np.log1p(-params.p1) + log_y)
        log_out = np.logaddexp(np.log(params.p2) + log_x, np.log1p(-params.p2) + log_y)
        possible = np.isfinite(log_in) | np.isfinite(log_out)
        if np.any(possible & (np.isneginf(log_in) | np.isneginf(log_out))):
            return math.inf
        gaps = np.abs(log_in - log_out)[possible]
    return float(gaps.max()) if gaps.size else 0.0


def _xlogy(count: np.ndarray, probability: float) -> np.ndarray:
    """``count * ln(probability)`` with ``0 * ln 0 = 0``."""
    return np.where(count == 0, 0.0, count * np.log(probability))


def params_for_round_epsilon(epsilon: float) -> DoubleRRParams:
    """Symmetric parameters (``p1 = p3 = p``, ``p2 = p4 = 1 - p``) with eps_round = epsilon.

    Derivation: with q = 1 - p, ``P5 = p(p - q) + q = 1 - 2pq`` and ``P6 = q(p - q) + q =
    2pq``, so ``P5 + P6 = 1`` and eps_round = ``ln(P5/P6) = ln((1 - 2pq) / (2pq))``. Hence
    ``2pq = 1/(1 + e^eps)``, ``p(1 - p) = 1/(2(1 + e^eps))`` and, taking the root above 1/2,
    ``p = (1 + sqrt(1 - 2/(1 + e^eps)))/2 = (1 + sqrt(tanh(eps/2)))/2``. Check: eps =
    ln(226/30) gives tanh(eps/2) = 49/64 and p = 15/16 (cpp2). eps = 1 gives
    p = 0.83990 (eps_inf = ln(p/q) = 1.657); eps = 2.7 gives p = 0.96745 (eps_inf = 3.392).

    Raises:
        ValueError: If epsilon is not a positive finite number.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not (
        0.0 < epsilon < math.inf
    ):
        raise ValueError(f"epsilon={epsilon!r} must be a positive finite number")
    return DoubleRRParams.symmetric((1.0 + math.sqrt(math.tanh(epsilon / 2.0))) / 2.0)


PRESETS: Mapping[str, DoubleRRParams] = types.MappingProxyType({
    "cpp1": DoubleRRParams.symmetric(1.0),  # S'' = S: no privacy
    "cpp2": DoubleRRParams.symmetric(15 / 16),  # released code: eps_round 2.019, eps_inf 2.708
    "cpp3": DoubleRRParams.symmetric(7 / 8),  # 1.273, 1.946
    "cpp4": DoubleRRParams.symmetric(3 / 4),  # 0.511, 1.099
    "cpp5": DoubleRRParams(p1=1.0, p2=1.0, p3=1.0, p4=1.0),  # S'' = U: 0, 0
    "eps1": params_for_round_epsilon(1.0),  # 1.000, 1.657
    "eps2": DoubleRRParams.symmetric(15 / 16),  # = cpp2
    "eps2.7": params_for_round_epsilon(2.7),  # 2.700, 3.392
})
"""Named parameter sets: Niu et al.'s ``cpp1``..``cpp5``; ``eps*`` named by per-round epsilon."""


def expected_perturbed_size(num_real: int, num_union: int, p5: float, p6: float) -> float:
    """Expected ``|S''| = |S| P5 + (|U| - |S|) P6`` rows downloaded.

    ``num_real`` counts the real items inside U.

    Example:
        >>> params = PRESETS["cpp2"]
        >>> round(expected_perturbed_size(100, 1000, params.p5, params.p6), 2)
        193.75
    """
    if not 0 <= num_real <= num_union:
        raise ValueError(f"num_real={num_real} must lie in [0, num_union={num_union}]")
    return num_real * p5 + (num_union - num_real) * p6


@dataclass(frozen=True)
class ClientPrivacy:
    """One client's privacy report: rounds taken part in and the epsilons (per index)."""

    client_id: int
    rounds: tuple[int, ...]
    epsilon_round: float
    epsilon_spent: float
    epsilon_long_term: float


@dataclass(frozen=True)
class PrivacyLedger:
    """Per client, the rounds it reported a perturbed set in; frozen, ``record`` returns a
    new ledger and never changes this one. One parameter set for every client and round.

    Example:
        >>> ledger = PrivacyLedger(PRESETS["cpp2"]).record(1, [4, 7]).record(2, [4])
        >>> report = ledger.report(4)
        >>> report.rounds, round(report.epsilon_round, 3), round(report.epsilon_long_term, 3)
        ((1, 2), 2.019, 2.708)
    """

    params: DoubleRRParams
    rounds: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        frozen = {int(c): tuple(int(r) for r in rs) for c, rs in self.rounds.items()}
        object.__setattr__(self, "rounds", types.MappingProxyType(frozen))

    def record(self, server_round: int, client_ids: Iterable[int]) -> PrivacyLedger:
        """A new ledger with ``server_round`` added to each client's rounds.

        Raises:
            ValueError: If ``server_round`` is not a non-negative int, or a client already
                has that round recorded.
        """
        if isinstance(server_round, bool) or not isinstance(server_round, int | np.integer) or (
            server_round < 0
        ):
            raise ValueError(
                f"server_round={server_round!r} must be a non-negative int; the ledger is "
                "unchanged"
            )
        rounds = dict(self.rounds)
        for cid in sorted({int(c) for c in client_ids}):
            previous = rounds.get(cid, ())
            if server_round in previous:
                raise ValueError(
                    f"client {cid} already has round {server_round} recorded; "
                    "the ledger is unchanged"
                )
            rounds[cid] = tuple(sorted((*previous, int(server_round))))
        return PrivacyLedger(self.params, rounds)

    def report(self, client_id: int) -> ClientPrivacy:
        """The client's epsilons: per round, after its rounds so far, and the long-term bound."""
        rounds = self.rounds.get(int(client_id), ())
        return ClientPrivacy(
            client_id=int(client_id),
            rounds=rounds,
            epsilon_round=epsilon_round(self.params),
            epsilon_spent=epsilon_after(self.params, len(rounds)),
            epsilon_long_term=epsilon_long_term(self.params),
        )

    def reports(self) -> list[ClientPrivacy]:
        """Reports of every client recorded, by client id."""
        return [self.report(cid) for cid in sorted(self.rounds)]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat numpy arrays: params ``[p1, p2, p3, p4]``, client ids, round counts, rounds."""
        ids = sorted(self.rounds)
        return {
            "params": np.array([self.params.p1, self.params.p2, self.params.p3, self.params.p4]),
            "client_ids": np.array(ids, dtype=np.int64),
            "num_rounds": np.array([len(self.rounds[c]) for c in ids], dtype=np.int64),
            "rounds": np.array([r for c in ids for r in self.rounds[c]], dtype=np.int64),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray]) -> PrivacyLedger:
        """Inverse of :meth:`state_dict`.

        Raises:
            ValueError: On a missing key or inconsistent lengths.
        """
        missing = {"params", "client_ids", "num_rounds", "rounds"} - set(state)
        if missing:
            raise ValueError(f"ledger state lacks {sorted(missing)}; the ledger is not restored")
        params = np.asarray(state["params"], dtype=np.float64).reshape(-1)
        if params.size != 4:
            raise ValueError(
                f"ledger state 'params' has {params.size} values, expected [p1, p2, p3, p4]; "
                "the ledger is not restored"
            )
        p1, p2, p3, p4 = (float(p) for p in params)
        ids = np.asarray(state["client_ids"], dtype=np.int64)
        counts = np.asarray(state["num_rounds"], dtype=np.int64)
        flat = np.asarray(state["rounds"], dtype=np.int64)
        if ids.shape != counts.shape or counts.sum() != flat.size or np.any(counts < 0):
            raise ValueError(
                f"ledger state has {ids.size} client ids, {counts.size} round counts summing "
                f"to {int(counts.sum())} and {flat.size} rounds, expected matching lengths; "
                "the ledger is not restored"
            )
        chunks = np.split(flat, np.cumsum(counts)[:-1]) if ids.size else []
        rounds = {int(c): tuple(chunk.tolist()) for c, chunk in zip(ids, chunks, strict=True)}
        return cls(DoubleRRParams(p1=p1, p2=p2, p3=p3, p4=p4), rounds)
