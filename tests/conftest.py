"""Fixtures shared by every test package."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fedkit.data.cifar10 import default_data_dir


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """The folder holding ``cifar-10-batches-py/`` (fedkit's default data folder:
    ``$FEDKIT_DATA`` or the per-user cache); skip, saying why, if the copy is absent.

    Tests never download: ``make test`` builds an offline copy into ``$FEDKIT_DATA`` (the
    Makefile's ``test-data`` target, from the data folder ``$(SHARED)`` beside the checkout).
    """
    root = default_data_dir()
    folder = root / "cifar-10-batches-py"
    required = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        pytest.skip(
            f"offline CIFAR-10 copy not found: {folder} lacks {', '.join(missing)} "
            "(make test builds it from ../shared/data/cifar10; or set FEDKIT_DATA)"
        )
    return Path(root)


ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class InstalledWheel:
    """fedkit's wheel and the bare folder it is installed into (``pip install --target``)."""

    wheel: Path
    site: Path

    @property
    def fedkit(self) -> Path:
        """The ``fedkit`` console script pip wrote."""
        return self.site / "bin" / "fedkit"

    def env(self) -> dict[str, str]:
        """This environment with only the installed folder on ``PYTHONPATH`` (no checkout)."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(self.site)
        return env


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory) -> InstalledWheel:
    """fedkit as a user installs it, without network: the wheel is built from a copy of the
    sources by this environment's setuptools (no build isolation, no index) and installed
    with ``--no-deps``; this environment supplies the dependencies."""
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
    return InstalledWheel(wheel, site)
