"""Validators shared by the availability models (private).

Every check raises a ``ValueError`` that names the field, the bad value and what was
expected, and returns the value converted to a plain Python type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "check_int",
    "check_keys",
    "check_probability",
    "check_real",
    "check_round",
    "check_sequence",
]


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float | np.integer | np.floating)


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` as an ``int``; raise naming ``name`` unless it is an integer >= minimum."""
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} = {value!r}, expected an integer >= {minimum}")
    return int(value)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` inside the given interval, or raise naming it."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
    if not _is_real(value) or not math.isfinite(float(value)):
        raise ValueError(f"{name} = {value!r}, expected a finite number in {interval}")
    x = float(value)
    too_low = low is not None and (x <= low if low_open else x < low)
    too_high = high is not None and (x >= high if high_open else x > high)
    if too_low or too_high:
        raise ValueError(f"{name} = {value!r}, expected a number in {interval}")
    return x


def check_probability(name: str, value: Any) -> float:
    """Return ``value`` as a float in [0, 1], or raise naming ``name``."""
    if not _is_real(value) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} = {value!r}, expected a probability in [0, 1]")
    return float(value)


def check_sequence(name: str, value: Any) -> Sequence[Any]:
    """Return ``value`` as a list unless it is not a list/tuple/1-D array (then raise)."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return value.tolist()
    if not isinstance(value, list | tuple):
        raise ValueError(f"{name} = {value!r}, expected a list")
    return list(value)


def check_round(server_round: Any) -> int:
    """Return ``server_round`` as an ``int`` or raise unless it is an integer >= 1."""
    if not _is_int(server_round) or server_round < 1:
        raise ValueError(
            f"server_round = {server_round!r}, expected an integer >= 1 (rounds are 1-based)"
        )
    return int(server_round)


def check_keys(model: str, params: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raise naming the first unknown key of ``params``, listing the ``valid`` ones."""
    allowed = sorted(valid)
    for key in params:
        if key not in allowed:
            listed = ", ".join(allowed) if allowed else "none"
            raise ValueError(
                f"availability model {model!r}: unknown parameter {key!r}, expected one of: "
                f"{listed}"
            )
