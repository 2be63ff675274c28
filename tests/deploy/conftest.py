"""Fixtures for deployment tests: one TLS + SuperNode-auth federation on 127.0.0.1 per module.

Every process is started by :class:`fedkit.deploy.LocalFederation` (free ports, its own
FLWR_HOME under the module's temporary folder) and stopped by PID when the module ends,
also when a test fails. ``pytest -m deploy`` selects these tests; ``-m "not deploy"`` skips
them.
"""

from __future__ import annotations

import pytest

from fedkit.deploy import LocalFederation


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "deploy: end-to-end runs on real SuperLink/SuperNode processes (slow)")


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    """A SuperLink (TLS, SuperNode authentication) and SuperNodes for client ids 0, 1, 2."""
    fed = LocalFederation(tmp_path_factory.mktemp("federation"), num_nodes=3, tls=True,
                          auth=True)
    fed.start()
    try:
        yield fed
    finally:
        fed.close()
