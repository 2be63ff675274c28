"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """The folder holding ``cifar-10-batches-py/``, from ``$FEDKIT_DATA``; skip if absent.

    Tests never download: ``make test`` builds an offline copy from ../shared/data/cifar10
    (``python ../shared/data/cifar10/build.py OUT_ROOT``) and sets ``FEDKIT_DATA=OUT_ROOT``.
    """
    root = os.environ.get("FEDKIT_DATA", "")
    if not root:
        pytest.skip(
            "CIFAR-10 test data not configured: set FEDKIT_DATA to a folder holding "
            "cifar-10-batches-py/ (build one with python ../shared/data/cifar10/build.py OUT_ROOT)"
        )
    folder = Path(root) / "cifar-10-batches-py"
    required = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"FEDKIT_DATA={root} lacks {folder}/{{{', '.join(missing)}}}")
    return Path(root)
