"""Run a block with a module in train or eval mode, then restore every submodule's own mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["module_mode"]


@contextmanager
def module_mode(model: nn.Module, *, training: bool) -> Iterator[nn.Module]:
    """Set ``model.train(training)`` for the block; afterwards restore each submodule's flag.

    ``model.train(previous)`` would not do: it sets every submodule to one mode, losing a
    caller's mix (for example a frozen, eval-mode backbone inside a training model).
    """
    previous = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for module, was_training in previous:
            module.training = was_training
