"""Build a model by name, with a deterministic initialisation derived from the run's seed.

``build_model`` is the one place where a config's ``model = "..."`` key becomes a torch
module. Initialisation draws from torch's CPU generator inside ``torch.random.fork_rng``, seeded
with ``derive_seed(seed, "model-init")``; the global RNG state is restored afterwards, so
building a model never shifts any other consumer's random numbers (docs/design.md, "Sampling
and randomness").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from fedkit.models._checks import check_input_shape
from fedkit.models.fedavg_cnn import FedAvgCNN
from fedkit.models.lenet import LENET5_INPUT_SHAPE, LeNet5
from fedkit.models.logistic import LogisticRegression
from fedkit.seeding import derive_seed

__all__ = ["MODEL_NAMES", "build_model"]

_SEED_PURPOSE = "model-init"


def _build_lenet5(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if input_shape != LENET5_INPUT_SHAPE:
        raise ValueError(
            f"build_model('lenet5'): input_shape must be {LENET5_INPUT_SHAPE} (RGB 32x32, "
            f"channels first), got {input_shape!r}; use 'fedavg-cnn' or 'logreg' for other shapes"
        )
    return LeNet5(num_classes=num_classes)


def _build_fedavg_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return FedAvgCNN(input_shape=input_shape, num_classes=num_classes)  # type: ignore[arg-type]


def _build_logreg(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return LogisticRegression(num_features=math.prod(input_shape), num_classes=num_classes)


_BUILDERS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "lenet5": _build_lenet5,
    "fedavg-cnn": _build_fedavg_cnn,
    "logreg": _build_logreg,
}

MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)
"""The names :func:`build_model` accepts."""


def build_model(
    name: str, *, input_shape: tuple[int, ...], num_classes: int, seed: int
) -> nn.Module:
    """Build the model called ``name`` with parameters initialised from ``seed``.

    Args:
        name: One of :data:`MODEL_NAMES`: ``"lenet5"`` (:class:`LeNet5`, needs
            ``input_shape == (3, 32, 32)``), ``"fedavg-cnn"`` (:class:`FedAvgCNN`, any
            ``(C, H, W)`` with H, W >= 4) or ``"logreg"`` (:class:`LogisticRegression` on the
            flattened sample, any shape).
        input_shape: Shape of one model input, without the batch axis (``Split.input_shape``).
        num_classes: Number of classes (output logits), at least 2.
        seed: The run's root seed; the initialisation uses the stream
            ``derive_seed(seed, "model-init")``.

    Returns:
        A new CPU module in training mode. The same arguments give an identical
        ``state_dict`` on the same machine; torch's global RNG state is left unchanged.

    Raises:
        ValueError: If ``name`` is unknown (the message lists the valid names), or
            ``input_shape`` / ``num_classes`` do not suit the model.
        TypeError: If ``seed`` is not an integer.

    Example:
        >>> model = build_model("lenet5", input_shape=(3, 32, 32), num_classes=10, seed=0)
        >>> type(model).__name__
        'LeNet5'

    References:
        ``torch.random.fork_rng``; :func:`fedkit.seeding.derive_seed`.
    """
    builder = _BUILDERS.get(name) if isinstance(name, str) else None
    if builder is None:
        raise ValueError(
            f"build_model: unknown model name {name!r}; expected one of "
            f"{', '.join(repr(n) for n in MODEL_NAMES)}"
        )
    shape = check_input_shape(f"build_model({name!r})", input_shape)
    init_seed = derive_seed(seed, _SEED_PURPOSE)
    # fork_rng(devices=[]) saves and restores only the CPU generator, so seed only that one
    # (torch.manual_seed would also reseed every CUDA generator, outside the fork).
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(init_seed)
        return builder(shape, num_classes)
