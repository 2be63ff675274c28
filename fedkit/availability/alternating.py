"""FedLaAvg's class-correlated diurnal schedule: groups of classes take turns being online.

A client belongs to the group of its dominant label; group g is online in round r iff
``(r - 1) mod sum(lengths)`` falls in ``[sum(lengths[:g]), sum(lengths[:g + 1]))``. Defaults:
groups ``[[0..4], [5..9]]``, lengths ``[E, int(alpha * E)] = [10, 5]`` (``int`` truncates
as FedLaAvg's ``diurnal_available``; its round 0 is fedkit's round 1). Every client is online
at least once in every period, FedLaAvg's assumption with E = period. Deterministic:
``probabilities()`` is ``None``. See docs/availability.md, "Models".

References:
    Y. Yan, C. Niu et al., "Federated Optimization under Intermittent Client Availability",
    INFORMS J. Computing 2023 (arXiv:2002.07399), Sec. 6 (CIFAR-10, E = 10, alpha = 0.5); code
    github.com/mikudehuane/FedLaAvg ``train/prepare_clients.py::diurnal_available``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fedkit.availability._checks import (
    check_int,
    check_keys,
    check_real,
    check_round,
    check_sequence,
)
from fedkit.availability.base import ClientInfo

__all__ = ["AlternatingAvailability"]

_DEFAULT_GROUPS = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))


@dataclass(frozen=True, kw_only=True, eq=False)
class AlternatingAvailability:
    """Groups of classes online in turn (FedLaAvg's "time" strategy).

    Give either ``lengths`` (one slot length per group) or ``period_e`` and ``alpha``
    (two groups only: ``lengths = [period_e, int(alpha * period_e)]``; defaults 10 and 0.5).

    Args:
        client_info: The clients; each must hold an example, its dominant label in a group.
        groups: Disjoint, non-empty lists of class indices in ``[0, L - 1]``.
        lengths: Slot length of each group in rounds, each >= 1.
        period_e: FedLaAvg's E, the slot of group 0 (>= 1).
        alpha: FedLaAvg's alpha, the ratio of group 1's slot to E (> 0).

    Raises:
        ValueError: For invalid groups or lengths, both ``lengths`` and ``period_e``/``alpha``,
            a zero-length slot, or a client whose dominant label is in no group.

    Example:
        >>> info = ClientInfo.one_class_per_client([0, 7], num_classes=10)
        >>> m = AlternatingAvailability(client_info=info)
        >>> [m.available(r).tolist() for r in (1, 10, 11, 15, 16)]
        [[True, False], [True, False], [False, True], [False, True], [True, False]]
    """

    NAME: ClassVar[str] = "alternating"
    SPEC_KEYS: ClassVar[tuple[str, ...]] = ("groups", "lengths", "period_e", "alpha")

    client_info: ClientInfo = field(repr=False)
    groups: Sequence[Sequence[int]] = _DEFAULT_GROUPS
    lengths: Sequence[int] | None = None
    period_e: int | None = None
    alpha: float | None = None
    _group_of_client: np.ndarray = field(init=False, repr=False)
    _slot_ends: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        num_classes = self.client_info.num_classes
        groups = self._check_groups(num_classes)
        lengths = self._resolve_lengths(len(groups))
        self.client_info.require_labels(self.NAME)
        group_of_class = np.full(num_classes, -1, dtype=np.int64)
        for g, classes in enumerate(groups):
            group_of_class[list(classes)] = g
        group_of_client = group_of_class[self.client_info.dominant_label]
        if (group_of_client < 0).any():
            i = int(np.flatnonzero(group_of_client < 0)[0])
            raise ValueError(
                f"alternating: client {i} has dominant label "
                f"{int(self.client_info.dominant_label[i])}, which is in no group of "
                f"groups = {[list(g) for g in groups]}; expected the groups to cover it"
            )
        group_of_client.flags.writeable = False
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "_group_of_client", group_of_client)
        object.__setattr__(self, "_slot_ends", np.cumsum(lengths))

    def _check_groups(self, num_classes: int) -> tuple[tuple[int, ...], ...]:
        raw = check_sequence("alternating.groups", self.groups)
        if not raw:
            raise ValueError("alternating.groups = [], expected at least one list of classes")
        groups, seen = [], set()
        for g, group in enumerate(raw):
            classes = check_sequence(f"alternating.groups[{g}]", group)
            if not classes:
                raise ValueError(f"alternating.groups[{g}] = [], expected a non-empty list")
            for c in classes:
                check_int(f"alternating.groups[{g}] entry", c, 0)
                if c >= num_classes or c in seen:
                    problem = "is repeated" if c in seen else f">= num_classes = {num_classes}"
                    raise ValueError(
                        f"alternating.groups[{g}] holds class {c}, which {problem}; expected "
                        f"disjoint groups of classes in [0, {num_classes - 1}]"
                    )
                seen.add(int(c))
            groups.append(tuple(int(c) for c in classes))
        return tuple(groups)

    def _resolve_lengths(self, num_groups: int) -> tuple[int, ...]:
        if self.lengths is not None:
            if self.period_e is not None or self.alpha is not None:
                raise ValueError(
                    "alternating: got lengths and period_e/alpha, expected either lengths "
                    "(one per group) or period_e and alpha (two groups)"
                )
            values = check_sequence("alternating.lengths", self.lengths)
            if len(values) != num_groups:
                raise ValueError(
                    f"alternating.lengths = {values!r} has {len(values)} entries, expected one "
                    f"per group ({num_groups})"
                )
            return tuple(check_int(f"alternating.lengths[{g}]", v, 1) for g, v in enumerate(values))
        if num_groups != 2:
            raise ValueError(
                f"alternating: {num_groups} groups but no lengths; period_e and alpha define "
                "two slots, expected lengths (one per group)"
            )
        e = check_int("alternating.period_e", 10 if self.period_e is None else self.period_e, 1)
        alpha = check_real(
            "alternating.alpha", 0.5 if self.alpha is None else self.alpha, low=0.0, low_open=True
        )
        night = int(alpha * e)
        if night < 1:
            raise ValueError(
                f"alternating: int(alpha * period_e) = int({alpha} * {e}) = 0 rounds for group "
                "1, expected alpha * period_e >= 1"
            )
        return (e, night)

    @property
    def num_clients(self) -> int:
        """N, the number of clients."""
        return self.client_info.num_clients

    @property
    def period(self) -> int:
        """Rounds per period, ``sum(lengths)``."""
        return int(self._slot_ends[-1])

    @property
    def group_of_client(self) -> np.ndarray:
        """``(N,)`` the group index of each client."""
        return self._group_of_client.copy()

    def online_group(self, server_round: int) -> int:
        """Index of the group online in round ``server_round``."""
        position = (check_round(server_round) - 1) % self.period
        return int(np.searchsorted(self._slot_ends, position, side="right"))

    @classmethod
    def from_spec(
        cls, params: Mapping[str, Any], client_info: ClientInfo, *, seed: int
    ) -> AlternatingAvailability:
        """Build from scenario parameters; ``seed`` is unused (deterministic schedule)."""
        check_keys(cls.NAME, params, cls.SPEC_KEYS)
        return cls(client_info=client_info, **params)

    def available(self, server_round: int) -> np.ndarray:
        return self._group_of_client == self.online_group(server_round)

    def probabilities(self, server_round: int) -> None:
        check_round(server_round)
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.NAME,
            "groups": [list(g) for g in self.groups],
            "lengths": list(self.lengths or ()),
        }
