"""Side-by-side comparison of runs that differ in one config key (``fedkit simulate --compare``).

The table and the plot are generated from the runs' ``results.json`` files only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["comparison_table", "plot_comparison"]


def _pct(value: float | None) -> str:
    return f"{100 * value:.2f}%" if value is not None else "-"


def comparison_table(results: list[dict[str, Any]], key: str) -> str:
    """A markdown table: one row per run, with the gap to the first run in points."""
    base = results[0]["summary"]
    header = (f"| {key} | availability | rounds | final acc | best acc | mean last 10% | "
              f"final - {results[0]['config'][key]} |")
    rows = [header, "|---|---|---|---|---|---|---|"]
    for res in results:
        summary = res["summary"]
        gap = None
        if summary["final_accuracy"] is not None and base["final_accuracy"] is not None:
            gap = 100 * (summary["final_accuracy"] - base["final_accuracy"])
        rows.append(
            f"| {res['config'][key]} | {res['config']['availability']} | {summary['rounds']} | "
            f"{_pct(summary['final_accuracy'])} | {_pct(summary['best_accuracy'])} | "
            f"{_pct(summary['mean_last10_accuracy'])} | "
            f"{f'{gap:+.2f} pts' if gap is not None else '-'} |"
        )
    return "\n".join(rows)


def plot_comparison(results: list[dict[str, Any]], key: str, path: str | Path) -> Path:
    """Test accuracy against the round, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for res in results:
        evaluated = [r for r in res["rounds"] if r.get("test_accuracy") is not None]
        ax.plot([r["round"] for r in evaluated], [100 * r["test_accuracy"] for r in evaluated],
                label=f"{key} = {res['config'][key]}")
    cfg = results[0]["config"]
    ax.set_title(f"{cfg['dataset']}, availability '{cfg['availability']}', "
                 f"N={cfg['num_clients']}, K={cfg['clients_per_round']}, seed {cfg['seed']}")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
