"""Running a suite: every run once, resumable, several at once when cores allow.

For each run the runner decides from its folder what is left: ``finished`` (``results.json``
holds the configured rounds: skipped, untouched), ``resume`` (a checkpoint: continue from it)
or ``new``. A folder started with a different config (any key but the run length, checkpoint
period, paths and display keys) is an error, never silently mixed. Runs execute on fedkit's
in-process grid, in this process (``jobs = 1``) or in ``jobs`` spawned workers with torch's
threads split between them; or, given :class:`~fedkit.flower.runtime.ray_cluster.RayOptions`,
one after another under Flower's Simulation Engine (each on a SuperLink of its own, the
virtual clients on Ray: on this machine or on a Ray cluster, docs/scaling.md).
:func:`fedkit.bench.report.write_report` writes the summary and plots at the end. See
docs/benchmarks.md, "Resuming".
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fedkit.bench.results import RESULTS_FILE, read_results
from fedkit.bench.suite import MANIFEST_FILE, Suite, SuiteRun
from fedkit.config import ConfigError, RunConfig

if TYPE_CHECKING:
    from fedkit.flower.runtime.ray_cluster import RayOptions

__all__ = ["RunOutcome", "run_state", "run_suite"]

# Keys that may change between invocations of the same suite without making it another run.
_FREE_KEYS = frozenset({"rounds", "checkpoint_every", "resume", "progress", "output_dir",
                        "data_dir", "name", "round_timeout"})
_CHECKPOINT_STATE = Path("checkpoint") / "state.json"


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What happened to one run: ``state`` before, ``status`` after, seconds spent."""

    name: str
    state: str
    status: str
    seconds: float = 0.0
    error: str | None = None


def _check_same_run(run: SuiteRun, recorded: dict[str, Any], source: str) -> None:
    current = run.config.to_dict()
    # A key added to RunConfig after the run was recorded had its default then.
    recorded = {**RunConfig().to_dict(), **recorded}
    changed = sorted(k for k in current
                     if k not in _FREE_KEYS and recorded.get(k) != current.get(k))
    if changed:
        key = changed[0]
        raise ConfigError(
            f"run {run.name!r}: {source} records {key} = {recorded.get(key)!r}, the suite now "
            f"says {current.get(key)!r} ({len(changed)} key(s) differ: {changed}); use another "
            f"--output-dir or delete {str(run.config.results_dir)!r} to start it again"
        )


def run_state(run: SuiteRun) -> str:
    """``finished``, ``resume`` or ``new`` (see the module docstring).

    Raises:
        ConfigError: If the run's ``results.json`` was written with a different config.
    """
    folder = run.config.results_dir
    if (folder / RESULTS_FILE).is_file():
        results = read_results(folder)
        _check_same_run(run, results["config"], str(folder / RESULTS_FILE))
        if len(results["rounds"]) >= run.config.rounds:
            return "finished"
    return "resume" if (folder / _CHECKPOINT_STATE).is_file() else "new"


def _check_manifest(suite: Suite) -> None:
    path = suite.output_dir / MANIFEST_FILE
    if not path.is_file():
        return
    recorded = {r["name"]: r["config"] for r in json.loads(path.read_text())["runs"]}
    for run in suite.runs:
        if run.name in recorded and (run.config.results_dir / _CHECKPOINT_STATE).is_file():
            _check_same_run(run, recorded[run.name], str(path))


def _merged_manifest(suite: Suite) -> dict[str, Any]:
    """``suite.manifest()`` plus the runs an earlier invocation recorded in the same folder.

    ``--only`` selects what to execute, not what the suite is: runs recorded by an earlier
    ``fedkit bench`` of the same suite name (another ``--only`` selection) stay in
    ``suite.json``, so ``fedkit report`` keeps summarising their results.
    """
    manifest = suite.manifest()
    path = suite.output_dir / MANIFEST_FILE
    if not path.is_file():
        return manifest
    earlier = json.loads(path.read_text())
    if earlier.get("name") != suite.name:
        return manifest
    current = {run["name"] for run in manifest["runs"]}
    manifest["runs"] += [run for run in earlier["runs"] if run["name"] not in current]
    return manifest


def _execute(config: dict[str, Any], engine: str, device: str, threads: int | None) -> float:
    """Run one config on the in-process grid; return its wall seconds (worker entry point)."""
    import torch

    from fedkit.flower import run_inprocess

    if threads is not None:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    run_inprocess(config, num_nodes=config["num_clients"], seed=config["seed"], engine=engine,
                  device=device)
    return time.perf_counter() - started


def _execute_flower(config: dict[str, Any], ray: RayOptions, quiet: bool) -> float:
    """Run one config under Flower's Simulation Engine; return its wall seconds."""
    from fedkit.flower.runtime.simulation import run_flower_simulation

    started = time.perf_counter()
    run_flower_simulation(RunConfig.from_mapping(config),
                          num_cpus_per_client=ray.num_cpus_per_client,
                          num_gpus_per_client=ray.num_gpus_per_client, ray_address=ray.address,
                          progress_to=None if quiet else sys.stderr)
    return time.perf_counter() - started


def _report_line(index: int, total: int, outcome: RunOutcome, run: SuiteRun) -> str:
    head = f"[{index}/{total}] {outcome.name}"
    if outcome.status == "failed":
        return f"{head}: FAILED after {outcome.seconds:.1f} s: {outcome.error}"
    summary = read_results(run.config.results_dir)["summary"]
    acc = summary["final_accuracy"]
    acc_text = f"final acc {100 * acc:.2f}%" if acc is not None else "not evaluated"
    if outcome.status == "skipped":
        return f"{head}: finished earlier ({summary['rounds']} rounds, {acc_text}), skipped"
    verb = "resumed and finished" if outcome.state == "resume" else "finished"
    return f"{head}: {verb} in {outcome.seconds:.1f} s ({summary['rounds']} rounds, {acc_text})"


