"""fedkit as a user installs it: a wheel, run outside the checkout.

Everything fedkit reads at run time ships inside the package (the availability scenarios and
their traces, read through ``importlib.resources``), so a wheel installed anywhere runs
``fedkit simulate --set availability=markov``. The ``installed_wheel`` fixture (conftest)
builds the wheel without network and installs it with ``--no-deps`` into a bare folder; the
runs happen in a folder outside the checkout with only that folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_the_scenario_files(installed_wheel):
    names = set(zipfile.ZipFile(installed_wheel.wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "fedkit" / "scenarios").rglob("*")
               if p.is_file()}
    assert {"fedkit/scenarios/markov.toml", "fedkit/scenarios/traces/example_trace.json"} \
        <= shipped <= names
    assert "fedkit/py.typed" in names  # type checkers read the package's hints (PEP 561)


def test_installed_wheel_loads_scenarios_from_the_package(installed_wheel, tmp_path):
    probe = ("import json, fedkit; from fedkit.availability import load_scenario, "
             "list_scenarios; print(json.dumps([fedkit.__file__, list_scenarios(), "
             "load_scenario('markov'), load_scenario('trace')['path']]))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path,
                          env=installed_wheel.env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    module, names, markov, trace = json.loads(done.stdout)
    # The checkout is not what runs: fedkit comes from the installed folder.
    site = installed_wheel.site
    assert Path(module).is_relative_to(site)
    assert {"markov", "alternating", "trace"} <= set(names)
    assert markov == {"model": "markov", "mean_on": 5, "mean_off": 10}
    assert Path(trace).is_relative_to(site) and Path(trace).is_file()


def test_installed_wheel_runs_a_simulation_outside_the_checkout(installed_wheel, tmp_path):
    out = tmp_path / "out"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    done = subprocess.run([str(installed_wheel.fedkit), "simulate", "--set",
                           "availability=markov", "--set", "rounds=2", "--set",
                           f"output_dir={out}", "--quiet"],
                          cwd=cwd, env=installed_wheel.env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["availability"] == "markov"
    assert [r["round"] for r in results["rounds"]] == [1, 2]
    assert "final test accuracy" in done.stdout
