"""Fixed-point encoding of real vectors into the ring Z_{2^bits} for secure aggregation.

Client: clip to ``[-clip, clip]`` -> scale by ``scale`` -> stochastic rounding
``floor(y + U[0, 1))`` (unbiased, from an explicit ``np.random.Generator``) -> reduce mod
2^bits. Server: read the ring sum as two's-complement ``int32``/``int64`` and divide by
``scale``. The sum is exact only if it cannot wrap, so :func:`check_headroom` requires
``num_clients * ceil(clip * scale) <= 2^(bits-1) - 1``. See docs/secagg.md, "Encoding".

References:
    Bonawitz et al., CCS 2017, §3 (inputs in Z_R); Gupta et al., "Deep Learning with Limited
    Numerical Precision", ICML 2015 (stochastic rounding).
"""

from __future__ import annotations

import math

import numpy as np

from fedkit.privacy.hazmat.prg import ring_dtype

__all__ = ["HeadroomError", "check_headroom", "dequantize", "max_scale", "quantize"]

_SIGNED = {32: np.int32, 64: np.int64}


class HeadroomError(ValueError):
    """``num_clients * range`` does not fit in the signed half of the ring."""


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    if value <= 0:
        raise ValueError(f"{name}={value!r} must be positive")


def check_headroom(num_clients: int, clip: float, scale: float, bits: int) -> None:
    """Refuse parameters for which the sum of ``num_clients`` encodings could wrap the ring.

    Args:
        num_clients: Largest number of inputs summed.
        clip: Bound on the absolute value of every input element.
        scale: Fixed-point scale (quantisation step is ``1 / scale``).
        bits: Ring size in bits (32 or 64).

    Raises:
        HeadroomError: If ``num_clients * ceil(clip * scale) > 2^(bits-1) - 1``.
        ValueError: On a non-positive or non-finite argument.

    Example:
        >>> check_headroom(1000, 1.0, 2.0**21, 32)
        >>> check_headroom(1000, 1.0, 2.0**22, 32)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        HeadroomError: ...
    """
    ring_dtype(bits)
    if isinstance(num_clients, bool) or not isinstance(num_clients, int) or num_clients < 1:
        raise ValueError(f"num_clients={num_clients!r} must be a positive integer")
    _check_positive("clip", clip)
    _check_positive("scale", scale)
    per_client = math.ceil(clip * scale)
    limit = (1 << (bits - 1)) - 1
    if num_clients * per_client > limit:
        raise HeadroomError(
            f"sum of num_clients={num_clients} inputs, each in [-{per_client}, {per_client}] "
            f"(range clip={clip} x scale={scale}), needs {num_clients * per_client} but the "
            f"ring Z_2^{bits} holds signed values up to {limit}; lower scale or clip, or use "
            f"bits=64"
        )


def max_scale(num_clients: int, clip: float, bits: int) -> float:
    """Return the largest power-of-two scale that passes :func:`check_headroom`.

    Raises:
        HeadroomError: If even ``scale = 1`` does not fit.

    Example:
        >>> max_scale(1000, 1.0, 32) == 2.0**21
        True
    """
    _check_positive("clip", clip)
    limit = (1 << (bits - 1)) - 1
    exponent = math.floor(math.log2(limit / (num_clients * clip)))
    while exponent > -1074:
        scale = math.ldexp(1.0, exponent)
        if num_clients * math.ceil(clip * scale) <= limit:
            break
        exponent -= 1
    if exponent < 0:
        check_headroom(num_clients, clip, 1.0, bits)
    return math.ldexp(1.0, exponent)


def quantize(
    x: np.ndarray, *, clip: float, scale: float, bits: int, rng: np.random.Generator
) -> np.ndarray:
    """Clip, scale and stochastically round ``x`` into Z_{2^bits}.

    Args:
        x: Real vector (any float dtype; not modified).
        clip: Values are clipped to ``[-clip, clip]``.
        scale: Fixed-point scale.
        bits: 32 (``uint32``) or 64 (``uint64``).
        rng: Source of the (non-secret) rounding noise.

    Returns:
        A new ring vector ``floor(clip(x) * scale + U) mod 2^bits``.

    Raises:
        ValueError: If ``x`` contains NaN or infinity.

    References:
        Bonawitz et al., CCS 2017, §3; Gupta et al., ICML 2015 (stochastic rounding).
    """
    dtype = ring_dtype(bits)
    values = np.asarray(x, dtype=np.float64)
    # one reduction instead of a boolean array; confirm element-wise only when it is not finite
    if not np.isfinite(np.sum(values)) and not np.all(np.isfinite(values)):
        raise ValueError("input vector contains NaN or infinity; cannot quantise it")
    y = np.clip(values, -clip, clip)
    y *= scale
    y += rng.random(y.shape)
    np.floor(y, out=y)
    # float -> int64 is exact here (|y| < 2^63 by the headroom rule); the cast to the
    # unsigned ring type wraps modulo 2^bits (two's complement)
    return y.astype(np.int64).astype(dtype)


def dequantize(ring_sum: np.ndarray, *, scale: float, bits: int) -> np.ndarray:
    """Read a ring vector as signed integers (two's complement) and divide by ``scale``.

    Example:
        >>> dequantize(np.array([2**32 - 4, 4], dtype=np.uint32), scale=4.0, bits=32)
        array([-1.,  1.])
    """
    ring = np.asarray(ring_sum, dtype=ring_dtype(bits))
    return ring.view(_SIGNED[bits]).astype(np.float64) / scale
