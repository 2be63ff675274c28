"""Local training of one client: plain minibatch SGD on its samples.

A client's minibatches follow one rule everywhere (sequential and batched trainers alike):
at the start of every pass over its ``n`` samples the client draws one permutation of its
indices from its own ``torch.Generator`` and takes consecutive batches of ``batch_size``; the
last batch of a pass holds the ``n mod batch_size`` leftover samples when that is not zero.
``local_steps=C`` runs exactly C optimizer steps, starting a new (reshuffled) pass whenever one
runs out; ``local_epochs=E`` runs E full passes, ``E * ceil(n / batch_size)`` steps.

The loss of a step is ``loss_scale * mean cross-entropy`` of the batch. FedLaAvg scales client
i's loss by ``N * n_i / n`` so that the server's plain average over clients optimises the
data-weighted objective; for plain SGD (no momentum, no weight decay) scaling the loss by s
is the same as scaling the learning rate by s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from fedkit.training._indices import IndexLike, as_index_tensor
from fedkit.training._mode import module_mode

if TYPE_CHECKING:
    from fedkit.data import Split

__all__ = ["LocalSGDConfig", "TrainResult", "train_local"]


def _check_real(name: str, value: object, *, low: float, low_inclusive: bool) -> None:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value >= low if low_inclusive else value > low
    if not ok:
        bound = f">= {low}" if low_inclusive else f"> {low}"
        raise ValueError(f"LocalSGDConfig.{name} must be a finite number {bound}, got {value!r}")


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"LocalSGDConfig.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class LocalSGDConfig:
    """Hyperparameters of a client's local SGD.

    Attributes:
        lr: Learning rate (> 0).
        batch_size: Minibatch size (>= 1); a client with fewer samples trains full-batch.
        local_steps: Number of optimizer steps per call (FedLaAvg's C). Exactly one of
            ``local_steps`` and ``local_epochs`` must be set.
        local_epochs: Number of passes over the client's samples per call (FedAvg's E).
        loss_scale: Factor on the mean cross-entropy (> 0); FedLaAvg uses ``N * n_i / n``.
        weight_decay: L2 penalty passed to ``torch.optim.SGD`` (>= 0); it is not scaled by
            ``loss_scale``.
        momentum: Heavy-ball momentum in [0, 1); the buffer starts at zero in every call.

    Raises:
        ValueError: On construction, naming the field, the bad value and what was expected.

    Example:
        >>> LocalSGDConfig(lr=0.01, batch_size=5, local_steps=10).num_steps(50)
        10

    References:
        Yan et al., FedLaAvg, arXiv:2002.07399 (C local steps, loss scaled by N n_i / n);
        McMahan et al., AISTATS 2017, Algorithm 1 (E local epochs of batch size B).
    """

    lr: float
    batch_size: int
    local_steps: int | None = None
    local_epochs: int | None = None
    loss_scale: float = 1.0
    weight_decay: float = 0.0
    momentum: float = 0.0

    def __post_init__(self) -> None:
        _check_real("lr", self.lr, low=0.0, low_inclusive=False)
        _check_count("batch_size", self.batch_size)
        if (self.local_steps is None) == (self.local_epochs is None):
            raise ValueError(
                "LocalSGDConfig: set exactly one of local_steps and local_epochs, got "
                f"local_steps={self.local_steps!r}, local_epochs={self.local_epochs!r}"
            )
        if self.local_steps is not None:
            _check_count("local_steps", self.local_steps)
        if self.local_epochs is not None:
            _check_count("local_epochs", self.local_epochs)
        _check_real("loss_scale", self.loss_scale, low=0.0, low_inclusive=False)
        _check_real("weight_decay", self.weight_decay, low=0.0, low_inclusive=True)
        _check_real("momentum", self.momentum, low=0.0, low_inclusive=True)
        if self.momentum >= 1.0:
            raise ValueError(f"LocalSGDConfig.momentum must be in [0, 1), got {self.momentum!r}")

    def num_steps(self, num_examples: int) -> int:
        """Return the number of optimizer steps one call makes for a client of this size."""
        if self.local_epochs is not None:
            return self.local_epochs * math.ceil(num_examples / self.batch_size)
        return cast(int, self.local_steps)


@dataclass(frozen=True)
class TrainResult:
    """What one call of :func:`train_local` did.

    Attributes:
        num_examples: Number of the client's samples (``len(indices)``), the usual FedAvg
            weight; not the number of samples processed.
        num_steps: Number of optimizer steps taken.
        mean_loss: Mean cross-entropy over every sample processed, before ``loss_scale``,
            each sample weighted once per time it was in a batch (the loss at the parameters
            of the step that used it).
    """

    num_examples: int
    num_steps: int
    mean_loss: float


def train_local(
    model: nn.Module,
    data: Split,
    indices: IndexLike,
    config: LocalSGDConfig,
    *,
    generator: torch.Generator,
) -> TrainResult:
    """Train ``model`` in place with SGD on ``data`` at ``indices``.

    Args:
        model: The model; its parameters are updated in place. It runs in training mode and
            every submodule's mode is restored afterwards. Batches are moved to the device of
            its first parameter. Gradients found on it are discarded, and its ``.grad``
            attributes are ``None`` on return.
        data: The dataset; ``data.features(index)`` gives the float model input.
        indices: 1-D integer positions of the client's samples in ``data`` (array, tensor or
            sequence); not modified.
        config: The local SGD hyperparameters.
        generator: A CPU ``torch.Generator``, the client's minibatch stream (for example
            ``torch_generator(seed, "local-sgd", round, client_id)``); it is advanced.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: If ``indices`` is empty, not 1-D integer, or out of range.
        TypeError: If ``config`` is not a :class:`LocalSGDConfig` or ``generator`` is not a
            CPU ``torch.Generator``.

    Example:
        >>> gen = torch_generator(0, "local-sgd", 3, 17)  # doctest: +SKIP
        >>> train_local(model, split, idx, config, generator=gen)  # doctest: +SKIP
        TrainResult(num_examples=50, num_steps=10, mean_loss=2.27...)

    References:
        Yan et al., FedLaAvg, arXiv:2002.07399 (client update, C local steps, loss scale).
    """
    if not isinstance(config, LocalSGDConfig):
        raise TypeError(f"train_local: config must be a LocalSGDConfig, got {type(config)!r}")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise TypeError(f"train_local: generator must be a CPU torch.Generator, got {generator!r}")
    index = as_index_tensor(indices, len(data), owner="train_local")
    num_examples = index.numel()
    batch_size = config.batch_size
    num_steps = config.num_steps(num_examples)
    first_param = next(model.parameters())
    device = first_param.device
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    scale = None
    if config.loss_scale != 1.0:
        scale = torch.tensor(config.loss_scale, dtype=first_param.dtype, device=device)
    num_processed = 0
    step = 0
    with module_mode(model, training=True):
        while step < num_steps:
            order = index[torch.randperm(num_examples, generator=generator)]
            for start in range(0, num_examples, batch_size):
                if step == num_steps:
                    break
                batch = order[start : start + batch_size]
                inputs = data.features(batch).to(device, non_blocking=True)
                labels = data.y[batch].to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(inputs), labels)
                loss.backward(scale)
                optimizer.step()
                loss_sum.add_(loss.detach(), alpha=batch.numel())
                num_processed += batch.numel()
                step += 1
    optimizer.zero_grad(set_to_none=True)
    return TrainResult(
        num_examples=num_examples,
        num_steps=num_steps,
        mean_loss=float(loss_sum) / num_processed,
    )
