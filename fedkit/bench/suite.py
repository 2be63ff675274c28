"""Benchmark suites: a grid of runs described by one TOML file (``fedkit bench``).

A suite file holds an optional ``[suite]`` table (name, output folder, checkpoint period,
accuracy targets, jobs), a base run config (``base = "file.toml"`` or a ``[base]`` table) and
a ``[grid]`` of run-config keys mapped to lists, optionally split into ``[[group]]`` grids
whose products are united. Every run is the base config updated with one combination of
grid values, then with the ``--set`` overrides; its name is ``key=value`` for every key named
in any grid, joined by ``__`` (availability, algorithm, the other keys in file order, seed
last), so names do not change when a list grows. :func:`load_suite` is the single validator
of suite files. See docs/benchmarks.md, "Suite files".
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedkit.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    check_keys,
    load_config_file,
    parse_override,
)

__all__ = ["MANIFEST_FILE", "RUNS_DIR", "Suite", "SuiteRun", "load_suite", "run_name",
           "scenario_label"]

RUNS_DIR = "runs"
MANIFEST_FILE = "suite.json"
DEFAULT_CHECKPOINT_EVERY = 50
DEFAULT_TARGETS = (0.5, 0.55)
_TOP_KEYS = {"suite", "base", "grid", "group"}
_SUITE_KEYS = {"name", "description", "output_dir", "checkpoint_every", "accuracy_targets",
               "jobs"}
_RUNNER_KEYS = {"name", "output_dir", "resume"}  # set per run by the suite, never swept
_NAME_FIRST, _NAME_LAST = ("availability", "algorithm"), ("seed",)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SuiteRun:
    """One run of a suite: its name (also its folder under ``runs/``) and its config."""

    name: str
    config: RunConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class Suite:
    """A validated, expanded suite.

    Attributes:
        name: Suite name.
        description: Free text shown in ``summary.md``.
        source: The suite file.
        output_dir: The suite folder (``summary.*``, plots, ``runs/<run>/``).
        name_keys: The swept keys, in the order they appear in run names.
        accuracy_targets: Accuracies (fractions) for the ``rounds_to_<target>`` columns.
        checkpoint_every: Checkpoint period given to runs whose config has none.
        jobs: Default number of runs at once.
        runs: The runs, in grid order, names unique.
    """

    name: str
    description: str
    source: Path
    output_dir: Path
    name_keys: tuple[str, ...]
    accuracy_targets: tuple[float, ...]
    checkpoint_every: int
    jobs: int
    runs: tuple[SuiteRun, ...]

    def only(self, filters: list[str]) -> Suite:
        """The suite restricted to runs whose config matches every ``KEY=V1,V2,...`` filter.

        Run names and folders do not change, so a later run of the whole suite continues
        the selected runs and adds the others.

        Raises:
            ConfigError: On an unknown key, a malformed filter, or no run left.
        """
        runs = self.runs
        for text in filters:
            key, _ = parse_override(text)
            check_keys([key], where=f"--only {text!r}")
            wanted = [parse_override(f"{key}={v.strip()}")[1]
                      for v in text.partition("=")[2].split(",") if v.strip()]
            runs = tuple(r for r in runs if getattr(r.config, key) in wanted)
        if not runs:
            raise ConfigError(f"--only {' '.join(filters)}: no run of suite {self.name!r} "
                              "matches")
        return dataclasses.replace(self, runs=runs)

    def manifest(self) -> dict[str, Any]:
        """The JSON document ``suite.json`` that ``fedkit report`` reads back."""
        return {
            "name": self.name,
            "description": self.description,
            "source": str(self.source),
            "name_keys": list(self.name_keys),
            "accuracy_targets": list(self.accuracy_targets),
            "runs": [{"name": r.name, "config": r.config.to_dict()} for r in self.runs],
        }


def scenario_label(availability: str) -> str:
    """A scenario's short name: the file stem of a path, the name itself otherwise.

    Example:
        >>> scenario_label("my_scenarios/alternating.toml")
        'alternating'
    """
    return Path(availability).stem if Path(availability).suffix else Path(availability).name


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"suite file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"suite file {str(path)!r} is not valid TOML: {exc}") from None


def _base_values(data: dict[str, Any], folder: Path, where: str) -> dict[str, Any]:
    base = data.get("base", {})
    if isinstance(base, str):
        return load_config_file(folder / base)
    if not isinstance(base, dict):
        raise ConfigError(f"{where}: 'base' = {base!r}, expected a file name or a table")
    values = dict(base)
    include = values.pop("include", None)
    if include is not None:
        values = {**load_config_file(folder / str(include)), **values}
    return values


def _grid_table(table: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} = {table!r}, expected a table of key = [values]")
    grid = {}
    for key, values in table.items():
        values = values if isinstance(values, list) else [values]
        if key in _RUNNER_KEYS:
            raise ConfigError(f"{where}: key {key!r} is set by the suite for every run and "
                              "cannot be swept; remove it from the grid")
        if not values or any(isinstance(v, dict | list) for v in values):
            raise ConfigError(f"{where}: {key} = {values!r}, expected a non-empty list of "
                              "scalars (string, integer, float, boolean)")
        grid[key] = values
    return grid


def _settings(data: dict[str, Any], where: str) -> dict[str, Any]:
    settings = data.get("suite", {})
    unknown = sorted(set(settings) - _SUITE_KEYS) if isinstance(settings, dict) else None
    if unknown is None or unknown:
        raise ConfigError(f"{where}: [suite] holds unknown key(s) {unknown}; valid keys are "
                          f"{sorted(_SUITE_KEYS)}")
    targets = settings.get("accuracy_targets", list(DEFAULT_TARGETS))
    if not isinstance(targets, list) or not all(
            isinstance(t, int | float) and not isinstance(t, bool) and 0 < t <= 1
            for t in targets):
        raise ConfigError(f"{where}: accuracy_targets = {targets!r}, expected a list of "
                          "fractions in (0, 1]")
    for key, default in (("checkpoint_every", DEFAULT_CHECKPOINT_EVERY), ("jobs", 1)):
        value = settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: [suite] {key} = {value!r}, expected an integer >= 1")
    return {"accuracy_targets": tuple(float(t) for t in targets),
            "checkpoint_every": settings.get("checkpoint_every", DEFAULT_CHECKPOINT_EVERY),
            "jobs": settings.get("jobs", 1),
            "name": str(settings.get("name", "")), "output_dir": settings.get("output_dir"),
            "description": str(settings.get("description", ""))}


def _name_keys(grids: list[dict[str, list[Any]]]) -> tuple[str, ...]:
    seen = list(dict.fromkeys(k for grid in grids for k in grid))
    first = [k for k in _NAME_FIRST if k in seen]
    last = [k for k in _NAME_LAST if k in seen]
    return tuple(first + [k for k in seen if k not in first + last] + last)


def _value_label(key: str, value: Any) -> str:
    text = scenario_label(value) if key == "availability" else str(value).lower()
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)


def run_name(config: RunConfig, name_keys: tuple[str, ...]) -> str:
    """The run's folder name: ``key=value`` for every swept key, joined by ``__``."""
    values = config.to_dict()
    return "__".join(f"{k}={_value_label(k, values[k])}" for k in name_keys) or "run"


