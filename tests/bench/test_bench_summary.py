"""Summary helpers and plots on hand-made results: known answers, big federations."""

from __future__ import annotations

import numpy as np

from fedkit.bench.suite_plots import bin_matrix, participation_matrix, plot_participation
from fedkit.bench.summary import rounds_to, summary_columns, summary_markdown


def test_rounds_to_is_the_first_evaluated_round_at_or_above_the_target():
    rounds = [{"round": 1, "test_accuracy": 0.2}, {"round": 2},
              {"round": 3, "test_accuracy": 0.5}, {"round": 4, "test_accuracy": 0.7}]
    assert rounds_to(rounds, 0.5) == 3
    assert rounds_to(rounds, 0.6) == 4
    assert rounds_to(rounds, 0.8) is None


def row(seed: int, final: float, reached: int | None) -> dict:
    return {"name": f"r{seed}", "scenario": "always", "algorithm": "fedavg", "seed": seed,
            "rounds": 10, "rounds_configured": 20, "final_acc": final, "max_acc": final,
            "max_acc_round": 10, "mean_last10_acc": final, "rounds_to_0.5": reached,
            "participation_mean": 0.1, "availability_mean": 1.0,
            "participants_per_round": 3.0, "online_per_round": 10.0, "staleness_mean": 4.0,
            "staleness_max": 9, "never_participated": 0, "wall_s": 2.0}


def test_markdown_cells_are_mean_and_sample_std_with_missing_seeds_counted():
    rows = [row(0, 0.5, 7), row(1, 0.7, None)]
    assert set(rows[0]) == set(summary_columns(["availability", "algorithm", "seed"], [0.5]))
    text = summary_markdown("t", rows, ["availability", "algorithm", "seed"], [0.5])
    assert ("| always | fedavg | 2 | 10 | 60.00 ± 14.14 | 60.00 ± 14.14 | 60.00 ± 14.14 | "
            "7 (1/2) | 0.100 ± 0.000 | 4.00 ± 0.00 | 9 ± 0 | 2.0 ± 0.0 |") in text
    single = summary_markdown("t", rows[1:], ["availability", "algorithm", "seed"], [0.5])
    assert "| always | fedavg | 1 | 10 | 70.00 | 70.00 | 70.00 | - |" in single


def test_bin_matrix_averages_rounds_and_skips_nan():
    part = np.zeros((10, 2), dtype=bool)
    part[::2, 0] = True
    assert bin_matrix(part, 5).tolist() == [[0.5, 0.0]] * 5
    rows = np.array([[1.0, np.nan], [0.0, np.nan], [np.nan, 1.0]])
    binned = bin_matrix(rows, 2)
    # Bins of two rows: {0, 1} and {2}; a bin with only NaN in a column is NaN.
    assert binned[0, 0] == 0.5 and np.isnan(binned[0, 1])
    assert np.isnan(binned[1, 0]) and binned[1, 1] == 1.0
    assert bin_matrix(np.ones((7000, 3), dtype=bool), 150).shape == (149, 3)  # 47 rounds each
    assert bin_matrix(np.ones((7050, 3), dtype=bool), 150).shape == (150, 3)


def fake_results(num_rounds: int, num_clients: int, num_per_round: int) -> dict:
    rng = np.random.default_rng(0)
    hist = np.zeros((num_clients, 10), dtype=int)
    hist[np.arange(num_clients), np.arange(num_clients) % 10] = 5
    return {
        "config": {"num_clients": num_clients, "seed": 0},
        "partition": {"sizes": hist.sum(axis=1).tolist(), "label_histograms": hist.tolist()},
        "rounds": [{"round": r + 1, "clients": rng.choice(num_clients, num_per_round,
                                                          replace=False).tolist()}
                   for r in range(num_rounds)],
        "scenario_card": {"class_availability": [[0.5] * 10] * num_rounds},
    }


def test_participation_matrix_marks_the_aggregated_clients():
    res = fake_results(3, 20, 4)
    part = participation_matrix(res)
    assert part.shape == (3, 20)
    assert [sorted(np.flatnonzero(p)) for p in part] == [sorted(r["clients"])
                                                         for r in res["rounds"]]


def test_participation_plot_of_a_thousand_clients_is_written(tmp_path):
    res = fake_results(2000, 1000, 100)
    path = plot_participation("big", {"fedavg": res, "fedlaavg": res}, tmp_path / "p.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
