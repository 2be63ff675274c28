"""Fixtures shared by every test package."""

from __future__ import annotations

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
