"""Fixtures for deployment tests: one TLS + SuperNode-auth federation on 127.0.0.1 per module.

Every process is started by :class:`fedkit.deploy.LocalFederation` (free ports, its own
FLWR_HOME under the module's temporary folder) and stopped by PID when the module ends,
also when a test fails. ``pytest -m deploy`` selects these tests; ``-m "not deploy"`` skips
them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from fedkit.deploy import LocalFederation


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "deploy: end-to-end runs on real SuperLink/SuperNode processes (slow)")


@pytest.fixture(scope="module")
def deploy_tmp():
    """A module's own temporary folder. Not pytest's tmp_path: other pytest sessions on the
    machine prune old numbered basetemp folders, which these minutes-long tests outlive."""
    folder = Path(tempfile.mkdtemp(prefix="fedkit-deploy-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def run_dir(deploy_tmp, request):
    """A fresh folder for one test's run outputs."""
    folder = deploy_tmp / request.node.name
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def federation(deploy_tmp):
    """A SuperLink (TLS, SuperNode authentication) and SuperNodes for client ids 0, 1, 2;
    signing keys for client ids 0-3 (secure aggregation's consistency round), each node given
    its own key file and the key list in its node config."""
    fed = LocalFederation(deploy_tmp / "federation", num_nodes=3, tls=True, auth=True,
                          secagg_keys=4)
    fed.start()
    try:
        yield fed
    finally:
        fed.close()