def run_suite(suite: Suite, *, jobs: int | None = None, engine: str = "batched",
              device: str = "cpu", quiet: bool = False, stream: TextIO | None = None,
              ray: RayOptions | None = None) -> list[RunOutcome]:
    """Run every unfinished run of ``suite``, then write the summary and plots.

    Args:
        suite: The expanded suite (:func:`~fedkit.bench.suite.load_suite`).
        jobs: Runs at once (default ``suite.jobs``); above 1 each runs in a spawned process
            with ``os.cpu_count() // jobs`` torch threads.
        engine: In-process engine, ``batched`` or ``sequential``.
        device: Torch device of the batched engine.
        quiet: No per-round progress line (it is always off when ``jobs > 1``).
        stream: Where the one-line-per-run report goes (stderr by default).
        ray: Run under Flower's Simulation Engine with these Ray options (one run at a time:
            the Ray cluster is where the parallelism is); None: the in-process grid.

    Returns:
        One outcome per run, in suite order. A failed run does not stop the others.

    Raises:
        ConfigError: If a run folder holds a run started with another config, or ``jobs``
            is not 1 under Flower's engine.
        RayClusterError: If ``ray`` names a Ray cluster that cannot be found or reached.
    """
    from fedkit.bench.report import write_report

    stream = stream if stream is not None else sys.stderr
    if ray is not None and jobs not in (None, 1):
        raise ConfigError(f"--jobs {jobs} with --runtime flower: runs go one at a time under "
                          "Flower's engine (each already uses every Ray CPU it may); drop "
                          "--jobs or use --runtime inprocess")
    jobs = 1 if ray is not None else jobs if jobs is not None else suite.jobs
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}, expected an integer >= 1")
    if ray is not None:
        ray.check()  # an unreachable cluster fails the suite once, before any run
    states = {run.name: run_state(run) for run in suite.runs}
    _check_manifest(suite)
    suite.output_dir.mkdir(parents=True, exist_ok=True)
    (suite.output_dir / MANIFEST_FILE).write_text(json.dumps(_merged_manifest(suite), indent=1)
                                                  + "\n")
    todo = [run for run in suite.runs if states[run.name] != "finished"]
    outcomes = {run.name: RunOutcome(run.name, "finished", "skipped")
                for run in suite.runs if states[run.name] == "finished"}
    print(f"suite {suite.name!r}: {len(suite.runs)} runs, {len(outcomes)} finished earlier, "
          f"{sum(states[r.name] == 'resume' for r in todo)} to resume, "
          f"{sum(states[r.name] == 'new' for r in todo)} to start; {jobs} at a time; "
          f"folder {suite.output_dir}", file=stream, flush=True)
    by_name = {run.name: run for run in suite.runs}
    done = 0
    for outcome in outcomes.values():
        done += 1
        print(_report_line(done, len(suite.runs), outcome, by_name[outcome.name]), file=stream)
    show_progress = not quiet and jobs == 1
    configs = {run.name: run.config.replace(progress=show_progress).to_dict() for run in todo}
    runs = (_execute_all_flower(todo, configs, states, ray, not show_progress)
            if ray is not None else _execute_all(todo, configs, states, jobs, engine, device))
    for outcome in runs:
        outcomes[outcome.name] = outcome
        done += 1
        print(_report_line(done, len(suite.runs), outcome, by_name[outcome.name]),
              file=stream, flush=True)
    write_report(suite.output_dir)
    return [outcomes[run.name] for run in suite.runs]


def _execute_all_flower(todo: list[SuiteRun], configs: dict[str, dict[str, Any]],
                        states: dict[str, str], ray: RayOptions, quiet: bool):
    """Yield one :class:`RunOutcome` per run of ``todo``, each run under Flower's engine."""
    for run in todo:
        started = time.perf_counter()
        try:
            seconds = _execute_flower(configs[run.name], ray, quiet)
        except Exception as exc:  # one failed run must not stop the suite
            yield RunOutcome(run.name, states[run.name], "failed",
                             time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        else:
            yield RunOutcome(run.name, states[run.name], "ran", seconds)


def _execute_all(todo: list[SuiteRun], configs: dict[str, dict[str, Any]],
                 states: dict[str, str], jobs: int, engine: str, device: str):
    """Yield one :class:`RunOutcome` per run of ``todo`` as each ends."""
    if jobs == 1:
        for run in todo:
            started = time.perf_counter()
            try:
                seconds = _execute(configs[run.name], engine, device, None)
            except Exception as exc:  # one failed run must not stop the suite
                yield RunOutcome(run.name, states[run.name], "failed",
                                 time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
            else:
                yield RunOutcome(run.name, states[run.name], "ran", seconds)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(_execute, configs[run.name], engine, device, threads): run
                   for run in todo}
        for future in concurrent.futures.as_completed(futures):
            run = futures[future]
            try:
                seconds = future.result()
            except Exception as exc:  # a worker's exception, re-raised here
                yield RunOutcome(run.name, states[run.name], "failed", 0.0,
                                 f"{type(exc).__name__}: {exc}")
            else:
                yield RunOutcome(run.name, states[run.name], "ran", seconds)
