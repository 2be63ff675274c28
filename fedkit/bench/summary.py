"""A suite's summary: ``summary.csv`` (one row per run) and ``summary.md`` (mean ± std).

Every number comes from the runs' ``results.json`` files (:func:`~fedkit.bench.results.
summarize` over the per-round records, and the scenario card): accuracies, rounds to each
target, participation, availability, staleness and wall time per run. ``summary.md`` groups
the rows by scenario x algorithm (and any other swept key but the seed) and shows mean ±
sample standard deviation over the seeds. Columns: docs/benchmarks.md, "Outputs".
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence
from typing import Any

from fedkit.bench.results import summarize
from fedkit.bench.suite import scenario_label

__all__ = ["group_rows", "rounds_to", "run_row", "summary_columns", "summary_csv",
           "summary_markdown", "target_column", "variant_keys"]

_FIXED = ("availability", "algorithm", "seed")


def target_column(target: float) -> str:
    """The column name of an accuracy target: ``rounds_to_0.5``."""
    return f"rounds_to_{target:g}"


def variant_keys(name_keys: Sequence[str]) -> list[str]:
    """Swept keys that tell runs of one scenario apart, the seed excluded."""
    return ["algorithm"] + [k for k in name_keys if k not in _FIXED]


def summary_columns(name_keys: Sequence[str], targets: Sequence[float]) -> list[str]:
    """The columns of ``summary.csv``, in order."""
    others = [k for k in name_keys if k not in _FIXED]
    return ["name", "scenario", "algorithm", "seed", *others, "rounds", "rounds_configured",
            "final_acc", "max_acc", "max_acc_round", "mean_last10_acc",
            *(target_column(t) for t in targets), "participation_mean", "availability_mean",
            "participants_per_round", "online_per_round", "staleness_mean", "staleness_max",
            "never_participated", "wall_s"]


def rounds_to(rounds: list[dict[str, Any]], target: float) -> int | None:
    """The first evaluated round with test accuracy >= ``target``; ``None`` if never.

    Example:
        >>> rounds_to([{"round": 1, "test_accuracy": 0.4}, {"round": 2},
        ...            {"round": 3, "test_accuracy": 0.6}], 0.5)
        3
    """
    return next((r["round"] for r in rounds
                 if r.get("test_accuracy") is not None and r["test_accuracy"] >= target), None)


def run_row(name: str, configured: dict[str, Any], results: dict[str, Any],
            name_keys: Sequence[str], targets: Sequence[float]) -> dict[str, Any]:
    """One ``summary.csv`` row from a run's results document.

    Args:
        name: The run's name in the suite.
        configured: The run config the suite gave it (for ``rounds_configured``).
        results: Its ``results.json`` document.
        name_keys: The suite's swept keys.
        targets: Accuracy targets (fractions).
    """
    cfg = results["config"]
    summary = summarize(results["rounds"])
    card = results.get("scenario_card") or {}
    staleness = card.get("staleness") or {}
    row = {"name": name, "scenario": scenario_label(cfg["availability"]),
           "algorithm": cfg["algorithm"], "seed": cfg["seed"]}
    row.update({k: cfg[k] for k in name_keys if k not in _FIXED})
    row.update({
        "rounds": summary["rounds"],
        "rounds_configured": configured["rounds"],
        "final_acc": summary["final_accuracy"],
        "max_acc": summary["best_accuracy"],
        "max_acc_round": summary.get("best_round"),
        "mean_last10_acc": summary["mean_last10_accuracy"],
    })
    row.update({target_column(t): rounds_to(results["rounds"], t) for t in targets})
    row.update({
        "participation_mean": card.get("participation_rate_summary", {}).get("mean"),
        "availability_mean": card.get("availability_rate_summary", {}).get("mean"),
        "participants_per_round": card.get("participants_per_round", {}).get("mean"),
        "online_per_round": card.get("online_per_round", {}).get("mean"),
        "staleness_mean": staleness.get("mean"),
        "staleness_max": staleness.get("max"),
        "never_participated": card.get("never_participated"),
        "wall_s": summary["total_seconds"],
    })
    return row


def summary_csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """The CSV text: a header and one line per row; ``None`` is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue()


def group_rows(rows: list[dict[str, Any]], name_keys: Sequence[str]
               ) -> dict[tuple[str, tuple], list[dict[str, Any]]]:
    """Rows grouped by ``(scenario, variant)``, in order of first appearance."""
    keys = variant_keys(name_keys)
    groups: dict[tuple[str, tuple], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["scenario"], tuple(row[k] for k in keys)), []).append(row)
    return groups


def _spread(values: list[float | None], scale: float = 1.0, digits: int = 2) -> str:
    present = [scale * v for v in values if v is not None]
    if not present:
        return "-"
    text = f"{statistics.fmean(present):.{digits}f}"
    if len(present) > 1:
        text += f" ± {statistics.stdev(present):.{digits}f}"
    if len(present) < len(values):
        text += f" ({len(present)}/{len(values)})"
    return text


def _range(values: list[int]) -> str:
    return str(values[0]) if min(values) == max(values) else f"{min(values)}-{max(values)}"


def summary_markdown(title: str, rows: list[dict[str, Any]], name_keys: Sequence[str],
                     targets: Sequence[float], *, notes: Sequence[str] = ()) -> str:
    """The ``summary.md`` text: one table row per scenario x variant, mean ± std over seeds.

    Accuracies are in percent; a ``(k/n)`` suffix says only k of the n seeds have the value
    (e.g. reached the target); ``-`` means none has.
    """
    others = [k for k in variant_keys(name_keys) if k != "algorithm"]
    head = ["scenario", "algorithm", *others, "seeds", "rounds run", "final acc (%)",
            "max acc (%)", "mean last 10% (%)",
            *(f"rounds to {100 * t:g}%" for t in targets), "participation rate",
            "staleness mean", "staleness max", "wall (s)"]
    lines = [f"# {title}", "", *notes, "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (scenario, variant), group in group_rows(rows, name_keys).items():
        col = {c: [r[c] for r in group] for c in group[0]}
        cells = [scenario, *map(str, variant), str(len(group)), _range(col["rounds"]),
                 _spread(col["final_acc"], 100), _spread(col["max_acc"], 100),
                 _spread(col["mean_last10_acc"], 100),
                 *(_spread(col[target_column(t)], digits=0) for t in targets),
                 _spread(col["participation_mean"], digits=3),
                 _spread(col["staleness_mean"]), _spread(col["staleness_max"], digits=0),
                 _spread(col["wall_s"], digits=1)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
