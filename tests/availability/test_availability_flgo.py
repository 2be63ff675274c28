"""FLGo's modes: hand-computed probabilities on a three-client federation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedkit.availability import FLGO_DEFAULT_BETA, ClientInfo, FLGoAvailability
from fedkit.seeding import numpy_rng

# L = 4. client 0: labels {0, 2}, size 3; client 1: {3}, size 5; client 2: {1, 2, 3}, size 12.
HIST = np.array([[2, 0, 1, 0], [0, 0, 0, 5], [0, 4, 4, 4]])
INFO = ClientInfo(label_histograms=HIST, sizes=HIST.sum(axis=1))


def probs(mode, beta=None, server_round=1, seed=0, info=INFO):
    return FLGoAvailability(client_info=info, mode=mode, beta=beta, seed=seed).probabilities(
        server_round
    )


@pytest.mark.parametrize(
    ("mode", "beta", "expected"),
    [
        ("IDL", None, [1.0, 1.0, 1.0]),
        ("YMF", 0.1, [0.9, 0.1 * 3 / 3 + 0.9, 0.1 * 1 / 3 + 0.9]),  # min labels 0, 3, 1
        ("YMF", 0.6, [0.4, 1.0, 0.6]),
        ("MDF", 1.0, [3 / 12, 5 / 12, 1.0]),
        ("MDF", 1e-4, [(3 / 12) ** 1e-4, (5 / 12) ** 1e-4, 1.0]),
        ("LDF", 0.5, [1.0, math.sqrt(3 / 5), 0.5]),
        ("YFF", 0.2, [0.2 * 2 / 4 + 0.8, 0.2 * 1 / 4 + 0.8, 0.2 * 3 / 4 + 0.8]),
        ("HOMO", 0.2, [0.8, 0.8, 0.8]),
    ],
)
def test_static_modes_by_hand(mode, beta, expected):
    assert np.allclose(probs(mode, beta), expected)
    assert np.allclose(probs(mode, beta, server_round=77), expected)  # time-invariant


def test_default_betas_are_flgos():
    assert FLGO_DEFAULT_BETA == {"IDL": None, "YMF": 0.1, "MDF": 1e-4, "LDF": 0.5, "YFF": 0.2,
                                 "HOMO": 0.2, "LN": 0.1, "SLN": 0.1, "YC": 0.5}
    for mode, beta in FLGO_DEFAULT_BETA.items():
        assert FLGoAvailability(client_info=INFO, mode=mode).beta == beta
        if mode not in ("LN", "SLN"):
            assert np.allclose(probs(mode), probs(mode, beta))


def test_lognormal_draws_and_spread():
    p = probs("LN", 0.1, seed=3)
    t = numpy_rng(3, "availability-lognormal").lognormal(0.0, -math.log(0.9 - 1e-6), 3)
    assert np.allclose(p, t / t.max()) and p.max() == 1.0
    many = ClientInfo.one_class_per_client(np.zeros(5000, dtype=int), num_classes=1)
    log_p = np.log(probs("LN", 0.1, info=many))
    assert abs(log_p.std() / -math.log(0.9 - 1e-6) - 1) < 0.05  # sigma = -ln(1 - beta)


def test_sin_lognormal_follows_the_24_round_wave():
    q = probs("LN", 0.1, seed=5)  # SLN's q_i is LN's p_i for the same seed
    theta = np.linspace(0, 2 * math.pi, 24)
    for r in (1, 6, 23, 24, 25, 30):
        wave = 0.4 * math.sin(theta[r % 24]) + 0.5
        assert np.allclose(probs("SLN", 0.1, server_round=r, seed=5), wave * q)
    assert np.allclose(probs("SLN", 0.1, server_round=24, seed=5), 0.5 * q)  # theta[0] = 0
    assert np.allclose(probs("SLN", 0.1, server_round=6, seed=5),
                       (0.4 * math.sin(12 * math.pi / 23) + 0.5) * q)


@pytest.mark.parametrize(
    ("server_round", "expected"),
    [
        # position (1 + r mod 24) / 24; windows [min/3, max/3]: c0 [0, 2/3], c1 [1, 1], c2 [1/3, 1]
        (1, [1.0, 0.5, 0.5]),  # 2/24
        (8, [1.0, 0.5, 1.0]),  # 9/24
        (16, [0.5, 0.5, 1.0]),  # 17/24 > 2/3: c0 out
        (23, [0.5, 1.0, 1.0]),  # 24/24 = 1
        (24, [1.0, 0.5, 0.5]),  # 1/24
    ],
)
def test_y_cycle_by_hand(server_round, expected):
    assert np.allclose(probs("YC", 0.5, server_round=server_round), expected)


@pytest.mark.parametrize(
    ("kwargs", "match", "info"),
    [
        ({"mode": "ABC"}, "flgo.mode = 'ABC', expected one of IDL, YMF", INFO),
        ({"mode": "IDL", "beta": 0.1}, "flgo.beta = 0.1, expected no beta for mode IDL", INFO),
        ({"mode": "YMF", "beta": 1.5}, r"flgo.beta \(mode YMF\) = 1.5, expected a number in", INFO),
        ({"mode": "LN", "beta": 1.0}, r"flgo.beta \(mode LN\) = 1.0, expected a number in", INFO),
        ({"mode": "MDF", "beta": -1}, r"flgo.beta \(mode MDF\) = -1, expected a number in", INFO),
        ({"mode": "YC"}, "flgo mode YC: num_classes = 1, expected >= 2",
         ClientInfo.one_class_per_client([0], num_classes=1)),
        ({"mode": "LDF"}, "model 'flgo mode LDF' conditions on labels, but client 0 has no",
         ClientInfo(label_histograms=np.array([[0, 0], [1, 1]]), sizes=np.array([0, 2]))),
    ],
)
def test_invalid_parameters(kwargs, match, info):
    with pytest.raises(ValueError, match=match):
        FLGoAvailability(client_info=info, **kwargs)
