"""fedkit as a user installs it: a wheel, run outside the checkout.

Everything fedkit reads at run time ships inside the package (the availability scenarios and
their traces, read through ``importlib.resources``), so a wheel installed anywhere runs
``fedkit simulate --set availability=markov``. The wheel is built from a copy of the sources
by the environment's own setuptools (no build isolation, no index: no network) and installed
with ``--no-deps`` into a bare folder; the environment supplies the dependencies. The runs
happen in a folder outside the checkout with only that folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory) -> tuple[Path, Path]:
    """``(wheel, site)``: fedkit's wheel and the folder it is installed into."""
    work = tmp_path_factory.mktemp("packaging")
    src = work / "src"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(ROOT / "fedkit", src / "fedkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(work / "dist"), str(src)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (work / "dist").glob("fedkit-*.whl")
    site = work / "site"
    installed = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target",
                                str(site), str(wheel)], capture_output=True, text=True,
                               timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return wheel, site


def _outside_env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    return env


def test_wheel_holds_the_scenario_files(wheel_install):
    wheel, _ = wheel_install
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "fedkit" / "scenarios").rglob("*")
               if p.is_file()}
    assert {"fedkit/scenarios/markov.toml", "fedkit/scenarios/traces/example_trace.json"} \
        <= shipped <= names


def test_installed_wheel_loads_scenarios_from_the_package(wheel_install, tmp_path):
    _, site = wheel_install
    probe = ("import json, fedkit; from fedkit.availability import load_scenario, "
             "list_scenarios; print(json.dumps([fedkit.__file__, list_scenarios(), "
             "load_scenario('markov'), load_scenario('trace')['path']]))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=_outside_env(site),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    module, names, markov, trace = json.loads(done.stdout)
    # The checkout is not what runs: fedkit comes from the installed folder.
    assert Path(module).is_relative_to(site)
    assert {"markov", "alternating", "trace"} <= set(names)
    assert markov == {"model": "markov", "mean_on": 5, "mean_off": 10}
    assert Path(trace).is_relative_to(site) and Path(trace).is_file()


def test_installed_wheel_runs_a_simulation_outside_the_checkout(wheel_install, tmp_path):
    _, site = wheel_install
    fedkit = site / "bin" / "fedkit"  # the console script pip wrote
    out = tmp_path / "out"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    done = subprocess.run([str(fedkit), "simulate", "--set", "availability=markov",
                           "--set", "rounds=2", "--set", f"output_dir={out}", "--quiet"],
                          cwd=cwd, env=_outside_env(site), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["availability"] == "markov"
    assert [r["round"] for r in results["rounds"]] == [1, 2]
    assert "final test accuracy" in done.stdout
