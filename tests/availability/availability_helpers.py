"""Shared helpers of the availability tests: a small labelled federation and model specs."""

from __future__ import annotations

import numpy as np

from fedkit.availability import SCENARIO_DIR, ClientInfo

NUM_CLIENTS = 40
NUM_CLASSES = 10


def mixed_client_info(num_clients: int = NUM_CLIENTS, seed: int = 0) -> ClientInfo:
    """Clients with skewed label histograms; every client holds at least one example."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 80, size=num_clients)
    hist = np.stack([rng.multinomial(n, rng.dirichlet(np.full(NUM_CLASSES, 0.3))) for n in sizes])
    return ClientInfo(label_histograms=hist, sizes=hist.sum(axis=1))


def model_specs(num_clients: int = NUM_CLIENTS) -> dict[str, dict]:
    """One spec per model variant, keyed by a test id."""
    specs: dict[str, dict] = {
        "always": {"model": "always"},
        "bernoulli": {"model": "bernoulli", "p": 0.3},
        "bernoulli-list": {
            "model": "bernoulli",
            "probabilities": np.linspace(0.0, 1.0, num_clients).tolist(),
        },
        "class-correlated": {"model": "class-correlated", "p_min": 0.2},
        "fedau-bernoulli": {"model": "fedau", "pattern": "bernoulli", "mean_p": 0.3},
        "fedau-markov": {"model": "fedau", "pattern": "markov", "mean_p": 0.3},
        "fedau-cyclic": {"model": "fedau", "pattern": "cyclic", "mean_p": 0.3, "period": 20},
        "alternating": {"model": "alternating", "period_e": 10, "alpha": 0.5},
        "markov": {"model": "markov", "mean_on": 3, "mean_off": 4},
        "trace": {"model": "trace",
                  "path": str(SCENARIO_DIR.joinpath("traces", "example_trace.json"))},
    }
    for mode in ("IDL", "YMF", "MDF", "LDF", "YFF", "HOMO", "LN", "SLN", "YC"):
        specs[f"flgo-{mode}"] = {"model": "flgo", "mode": mode}
    return specs


DETERMINISTIC = {"always", "alternating", "trace", "flgo-IDL"}
