"""The example Flower apps of examples/ run under Flower's Simulation Engine (``flwr run``),
2 rounds each: the quickstart that adopts fedkit's FedLaAvg, a scenario and secure
aggregation by run config, and the same task under Flower's own SecAgg+."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from fedkit.flower.runtime.simulation import run_flower_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def accuracies(log: str) -> dict[int, float]:
    return {int(r): float(a) for r, a in re.findall(r"^round (\d+): accuracy ([\d.]+)$", log,
                                                    flags=re.M)}


@pytest.mark.parametrize("example, run_config", [
    ("quickstart-fedkit", {"strategy": "fedlaavg", "scenario": "bernoulli",
                           "secure-aggregation": True, "num-server-rounds": 2}),
    ("quickstart-flower-secaggplus", {"num-server-rounds": 2}),
], ids=["fedkit-fedlaavg-bernoulli-secagg", "flower-secaggplus"])
def test_example_app_trains_under_flowers_simulation_engine(example, run_config):
    log = io.StringIO()
    status = run_flower_app(EXAMPLES / example, num_supernodes=10, run_config=run_config,
                            stream_to=log, timeout=300)
    assert status["status"].startswith("finished:completed")
    seen = accuracies(log.getvalue())
    assert sorted(seen) == [0, 1, 2], log.getvalue()[-3000:]
    assert seen[2] > seen[0] + 0.1  # it learned
    assert "final accuracy" in log.getvalue()