def load_suite(path: str | Path, overrides: list[str] | None = None, *,
               output_dir: str | Path | None = None) -> Suite:
    """Read, validate and expand a suite file.

    Args:
        path: The suite TOML file.
        overrides: ``key=value`` run-config overrides applied to every run (``--set``).
        output_dir: The suite folder; default ``[suite] output_dir`` or ``runs/<name>``.

    Returns:
        The suite, one :class:`SuiteRun` per distinct combination of grid values.

    Raises:
        ConfigError: On an unknown table or key, an empty grid list, a run config that
            :class:`~fedkit.config.RunConfig` rejects (the run is named), or two runs with
            the same name and different configs. Identical runs (from overlapping groups,
            or ``--set seed=3`` collapsing a seed sweep) are kept once.

    Example:
        >>> suite = load_suite("simulations/availability_zoo.toml")  # doctest: +SKIP
        >>> suite.runs[0].name  # doctest: +SKIP
        'availability=alternating__algorithm=fedavg__seed=0'
    """
    path = Path(path)
    data = _read_toml(path)
    where = f"suite file {str(path)!r}"
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected tables "
                          f"{sorted(_TOP_KEYS)}")
    settings = _settings(data, where)
    base = _base_values(data, path.parent, where)
    top = _grid_table(data.get("grid", {}), f"{where} [grid]")
    groups = data.get("group", [{}])
    if not isinstance(groups, list) or not groups:
        raise ConfigError(f"{where}: 'group' must be an array of tables ([[group]])")
    grids = [{**top, **_grid_table(g, f"{where} [[group]] #{i + 1}")}
             for i, g in enumerate(groups)]
    name_keys = _name_keys(grids)
    name = settings["name"] or path.stem
    out = Path(output_dir or settings["output_dir"] or Path("runs") / name).resolve()
    runs: dict[str, SuiteRun] = {}
    for grid in grids:
        keys = [k for k in name_keys if k in grid]  # the seed varies fastest
        for combo in itertools.product(*(grid[k] for k in keys)):
            run = _make_run(base, dict(zip(keys, combo, strict=True)), overrides or [],
                            name_keys, settings["checkpoint_every"], out)
            known = runs.get(run.name)
            if known is not None and known.config != run.config:
                raise ConfigError(f"{where}: two runs are named {run.name!r} with different "
                                  "configs; a --set override or a value label collides")
            runs[run.name] = run
    return Suite(name=name, description=settings["description"], source=path,
                 output_dir=out, name_keys=name_keys,
                 accuracy_targets=settings["accuracy_targets"],
                 checkpoint_every=settings["checkpoint_every"], jobs=settings["jobs"],
                 runs=tuple(runs.values()))


def _make_run(base: Mapping[str, Any], combo: dict[str, Any], overrides: list[str],
              name_keys: tuple[str, ...], checkpoint_every: int, out: Path) -> SuiteRun:
    values = apply_overrides({**base, **combo}, overrides)
    if not values.get("checkpoint_every"):
        values["checkpoint_every"] = checkpoint_every
    try:
        config = RunConfig.from_mapping(values)
    except ConfigError as exc:
        raise ConfigError(f"suite run {combo}: {exc}") from None
    name = run_name(config, name_keys)
    config = config.replace(name=name, output_dir=str(out / RUNS_DIR / name), resume=True)
    return SuiteRun(name=name, config=config)
