"""Scenario files and the model registry: one TOML file names a model and its parameters.

:func:`load_scenario` reads ``<name>.toml`` (flat keys: ``model`` plus its parameters) from the
scenario folder shipped inside the package (``fedkit/scenarios/``, package data read through
:mod:`importlib.resources`, so it works from an installed wheel) or any TOML file given by
path; a trace ``path`` is returned absolute. :func:`build_availability` turns the mapping into
a model for the run's clients and seed. Model names use hyphens; underscores are accepted.
See docs/availability.md, "Scenario files".
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from fedkit.availability.alternating import AlternatingAvailability
from fedkit.availability.base import AvailabilityModel, ClientInfo
from fedkit.availability.fedau import FedAUAvailability
from fedkit.availability.flgo import FLGoAvailability
from fedkit.availability.markov import MarkovAvailability
from fedkit.availability.memoryless import (
    AlwaysAvailable,
    BernoulliAvailability,
    ClassCorrelatedAvailability,
)
from fedkit.availability.trace import TraceAvailability

__all__ = [
    "MODELS",
    "SCENARIO_DIR",
    "build_availability",
    "list_scenarios",
    "load_scenario",
]


MODELS: dict[str, Any] = {
    cls.NAME: cls
    for cls in (
        AlwaysAvailable,
        BernoulliAvailability,
        ClassCorrelatedAvailability,
        FedAUAvailability,
        AlternatingAvailability,
        MarkovAvailability,
        FLGoAvailability,
        TraceAvailability,
    )
}
"""Registry: model name -> class (each has ``NAME``, ``SPEC_KEYS`` and ``from_spec``)."""

SCENARIO_DIR: Traversable = resources.files("fedkit").joinpath("scenarios")
"""The scenario folder shipped inside the package (``fedkit/scenarios/``, package data).

A :class:`~importlib.resources.abc.Traversable`: ``SCENARIO_DIR.joinpath("markov.toml")``,
``.iterdir()``, ``.read_text()``. pip installs fedkit as a folder, so it is also a
:class:`pathlib.Path` there (``str(SCENARIO_DIR)`` is the folder on disk).
"""


def build_availability(
    spec: Mapping[str, Any], client_info: ClientInfo, *, seed: int
) -> AvailabilityModel:
    """Build the availability model a scenario spec describes.

    Args:
        spec: ``{"model": name, **parameters}``, e.g. from :func:`load_scenario`.
        client_info: The run's clients (sizes and label histograms).
        seed: The run's root seed (unused by deterministic models).

    Returns:
        The model; ``model.num_clients == client_info.num_clients``.

    Raises:
        ValueError: If ``model`` is missing or unknown, or a parameter is unknown or invalid
            (the message names it and lists the valid ones).
        FileNotFoundError: If a trace file does not exist.

    Example:
        >>> info = ClientInfo.one_class_per_client([0, 1], num_classes=2)
        >>> build_availability({"model": "bernoulli", "p": 0.5}, info, seed=0).describe()
        {'model': 'bernoulli', 'p': 0.5, 'seed': 0}
    """
    if not isinstance(spec, Mapping) or "model" not in spec:
        raise ValueError(
            f"availability spec {dict(spec) if isinstance(spec, Mapping) else spec!r} has no "
            f"'model' key, expected one of: {', '.join(MODELS)}"
        )
    if not isinstance(client_info, ClientInfo):
        raise TypeError(
            f"client_info is a {type(client_info).__name__}, expected a ClientInfo "
            "(ClientInfo.from_report(partition_report) builds one)"
        )
    name = spec["model"]
    key = name.replace("_", "-") if isinstance(name, str) else name
    if key not in MODELS:
        raise ValueError(
            f"unknown availability model {name!r}, expected one of: {', '.join(MODELS)}"
        )
    params = {k: v for k, v in spec.items() if k != "model"}
    return MODELS[key].from_spec(params, client_info, seed=seed)


def list_scenarios(search_dir: str | Path | Traversable | None = None) -> list[str]:
    """Names of the scenario files (``*.toml`` stems) in ``search_dir`` (default: shipped)."""
    folder = _folder(search_dir)
    if not folder.is_dir():
        return []
    return sorted(entry.name[: -len(".toml")] for entry in folder.iterdir()
                  if entry.name.endswith(".toml") and entry.is_file())


def _folder(search_dir: str | Path | Traversable | None) -> Path | Traversable:
    if search_dir is None:
        return SCENARIO_DIR
    return Path(search_dir) if isinstance(search_dir, str | Path) else search_dir


def load_scenario(name_or_path: str | Path, *,
                  search_dir: str | Path | Traversable | None = None) -> dict:
    """Read a scenario file.

    Args:
        name_or_path: A bare name (``"alternating"`` means ``<search_dir>/alternating.toml``)
            or a path to a ``.toml`` file (anything with a suffix or a directory part).
        search_dir: Where bare names are looked up; default :data:`SCENARIO_DIR` (the
            scenarios shipped in the package).

    Returns:
        The flat mapping of the file, with a trace ``path`` made absolute (relative to the
        file's folder; a shipped scenario's trace is a file of the installed package).

    Raises:
        FileNotFoundError: If the file does not exist (the message lists the available names).
        ValueError: If the file is not valid TOML, has no ``model`` string or holds a table.

    Example:
        >>> load_scenario("alternating")["model"]
        'alternating'
    """
    raw = Path(name_or_path)
    is_path = raw.suffix != "" or len(raw.parts) > 1
    folder = raw.parent if is_path else _folder(search_dir)
    file = raw if is_path else folder.joinpath(f"{raw}.toml")
    if not file.is_file():
        names = list_scenarios(folder)
        raise FileNotFoundError(
            f"scenario {str(name_or_path)!r}: no file {str(file)!r}; available scenarios in "
            f"{str(folder)!r}: {', '.join(names) if names else 'none'}"
        )
    try:
        spec = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"scenario file {str(file)!r} is not valid TOML: {err}") from err
    if not isinstance(spec.get("model"), str):
        raise ValueError(
            f"scenario file {str(file)!r}: model = {spec.get('model')!r}, expected a model name "
            f"(one of: {', '.join(MODELS)})"
        )
    for key, value in spec.items():
        if isinstance(value, dict):
            raise ValueError(
                f"scenario file {str(file)!r}: [{key}] is a table, expected flat keys "
                "(model = ..., then the model's parameters)"
            )
    if isinstance(spec.get("path"), str) and not Path(spec["path"]).is_absolute():
        spec["path"] = str(Path(str(folder.joinpath(spec["path"]))).resolve())
    return spec
