"""The scenario card: what availability and selection actually did in a run.

From the realised ``available`` and ``participated`` matrices (rounds x clients, bool) a
card reports, JSON-serialisable, per-client availability and participation rates, counts per
round, staleness (``r - last round <= r the client participated``), per-class availability
and the clients never selected. :func:`card_summary_table` renders the headline numbers as
markdown; :func:`plot_scenario_card` draws the participation heat map and the per-class
availability (matplotlib, imported lazily). See docs/availability.md, "Scenario card".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fedkit.availability.base import ClientInfo

__all__ = ["card_summary_table", "plot_scenario_card", "scenario_card"]


def _check_matrices(available: Any, participated: Any, num_clients: int) -> tuple:
    avail, part = np.asarray(available), np.asarray(participated)
    for name, m in (("available", avail), ("participated", part)):
        if m.ndim != 2 or m.dtype != bool or m.shape[0] < 1:
            raise ValueError(
                f"{name} has dtype {m.dtype} and shape {m.shape}, expected a (rounds >= 1, "
                f"{num_clients}) bool array"
            )
    if avail.shape != part.shape or avail.shape[1] != num_clients:
        raise ValueError(
            f"available has shape {avail.shape} and participated {part.shape}, expected both "
            f"(rounds, {num_clients}) (num_clients of client_info)"
        )
    bad = np.argwhere(part & ~avail)
    if bad.size:
        r, i = bad[0]
        raise ValueError(
            f"client {int(i)} participated in round {int(r) + 1} but was not available; "
            "expected participated to imply available"
        )
    return avail, part


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}


def scenario_card(
    available: np.ndarray, participated: np.ndarray, client_info: ClientInfo
) -> dict[str, Any]:
    """Summarise realised availability and participation (see the module docstring).

    Args:
        available: ``(R, N)`` bool, row r-1 = clients online in round r.
        participated: ``(R, N)`` bool, clients selected in round r (a subset of the online).
        client_info: The clients (for the dominant label of each).

    Returns:
        The JSON-serialisable card.

    Raises:
        ValueError: If the shapes disagree, a matrix is not bool, or a client participated
            while unavailable.

    Example:
        >>> info = ClientInfo.one_class_per_client([0, 1], num_classes=2)
        >>> a = np.array([[True, True], [True, False]])
        >>> card = scenario_card(a, a & [[True, False], [False, False]], info)
        >>> card["participation_rate"], card["staleness"]["max"]
        ([0.5, 0.0], 1)
    """
    avail, part = _check_matrices(available, participated, client_info.num_clients)
    num_rounds, num_clients = avail.shape
    rounds = np.arange(1, num_rounds + 1)[:, None]
    last = np.maximum.accumulate(np.where(part, rounds, 0), axis=0)  # 0 = not yet
    seen = last > 0
    staleness = np.where(seen, rounds - last, -1)
    ever = seen[-1]
    per_client_max = [int(staleness[:, i].max()) if ever[i] else None for i in range(num_clients)]
    stale = {
        "mean": float(staleness[seen].mean()) if seen.any() else None,
        "max": int(staleness[seen].max()) if seen.any() else None,
        "per_client_max": per_client_max,
    }
    dominant = client_info.dominant_label
    class_rows = np.full((num_rounds, client_info.num_classes), np.nan)
    for c in range(client_info.num_classes):
        members = dominant == c
        if members.any():
            class_rows[:, c] = avail[:, members].mean(axis=1)
    has_members = ~np.isnan(class_rows[0])
    class_mean = [float(class_rows[:, c].mean()) if has_members[c] else None
                  for c in range(client_info.num_classes)]
    avail_rate = avail.mean(axis=0)
    part_rate = part.mean(axis=0)
    return {
        "num_rounds": int(num_rounds),
        "num_clients": int(num_clients),
        "num_classes": client_info.num_classes,
        "availability_rate": avail_rate.tolist(),
        "participation_rate": part_rate.tolist(),
        "availability_rate_summary": _summary(avail_rate),
        "participation_rate_summary": _summary(part_rate),
        "online_per_round": _summary(avail.sum(axis=1)),
        "participants_per_round": _summary(part.sum(axis=1)),
        "staleness": stale,
        "class_availability": [
            [float(x) if has_members[c] else None for c, x in enumerate(row)] for row in class_rows
        ],
        "class_availability_mean": class_mean,
        "never_participated": int((~ever).sum()),
    }


def card_summary_table(card: dict[str, Any]) -> str:
    """Return the card's headline numbers as a short markdown table.

    Example:
        >>> info = ClientInfo.one_class_per_client([0], num_classes=1)
        >>> ones = np.ones((2, 1), dtype=bool)
        >>> card_summary_table(scenario_card(ones, ones, info)).splitlines()[2]
        '| availability rate | 1.000 | 1.000 | 1.000 |'
    """
    def rate(key: str) -> str:
        s = card[key]
        return f"{s['mean']:.3f} | {s['min']:.3f} | {s['max']:.3f}"

    def count(key: str) -> str:
        s = card[key]
        return f"{s['mean']:.1f} | {s['min']:.0f} | {s['max']:.0f}"

    st = card["staleness"]
    stale = "- | - | -" if st["mean"] is None else f"{st['mean']:.2f} | - | {st['max']}"
    lines = [
        "| metric | mean | min | max |",
        "|---|---:|---:|---:|",
        f"| availability rate | {rate('availability_rate_summary')} |",
        f"| participation rate | {rate('participation_rate_summary')} |",
        f"| online clients per round | {count('online_per_round')} |",
        f"| participants per round | {count('participants_per_round')} |",
        f"| staleness (rounds) | {stale} |",
        "",
        f"{card['num_rounds']} rounds, {card['num_clients']} clients, "
        f"{card['never_participated']} never participated.",
    ]
    return "\n".join(lines)


def plot_scenario_card(
    card: dict[str, Any], available: np.ndarray, participated: np.ndarray, path: str | Path
) -> Path:
    """Write a PNG: participation heat map (clients x rounds) and per-class availability.

    The heat map colours each (client, round) cell offline (white), online but not selected
    (light blue) or selected (dark blue); the lower panel plots ``class_availability`` over
    rounds, one line per class that dominates some client.

    Args:
        card: The output of :func:`scenario_card` for these matrices.
        available: ``(R, N)`` bool.
        participated: ``(R, N)`` bool.
        path: The PNG file to write (its folder must exist).

    Returns:
        ``Path(path)``.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    avail, part = _check_matrices(available, participated, int(card["num_clients"]))
    state = avail.astype(np.int8) + part.astype(np.int8)  # 0 offline, 1 online, 2 selected
    colours = ["#ffffff", "#9ecae1", "#08519c"]
    fig = Figure(figsize=(10, 7), constrained_layout=True)
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [2, 1]})
    num_rounds, num_clients = state.shape
    top.imshow(
        state.T, aspect="auto", interpolation="nearest", cmap=ListedColormap(colours),
        vmin=0, vmax=2, extent=(0.5, num_rounds + 0.5, num_clients - 0.5, -0.5),
    )
    top.set_xlabel("round")
    top.set_ylabel("client")
    top.set_title("participation", loc="left")
    top.legend(
        handles=[Patch(facecolor=c, edgecolor="grey", label=lbl) for c, lbl in
                 zip(colours, ("offline", "online, not selected", "selected"), strict=True)],
        loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, fontsize="small", frameon=False,
    )
    rows = np.array(
        [[np.nan if x is None else x for x in row] for row in card["class_availability"]]
    )
    x = np.arange(1, rows.shape[0] + 1)
    for c in range(rows.shape[1]):
        if not np.isnan(rows[:, c]).all():
            bottom.plot(x, rows[:, c], label=f"class {c}", linewidth=1)
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_xlabel("round")
    bottom.set_ylabel("fraction online")
    bottom.set_title("availability per dominant class", loc="left")
    if rows.shape[1] <= 20:
        bottom.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize="x-small",
                      ncol=min(10, rows.shape[1]), frameon=False)
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out
