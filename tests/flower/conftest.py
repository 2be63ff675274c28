"""Flower environment for tests: no telemetry, no update check, isolated FLWR_HOME/RAY_TMPDIR."""

import os
import shutil
import tempfile

import pytest


@pytest.fixture(autouse=True, scope="session")
def flower_environment():
    flwr_home = tempfile.mkdtemp(prefix="fedkit-flwr-home-")
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    saved = {k: os.environ.get(k) for k in _VARS}
    os.environ.update({
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_HOME": flwr_home,
        "RAY_TMPDIR": ray_tmp,
    })
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(flwr_home, ignore_errors=True)
    shutil.rmtree(ray_tmp, ignore_errors=True)


_VARS = ("FLWR_TELEMETRY_ENABLED", "FLWR_DISABLE_UPDATE_CHECK",
         "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "FLWR_HOME", "RAY_TMPDIR")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "ray_cluster: runs on a Ray cluster of two nodes started by the test (slow)")
