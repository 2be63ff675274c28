"""The Flower app bundle (FAB) that ``flwr run`` builds from the checkout.

Flower packs every ``.py/.toml/.md/.json`` file of the project unless ``fab-include`` narrows
it, and refuses a bundle over 10 MB; the result files under ``docs/results`` once pushed it
past that limit and broke every ``flwr run``. pyproject's ``fab-include`` keeps the bundle to
the package (with its scenario files, package data) and the README.
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from fedkit.flower.runtime.flwr_cli import find_project_root, flower_env

FLOWER_FAB_LIMIT = 10 * 1024 * 1024  # flwr 1.42: "FAB size exceeds maximum allowed size"


@pytest.fixture(scope="module")
def fab(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fab")
    done = subprocess.run(["flwr", "build", "--app", str(find_project_root())], cwd=out,
                          env=flower_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = out.glob("*.fab")
    return path


def test_fab_is_under_flowers_limit_and_holds_the_app(fab: Path) -> None:
    assert fab.stat().st_size < FLOWER_FAB_LIMIT
    names = set(zipfile.ZipFile(fab).namelist())
    assert {"pyproject.toml", "fedkit/flower/apps/server_app.py",
            "fedkit/flower/apps/client_app.py", "fedkit/scenarios/alternating.toml",
            "fedkit/scenarios/traces/example_trace.json"} <= names


def test_fab_leaves_out_results_docs_and_tests(fab: Path) -> None:
    names = zipfile.ZipFile(fab).namelist()
    left_in = [n for n in names if n.startswith(("docs/", "benchmarks/", "tests/", "runs/"))]
    assert left_in == []
