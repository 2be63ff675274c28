"""Double randomized response over the union: a client's perturbed index set S''.

For each j in the union U: a **permanent** answer S' (memoised per client, as in RAPPOR),
j in S' w.p. ``p1`` if j in S, ``p2`` otherwise; then an **instantaneous** answer S'' (fresh
each round), j in S'' w.p. ``p3`` if j in S', ``p4`` otherwise. Overall
``P5 = p1 (p3 - p4) + p4`` and ``P6 = p2 (p3 - p4) + p4``; the client trains on S ∩ S'' (Niu et
al., MobiCom 2020; the authors' ``client_plain_functions.double_randomized_response``).
A memoised answer never changes; losing the memo voids the long-term bound. Draws are
deterministic given the ``numpy.random.Generator``: new items, then union items, each in
increasing id order. See docs/submodel.md, "Double randomized response".

References:
    Ú. Erlingsson, V. Pihur, A. Korolova, "RAPPOR", CCS 2014 (permanent + instantaneous RR).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from fedkit.submodel.murmur import as_keys

__all__ = [
    "DoubleRRParams",
    "PermanentMemo",
    "instantaneous_answer",
    "permanent_answer",
    "perturb",
    "succinct_set",
]


def _check_probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r} must be a probability in [0, 1]")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class DoubleRRParams:
    """The four probabilities of double randomized response.

    Args:
        p1: P(j in S' | j in S), permanent.
        p2: P(j in S' | j not in S), permanent.
        p3: P(j in S'' | j in S'), instantaneous.
        p4: P(j in S'' | j not in S'), instantaneous.

    Raises:
        ValueError: If a probability lies outside ``[0, 1]``.

    Example:
        >>> params = DoubleRRParams(p1=15 / 16, p2=1 / 16, p3=15 / 16, p4=1 / 16)
        >>> round(params.p5, 4), round(params.p6, 4)
        (0.8828, 0.1172)
    """

    p1: float
    p2: float
    p3: float
    p4: float

    def __post_init__(self) -> None:
        for name in ("p1", "p2", "p3", "p4"):
            object.__setattr__(self, name, _check_probability(name, getattr(self, name)))

    @classmethod
    def symmetric(cls, keep: float) -> DoubleRRParams:
        """``p1 = p3 = keep`` and ``p2 = p4 = 1 - keep`` (the shape of every ``cpp`` preset)."""
        keep = _check_probability("keep", keep)
        return cls(p1=keep, p2=1.0 - keep, p3=keep, p4=1.0 - keep)

    @property
    def p5(self) -> float:
        """``P(j in S'' | j in S) = p1 (p3 - p4) + p4``."""
        return self.p1 * (self.p3 - self.p4) + self.p4

    @property
    def p6(self) -> float:
        """``P(j in S'' | j not in S) = p2 (p3 - p4) + p4``."""
        return self.p2 * (self.p3 - self.p4) + self.p4


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (numpy 2's hash-based ``unique`` is slower on large arrays)."""
    values = np.sort(values)
    keep = np.empty(values.size, dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _sorted_unique(np.concatenate([a, b]))


def _id_set(ids: object, name: str) -> np.ndarray:
    """Sorted unique ``int64`` ids (ids must fit in int64)."""
    keys = _sorted_unique(as_keys(ids, name))
    if keys.size and keys[-1] > np.iinfo(np.int64).max:
        raise ValueError(f"{name} contain {int(keys[-1])}, expected ids below 2^63")
    return keys.astype(np.int64)


@dataclass(frozen=True, eq=False)
class PermanentMemo:
    """A client's memoised permanent answers: sorted, disjoint ``int64`` id arrays.

    ``included``: items whose permanent answer is "in S'"; ``excluded``: "not in S'".
    Serialise with :meth:`state_dict` (``{"in": ..., "out": ...}``, e.g. for Flower's
    ``context.state``) and restore with :meth:`from_state_dict`.
    """

    included: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    excluded: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        for name in ("included", "excluded"):
            array = np.asarray(getattr(self, name))
            if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
                raise ValueError(
                    f"memo array {name!r} has shape {array.shape} and dtype {array.dtype}, "
                    "expected a 1-D integer array; the memo is not restored"
                )
            array = array.astype(np.int64)  # a private copy: never aliases the caller's
            if array.size and (array[0] < 0 or np.any(np.diff(array) <= 0)):
                raise ValueError(
                    f"memo array {name!r} must hold sorted, unique, non-negative ids; "
                    "the memo is not restored"
                )
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        if np.intersect1d(self.included, self.excluded, assume_unique=True).size:
            raise ValueError("memo arrays 'in' and 'out' overlap; the memo is not restored")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PermanentMemo):
            return NotImplemented
        return np.array_equal(self.included, other.included) and np.array_equal(
            self.excluded, other.excluded
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def seen(self) -> np.ndarray:
        """Every item with a permanent answer, sorted."""
        return _union(self.included, self.excluded)

    def state_dict(self) -> dict[str, np.ndarray]:
        """``{"in": included, "out": excluded}`` as fresh ``int64`` arrays."""
        return {"in": self.included.copy(), "out": self.excluded.copy()}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, object]) -> PermanentMemo:
        """Inverse of :meth:`state_dict`; validates the arrays.

        Raises:
            ValueError: On a missing key or an invalid array.
        """
        missing = {"in", "out"} - set(state)
        if missing:
            raise ValueError(
                f"memo state lacks {sorted(missing)}, expected keys 'in' and 'out'; "
                "the memo is not restored"
            )
        return cls(np.asarray(state["in"]), np.asarray(state["out"]))


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng has type {type(rng).__name__}, expected numpy.random.Generator")
    return rng


def permanent_answer(
    real_set: object,
    union: object,
    memo: PermanentMemo,
    params: DoubleRRParams,
    rng: np.random.Generator,
) -> tuple[np.ndarray, PermanentMemo]:
    """The permanent answer S' ∩ U, drawing answers only for union items not yet memoised.

    Args:
        real_set: The client's real index set S.
        union: The round's union U.
        memo: The permanent answers so far (empty on the client's first round).
        params: Uses ``p1`` (item in S) and ``p2`` (item not in S).
        rng: One uniform per new item, in increasing id order.

    Returns:
        ``(permanent, new_memo)``: the sorted ids of U answered "in", and the memo extended
        by U's new items (old answers unchanged).

    References:
        Niu et al.'s code, ``client_plain_functions.generate_perturbed_item_ids`` (permanent
        stage, memoised per client); Erlingsson et al., "RAPPOR", CCS 2014 (memoisation).
    """
    real, items = _id_set(real_set, "real_set"), _id_set(union, "union")
    new = np.setdiff1d(items, memo.seen, assume_unique=True)
    keep = np.where(np.isin(new, real, assume_unique=True), params.p1, params.p2)
    answer = _check_rng(rng).random(new.size) < keep
    new_memo = PermanentMemo(
        _union(memo.included, new[answer]), _union(memo.excluded, new[~answer])
    )
    return np.intersect1d(items, new_memo.included, assume_unique=True), new_memo


def instantaneous_answer(
    permanent: object, union: object, params: DoubleRRParams, rng: np.random.Generator
) -> np.ndarray:
    """The fresh answer S'' ⊆ U: j in S'' w.p. ``p3`` if j in S', else ``p4``.

    Args:
        permanent: The permanent answer S' (only its items in U matter).
        union: The round's union U.
        params: Uses ``p3`` and ``p4``.
        rng: One uniform per union item, in increasing id order.

    Returns:
        The sorted ``int64`` ids of S''.
    """
    items = _id_set(union, "union")
    answered_in = np.isin(items, _id_set(permanent, "permanent"), assume_unique=True)
    keep = np.where(answered_in, params.p3, params.p4)
    return items[_check_rng(rng).random(items.size) < keep]


def perturb(
    real_set: object,
    union: object,
    memo: PermanentMemo,
    params: DoubleRRParams,
    rng: np.random.Generator,
) -> tuple[np.ndarray, PermanentMemo]:
    """Both stages: ``(S'', new_memo)``; S'' is what the client reports and downloads.

    Example:
        >>> params = DoubleRRParams.symmetric(15 / 16)
        >>> rng = np.random.default_rng(0)
        >>> reported, memo = perturb([1, 2, 3], np.arange(10), PermanentMemo(), params, rng)
        >>> memo.seen.tolist() == list(range(10))
        True
    """
    permanent, new_memo = permanent_answer(real_set, union, memo, params, rng)
    return instantaneous_answer(permanent, union, params, rng), new_memo


def succinct_set(real_set: object, perturbed: object) -> np.ndarray:
    """The rows a client trains: S ∩ S'', sorted ``int64``."""
    real = _id_set(real_set, "real_set")
    return np.intersect1d(real, _id_set(perturbed, "perturbed"), assume_unique=True)
