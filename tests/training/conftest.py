"""Fixtures for the training tests: tiny in-memory datasets of float32 features."""

from __future__ import annotations

import pytest
import torch

from fedkit.data import Split


@pytest.fixture(scope="session")
def make_split():
    """Return ``make(x, y, num_classes)``, building a Split of float32 features (stateless)."""

    def make(x: torch.Tensor, y: torch.Tensor, num_classes: int):
        return Split(
            x=torch.as_tensor(x, dtype=torch.float32),
            y=torch.as_tensor(y, dtype=torch.int64),
            num_classes=num_classes,
        )

    return make


@pytest.fixture(scope="session")
def blobs(make_split):
    """Three well-separated Gaussian blobs in 2-D, 40 samples each (linearly separable)."""
    gen = torch.Generator().manual_seed(1234)
    centers = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    y = torch.arange(3).repeat_interleave(40)
    x = centers[y] + 0.5 * torch.randn(120, 2, generator=gen)
    return make_split(x, y, 3)
