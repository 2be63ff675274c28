"""``fedkit report``: a suite folder's summary and plots, rebuilt from its files alone.

Reads ``<folder>/suite.json`` (the runs and their configs, written by ``fedkit bench``) and
each ``<folder>/runs/<run>/results.json``; writes ``summary.csv``, ``summary.md``,
``accuracy_<scenario>.png`` and ``participation_<scenario>.png`` into the folder. Runs
without a results file yet are listed in ``summary.md`` and left out of the tables; a run in
progress is reported from the interim ``results.json`` its last checkpoint wrote. Nothing
is re-run, so a suite folder copied elsewhere reports the same.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fedkit.bench.results import RESULTS_FILE, read_results
from fedkit.bench.suite import MANIFEST_FILE, RUNS_DIR
from fedkit.bench.suite_plots import plot_participation, plot_scenario_accuracy
from fedkit.bench.summary import (
    group_rows,
    run_row,
    summary_columns,
    summary_csv,
    summary_markdown,
    variant_keys,
)

__all__ = ["load_suite_results", "write_report"]


def load_suite_results(folder: str | Path) -> tuple[dict[str, Any], dict[str, dict], list[str]]:
    """The manifest, the results documents by run name, and the runs without results.

    Raises:
        FileNotFoundError: If ``folder`` has no ``suite.json``.
    """
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no {MANIFEST_FILE} in {str(folder)!r}: not a suite folder; `fedkit bench SUITE.toml "
            "--output-dir FOLDER` writes one")
    manifest = json.loads(path.read_text())
    results, missing = {}, []
    for run in manifest["runs"]:
        run_dir = folder / RUNS_DIR / run["name"]
        if (run_dir / RESULTS_FILE).is_file():
            results[run["name"]] = read_results(run_dir)
        else:
            missing.append(run["name"])
    return manifest, results, missing


def _file_label(scenario: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", scenario)


def _notes(manifest: dict[str, Any], rows: list[dict], results: dict[str, dict],
           missing: list[str]) -> list[str]:
    rounds = sorted({r["rounds"] for r in rows})
    configured = sorted({r["rounds_configured"] for r in rows})
    first = next(iter(results.values()))
    env = first.get("environment", {})
    cfg = first["config"]
    notes = [
        f"Suite `{manifest['name']}` ({manifest['source']}): {len(manifest['runs'])} runs, "
        f"{len(rows)} with results. Generated from the runs' results files; `fedkit report "
        "<suite folder>` rebuilds it.",
        "",
        f"- Rounds actually run: {', '.join(map(str, rounds))} (configured: "
        f"{', '.join(map(str, configured))}).",
        f"- Dataset {cfg['dataset']}, model {cfg['model']}, N = {cfg['num_clients']}, "
        f"K = {cfg['clients_per_round']} (of the first run; see summary.csv for every run).",
        "- Accuracies: central test accuracy in percent, mean ± sample std over seeds; "
        "\"mean last 10%\" averages the last 10% of the evaluations; \"rounds to\" is the "
        "first evaluated round at or above the target (k/n: only k of n seeds reached it).",
        "- Participation rate: fraction of rounds a client was selected, averaged over "
        "clients; staleness: rounds since a client's last participation (scenario card).",
        f"- Wall time: sum of the rounds' seconds per run; total over runs "
        f"{sum(r['wall_s'] for r in rows):.0f} s on {env.get('cpu', '?')} "
        f"({env.get('cpu_count', '?')} CPUs).",
    ]
    if manifest.get("description"):
        notes[:0] = [manifest["description"].strip(), ""]
    partial = [f"{r['name']} ({r['rounds']} of {r['rounds_configured']})" for r in rows
               if r["rounds"] < r["rounds_configured"]]
    if partial:
        notes.append(f"- {len(partial)} run(s) in progress or interrupted, reported from the "
                     f"interim results of their last checkpoint: {', '.join(partial)}.")
    if missing:
        notes.append(f"- {len(missing)} run(s) have no results yet: {', '.join(missing)}.")
    return notes


def write_report(folder: str | Path) -> list[Path]:
    """Write ``summary.csv``, ``summary.md`` and the plots of a suite folder; return the paths.

    Raises:
        FileNotFoundError: If ``folder`` has no ``suite.json`` or no run has results yet.
    """
    folder = Path(folder)
    manifest, results, missing = load_suite_results(folder)
    if not results:
        raise FileNotFoundError(f"no run of suite folder {str(folder)!r} has a results file "
                                "yet; run `fedkit bench` first")
    keys, targets = manifest["name_keys"], manifest["accuracy_targets"]
    configs = {run["name"]: run["config"] for run in manifest["runs"]}
    rows = [run_row(name, configs[name], res, keys, targets) for name, res in results.items()]
    written = [folder / "summary.csv", folder / "summary.md"]
    written[0].write_text(summary_csv(rows, summary_columns(keys, targets)))
    plots: list[str] = []
    by_scenario: dict[str, dict[str, list[dict]]] = {}
    for (scenario, variant), group in group_rows(rows, keys).items():
        label = ", ".join(f"{k}={v}" if k != "algorithm" else str(v)
                          for k, v in zip(variant_keys(keys), variant, strict=True))
        by_scenario.setdefault(scenario, {})[label] = [results[r["name"]] for r in group]
    for scenario, variants in by_scenario.items():
        stem = _file_label(scenario)
        accuracy = plot_scenario_accuracy(scenario, variants, folder / f"accuracy_{stem}.png")
        firsts = {label: runs[0] for label, runs in variants.items()}
        heat = plot_participation(scenario, firsts, folder / f"participation_{stem}.png")
        written += [accuracy, heat]
        plots += [f"### {scenario}", "", f"![accuracy, {scenario}]({accuracy.name})", "",
                  f"![participation, {scenario}]({heat.name})", ""]
    text = summary_markdown(f"Suite {manifest['name']}", rows, keys, targets,
                            notes=_notes(manifest, rows, results, missing))
    written[1].write_text(text + "\n## Plots\n\n" + "\n".join(plots).rstrip() + "\n")
    return written
