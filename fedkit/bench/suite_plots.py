"""A suite's plots, per scenario, drawn from results files only.

- :func:`plot_scenario_accuracy`: test accuracy against the round, one line per variant
  (algorithm, and any other swept key but the seed): the mean over seeds at the rounds every
  seed evaluated, with the min-max band over seeds shaded.
- :func:`plot_participation`: for one run per variant (the first seed), a clients x rounds
  heat map of the fraction of rounds each client was selected, with the clients sorted by
  dominant class; below, the scenario card's availability per dominant class. Rounds are
  aggregated into at most ``max_bins`` bins and clients into at most ``max_rows`` rows, so a
  run with N = 1000 clients and 70,000 rounds stays readable.

matplotlib is imported lazily and drawn on :class:`matplotlib.figure.Figure` objects (no
pyplot state, safe off the main thread and without a display).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from fedkit.availability.base import ClientInfo

__all__ = ["bin_matrix", "participation_matrix", "plot_participation", "plot_scenario_accuracy"]


def _curve(results: dict[str, Any]) -> dict[int, float]:
    return {r["round"]: r["test_accuracy"] for r in results["rounds"]
            if r.get("test_accuracy") is not None}


def plot_scenario_accuracy(title: str, variants: dict[str, list[dict[str, Any]]],
                           path: str | Path) -> Path:
    """Write a PNG of test accuracy (%) against the round for each variant's seeds.

    Args:
        title: The figure title (the scenario).
        variants: Label -> the results documents of that variant's seeds.
        path: The PNG to write (its folder must exist).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), constrained_layout=True)
    ax = fig.subplots()
    for label, runs in variants.items():
        curves = [_curve(res) for res in runs]
        common = sorted(set.intersection(*(set(c) for c in curves)))
        if not common:
            continue
        acc = 100 * np.array([[c[r] for r in common] for c in curves])
        line, = ax.plot(common, acc.mean(axis=0), label=f"{label} ({len(runs)} seeds)",
                        linewidth=1.3)
        if len(runs) > 1:
            ax.fill_between(common, acc.min(axis=0), acc.max(axis=0), alpha=0.18,
                            color=line.get_color(), linewidth=0)
    ax.set_title(f"{title}: test accuracy, mean over seeds (band: min-max)", loc="left")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out


def participation_matrix(results: dict[str, Any]) -> np.ndarray:
    """``(R, N)`` bool: client i's reply was aggregated in round r+1 (from ``clients``)."""
    num_clients = int(results["config"]["num_clients"])
    part = np.zeros((len(results["rounds"]), num_clients), dtype=bool)
    for i, record in enumerate(results["rounds"]):
        part[i, record.get("clients", [])] = True
    return part


def bin_matrix(matrix: np.ndarray, max_bins: int) -> np.ndarray:
    """Average the rows of ``matrix`` over consecutive slices, into at most ``max_bins`` rows.

    Every bin spans ``ceil(rows / max_bins)`` rows (the last one may be shorter). NaN entries
    are left out of a bin's mean (a bin with none left is NaN); a bool matrix is summed
    without being copied to floats first.

    Example:
        >>> bin_matrix(np.arange(6.0)[:, None], 3)[:, 0].tolist()
        [0.5, 2.5, 4.5]
    """
    m = np.asarray(matrix)
    size = m.shape[0]
    starts = np.arange(0, size, math.ceil(size / max_bins))
    if m.dtype == bool:
        sums = np.add.reduceat(m, starts, axis=0, dtype=np.int64).astype(float)
        counts = np.diff(np.append(starts, size)).reshape(-1, *([1] * (m.ndim - 1)))
    else:
        finite = np.isfinite(m)
        sums = np.add.reduceat(np.where(finite, m, 0.0), starts, axis=0)
        counts = np.add.reduceat(finite, starts, axis=0, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _class_ticks(ax: Any, labels: np.ndarray, rows_per_cell: int) -> None:
    classes, starts = np.unique(labels, return_index=True)
    ends = list(starts[1:]) + [labels.size]
    for start in starts[1:]:
        ax.axhline(start / rows_per_cell - 0.5, color="black", linewidth=0.4, alpha=0.5)
    ax.set_yticks([(s + e) / 2 / rows_per_cell - 0.5 for s, e in zip(starts, ends, strict=True)])
    ax.set_yticklabels([f"c{c}" if c >= 0 else "empty" for c in classes], fontsize="x-small")


def plot_participation(title: str, variants: dict[str, dict[str, Any]], path: str | Path,
                       *, max_bins: int = 150, max_rows: int = 250) -> Path:
    """Write a PNG: a participation heat map per variant and the per-class availability.

    Args:
        title: The figure title (the scenario).
        variants: Label -> one results document (the same seed for every variant).
        path: The PNG to write (its folder must exist).
        max_bins: At most this many round bins.
        max_rows: At most this many client rows (clients sorted by dominant class).
    """
    from matplotlib.figure import Figure

    first = next(iter(variants.values()))
    partition = first["partition"]
    info = ClientInfo(label_histograms=np.array(partition["label_histograms"], dtype=np.int64),
                      sizes=np.array(partition["sizes"], dtype=np.int64))
    order = np.argsort(info.dominant_label, kind="stable")
    per_row = math.ceil(order.size / max_rows)
    cells = {}
    for label, results in variants.items():
        binned = bin_matrix(participation_matrix(results)[:, order], max_bins)
        pad = (-binned.shape[1]) % per_row
        grouped = np.pad(binned, ((0, 0), (0, pad)), constant_values=np.nan)
        # Every group holds at least one real client, so no mean is over NaN only.
        cells[label] = np.nanmean(grouped.reshape(binned.shape[0], -1, per_row), axis=2).T
    vmax = max(float(np.nanmax(c)) for c in cells.values()) or 1.0
    card = first.get("scenario_card") or {}
    class_rows = card.get("class_availability")
    fig = Figure(figsize=(10, 1.9 * len(cells) + (1.8 if class_rows else 0.4)),
                 constrained_layout=True)
    axes = fig.subplots(len(cells) + bool(class_rows), 1, squeeze=False)[:, 0]
    num_rounds = len(first["rounds"])
    extent = (0.5, num_rounds + 0.5)
    for ax, (label, cell) in zip(axes, cells.items(), strict=False):
        image = ax.imshow(cell, aspect="auto", interpolation="nearest", cmap="Blues", vmin=0,
                          vmax=vmax, extent=(*extent, cell.shape[0] - 0.5, -0.5))
        _class_ticks(ax, info.dominant_label[order], per_row)
        ax.set_title(f"{label}: fraction of rounds selected (clients by dominant class, "
                     f"seed {variants[label]['config']['seed']})", loc="left", fontsize="small")
        fig.colorbar(image, ax=ax, pad=0.01, fraction=0.03)
    if class_rows:
        rows = np.array([[np.nan if x is None else x for x in row] for row in class_rows])
        ax = axes[-1]
        image = ax.imshow(bin_matrix(rows, max_bins).T, aspect="auto", interpolation="nearest",
                          cmap="Greens", vmin=0, vmax=1,
                          extent=(*extent, rows.shape[1] - 0.5, -0.5))
        ax.set_yticks(range(rows.shape[1]))
        ax.set_yticklabels([f"c{c}" for c in range(rows.shape[1])], fontsize="x-small")
        ax.set_title("availability: fraction of each dominant class's clients online",
                     loc="left", fontsize="small")
        fig.colorbar(image, ax=ax, pad=0.01, fraction=0.03)
    axes[-1].set_xlabel("round")
    fig.suptitle(f"{title}: participation ({num_rounds} rounds)")
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out
