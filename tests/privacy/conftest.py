"""Fixtures of the privacy tests: the plaintext reference of a secure-aggregation round."""

from __future__ import annotations

import numpy as np
import pytest

from fedkit.privacy.quantize import quantize
from fedkit.privacy.secagg import SecAggConfig


def expected_ring_sum(
    vectors: dict[int, np.ndarray],
    weights: dict[int, float],
    config: SecAggConfig,
    survivors: tuple[int, ...],
    seed: int,
) -> np.ndarray:
    """Sum of the survivors' quantised vectors, with the same rounding draws as ``run_secagg``.

    ``run_secagg(..., rng=np.random.default_rng(seed))`` gives client ``ids[i]`` (sorted) the
    i-th spawned generator and the client draws from it once, in ``quantize``.
    """
    ids = sorted(vectors)
    children = dict(zip(ids, np.random.default_rng(seed).spawn(len(ids)), strict=True))
    total = np.zeros(config.wire_length, dtype=np.dtype(f"<u{config.bits // 8}"))
    for cid in survivors:
        fraction = float(weights[cid]) / config.max_weight
        scaled = np.clip(np.asarray(vectors[cid], dtype=np.float64), -config.clip, config.clip)
        plain = np.append(scaled * fraction, fraction)
        total += quantize(
            plain,
            clip=config.element_bound,
            scale=config.resolved_scale,
            bits=config.bits,
            rng=children[cid],
        )
    return total


def plaintext_weighted_sum(vectors, weights, config: SecAggConfig, survivors) -> np.ndarray:
    """The float weighted sum ``sum w_u clip(x_u)`` over the survivors."""
    return sum(
        (np.clip(np.asarray(vectors[c], np.float64), -config.clip, config.clip) * weights[c])
        for c in survivors
    )


@pytest.fixture(scope="session")
def reference():
    """``(expected_ring_sum, plaintext_weighted_sum)``."""
    return expected_ring_sum, plaintext_weighted_sum
