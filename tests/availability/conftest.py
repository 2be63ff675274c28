"""Fixtures of the availability tests."""

from __future__ import annotations

import pytest
from availability_helpers import mixed_client_info

from fedkit.availability import ClientInfo


@pytest.fixture(scope="module")
def info() -> ClientInfo:
    """40 clients with skewed label histograms over 10 classes."""
    return mixed_client_info()
