"""Plots generated from results files (never from in-memory state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_accuracy"]


def plot_accuracy(results: dict[str, Any], path: str | Path) -> Path:
    """Plot test accuracy and train loss against the round; write a PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = results["rounds"]
    evaluated = [r for r in rounds if r.get("test_accuracy") is not None]
    trained = [r for r in rounds if r.get("train_loss") is not None]
    cfg = results["config"]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_acc.plot([r["round"] for r in evaluated], [100 * r["test_accuracy"] for r in evaluated],
                marker="o" if len(evaluated) < 40 else None, color="tab:blue")
    ax_acc.set_xlabel("round")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.grid(alpha=0.3)
    ax_loss.plot([r["round"] for r in trained], [r["train_loss"] for r in trained],
                 color="tab:orange", label="train (clients)")
    ax_loss.plot([r["round"] for r in evaluated], [r["test_loss"] for r in evaluated],
                 color="tab:blue", label="test")
    ax_loss.set_xlabel("round")
    ax_loss.set_ylabel("loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend()
    fig.suptitle(
        f"{cfg['name']}: {cfg['algorithm']} on {cfg['dataset']} ({cfg['model']}), "
        f"N={cfg['num_clients']}, K={cfg['clients_per_round']}, seed {cfg['seed']}"
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
