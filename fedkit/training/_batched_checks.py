"""Inputs of the batched trainer: :class:`ClientJob`, :func:`can_batch`, start-state checks.

Validation happens here, once, at the boundary of :func:`fedkit.training.train_local_batched`;
the step loop then computes on trusted input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real

import numpy as np
import torch
from torch import nn

__all__ = ["ClientJob", "can_batch", "check_start_states"]

_UNBATCHABLE = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.dropout._DropoutNd,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


def _check_positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"ClientJob.{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True, kw_only=True, eq=False)
class ClientJob:
    """One client's share of a batched round.

    Attributes:
        indices: The client's sample positions in the data (1-D integer array or tensor); not
            modified. Checked against the data by :func:`train_local_batched`.
        generator: The CPU generator the sequential path would get for this client, e.g.
            ``torch_generator(seed, "local-sgd", round, client_id)``; it is advanced exactly as
            :func:`fedkit.training.train_local` advances it.
        lr: The client's learning rate (> 0).
        loss_scale: Factor on the client's mean cross-entropy (> 0); FedLaAvg uses
            ``N * n_i / n``.

    Raises:
        TypeError: If ``indices`` is not an array or tensor, or ``generator`` is not a CPU
            ``torch.Generator``.
        ValueError: If ``lr`` or ``loss_scale`` is not a finite number > 0.

    Example:
        >>> job = ClientJob(indices=np.arange(50), generator=torch.Generator().manual_seed(0),
        ...                 lr=0.01)
        >>> job.loss_scale
        1.0
    """

    indices: np.ndarray | torch.Tensor
    generator: torch.Generator
    lr: float
    loss_scale: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.indices, np.ndarray | torch.Tensor):
            raise TypeError(
                "ClientJob.indices must be a numpy array or torch tensor of sample positions, "
                f"got {type(self.indices).__name__}"
            )
        gen = self.generator
        if not isinstance(gen, torch.Generator) or gen.device.type != "cpu":
            raise TypeError(
                f"ClientJob.generator must be a CPU torch.Generator (the client's minibatch "
                f"stream, as train_local takes it), got {gen!r}"
                + (f" on device {gen.device}" if isinstance(gen, torch.Generator) else "")
            )
        _check_positive("lr", self.lr)
        _check_positive("loss_scale", self.loss_scale)


def can_batch(model: nn.Module) -> tuple[bool, str]:
    """Say whether :func:`train_local_batched` can train ``model``, and if not, why.

    A model can be batched when its state is trainable floating-point parameters only (no
    buffers such as batch-norm statistics, no frozen or tied parameters) and it has no
    dropout or batch normalisation (their training-mode behaviour depends on the batch or on
    the global RNG, which a batched step cannot reproduce). LeNet5, FedAvgCNN and
    LogisticRegression qualify. A forward pass with in-place or data-dependent Python control
    flow may still fail under ``vmap``; fedkit's models use only functional operations.

    Args:
        model: The model (template) to inspect; not modified.

    Returns:
        ``(True, "")`` or ``(False, reason)`` with a reason naming the offending submodule or
        tensor.

    Example:
        >>> can_batch(nn.Linear(3, 2))
        (True, '')
        >>> can_batch(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)))[0]
        False
    """
    if not isinstance(model, nn.Module):
        return False, f"expected a torch.nn.Module, got {type(model).__name__}"
    for name, module in model.named_modules():
        if isinstance(module, _UNBATCHABLE):
            return False, f"submodule {name!r} is a {type(module).__name__}"
    for name, _ in model.named_buffers():
        return False, f"buffer {name!r} is part of the state (only parameters can be batched)"
    params = dict(model.named_parameters())
    if not params:
        return False, "the model has no parameters"
    for name, param in params.items():
        if not param.requires_grad:
            return False, f"parameter {name!r} is frozen (requires_grad=False)"
        if not param.is_floating_point():
            return False, f"parameter {name!r} has dtype {param.dtype}, expected floating point"
    keys = set(model.state_dict())
    if keys != set(params):
        extra = sorted(keys - set(params))
        return False, f"state_dict entries {extra} are not distinct parameters (tied weights?)"
    return True, ""


def check_start_states(
    start_states: Sequence[Mapping[str, torch.Tensor]] | Mapping[str, torch.Tensor],
    reference: Mapping[str, torch.Tensor],
    num_jobs: int,
    *,
    owner: str,
) -> list[Mapping[str, torch.Tensor]]:
    """Return one validated state per job (a shared state is repeated, not copied).

    Raises:
        ValueError: If there is not one state per job, or a state's keys or shapes differ
            from ``reference`` (the model's ``state_dict()``).
    """
    if isinstance(start_states, Mapping):
        states: list[Mapping[str, torch.Tensor]] = [start_states]
    elif isinstance(start_states, Sequence) and not isinstance(start_states, str | bytes):
        states = list(start_states)
        if len(states) != num_jobs:
            raise ValueError(
                f"{owner}: start_states holds {len(states)} state dicts for {num_jobs} jobs, "
                "expected one per job or a single shared state dict"
            )
    else:
        raise ValueError(
            f"{owner}: start_states must be a state dict or a sequence of them, got "
            f"{type(start_states).__name__}"
        )
    for i, state in enumerate(states):
        where = "start_states" if isinstance(start_states, Mapping) else f"start_states[{i}]"
        if not isinstance(state, Mapping) or set(state) != set(reference):
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(
                f"{owner}: {where} has keys {got}, expected the model's state_dict keys "
                f"{sorted(reference)}"
            )
        for name, want in reference.items():
            got_t = state[name]
            if not isinstance(got_t, torch.Tensor) or got_t.shape != want.shape:
                shape = tuple(got_t.shape) if isinstance(got_t, torch.Tensor) else got_t
                raise ValueError(
                    f"{owner}: {where}[{name!r}] has shape {shape}, expected {tuple(want.shape)}"
                )
    return states * num_jobs if isinstance(start_states, Mapping) else states
