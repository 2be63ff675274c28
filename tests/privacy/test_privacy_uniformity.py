"""Masked vectors are statistically indistinguishable from uniform ring elements."""

from __future__ import annotations

import numpy as np

from fedkit.privacy.secagg import SecAggConfig, Stage, decode_message, run_secagg

# chi-square critical value for 255 degrees of freedom at p = 1e-6 (Wilson-Hilferty):
# 255 * (1 - 2/(9*255) + 4.753 * sqrt(2/(9*255)))**3 = 377.2
CHI2_255_P1E6 = 377.2


def _chi_square(values: np.ndarray) -> float:
    counts = np.bincount(values, minlength=256).astype(np.float64)
    expected = values.size / 256
    return float(((counts - expected) ** 2 / expected).sum())


def _ks_uniform(u: np.ndarray) -> float:
    u = np.sort(u)
    n = u.size
    grid = np.arange(1, n + 1) / n
    return float(max(np.max(grid - u), np.max(u - (grid - 1 / n))))


def _masked_vectors(bits: int) -> np.ndarray:
    captured = []

    def capture(stage, direction, cid, data):
        if stage is Stage.MASKED_INPUT and direction == "up":
            captured.append(np.array(decode_message(data).masked))
        return data

    n, m = 6, 8191
    config = SecAggConfig(num_clients=n, vector_length=m, threshold=4, bits=bits)
    inputs = [np.zeros(m)] * n  # worst case: constant plaintext
    run_secagg(inputs, None, config, tamper_fn=capture, rng=np.random.default_rng(0))
    return np.concatenate(captured)


def test_masked_uint32_vectors_look_uniform():
    values = _masked_vectors(32)  # 6 * 8192 = 49152 ring elements
    top, low = (values >> 24).astype(np.int64), (values & 0xFF).astype(np.int64)
    assert _chi_square(top) < CHI2_255_P1E6
    assert _chi_square(low) < CHI2_255_P1E6
    # Kolmogorov-Smirnov against U[0, 1): critical value sqrt(-ln(1e-6 / 2) / (2 n))
    d = _ks_uniform(values.astype(np.float64) / 2.0**32)
    assert d < np.sqrt(-np.log(0.5e-6) / (2 * values.size))


def test_masked_uint64_vectors_look_uniform():
    values = _masked_vectors(64)
    assert _chi_square((values >> np.uint64(56)).astype(np.int64)) < CHI2_255_P1E6
    assert _chi_square((values & np.uint64(0xFF)).astype(np.int64)) < CHI2_255_P1E6


def test_the_test_has_power_on_unmasked_encodings():
    # the same statistic on the quantised (unmasked) zeros is enormous
    plain = np.zeros(49152, dtype=np.uint32)
    assert _chi_square((plain >> 24).astype(np.int64)) > 100 * CHI2_255_P1E6
