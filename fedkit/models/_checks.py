"""Argument checks shared by the model constructors: validation once, at the boundary."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

__all__ = ["check_input_shape", "check_num_classes"]


def check_num_classes(owner: str, num_classes: object) -> int:
    """Return ``num_classes`` as an int if it is an integer >= 2, else raise a ValueError."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, Integral) or num_classes < 2:
        raise ValueError(f"{owner}: num_classes must be an integer >= 2, got {num_classes!r}")
    return int(num_classes)


def check_input_shape(owner: str, input_shape: object) -> tuple[int, ...]:
    """Return ``input_shape`` as a tuple of positive ints (one sample, no batch axis).

    Raises:
        ValueError: If ``input_shape`` is not a non-empty sequence of positive integers.
    """
    if isinstance(input_shape, str | bytes) or not isinstance(input_shape, Sequence):
        raise ValueError(
            f"{owner}: input_shape must be a tuple of positive integers (one sample, no batch "
            f"axis), got {input_shape!r}"
        )
    dims = tuple(input_shape)
    if not dims or any(isinstance(d, bool) or not isinstance(d, Integral) or d < 1 for d in dims):
        raise ValueError(
            f"{owner}: input_shape must be a non-empty tuple of positive integers (one sample, "
            f"no batch axis), got {input_shape!r}"
        )
    return tuple(int(d) for d in dims)
