"""The minibatch plan of a batched round: every client's step batches, drawn up front.

:func:`plan_minibatches` replays the minibatch rule of :func:`fedkit.training.train_local`
(see :mod:`fedkit.training.local_sgd`) with each client's own generator, making exactly the
sequential trainer's generator calls in the same order, clients in the order given (generators
may be shared). ``positions[s, k, :counts[s, k]]`` are client k's sample positions at step s,
the rest padding (``pad_position``, masked out); clients are laid out by number of steps,
longest first (stable), so those still training at step s are a prefix ``[:num_active[s]]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["MinibatchPlan", "plan_minibatches"]


@dataclass(frozen=True)
class MinibatchPlan:
    """Padded step batches of K clients.

    Attributes:
        order: Column ``c`` of the layout holds client ``order[c]`` (of the input order).
        positions: ``int64 [S, K, B]`` sample positions (padding holds ``pad_position``),
            with ``B = min(batch_size, largest client size)``.
        counts: ``int64 [S, K]`` real samples per column and step (0 after its last step).
        num_active: ``num_active[s]`` columns train at step ``s`` (a prefix).
    """

    order: tuple[int, ...]
    positions: torch.Tensor
    counts: torch.Tensor
    num_active: tuple[int, ...]


def _client_batches(
    index: torch.Tensor, num_steps: int, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """Return ``[num_steps, batch_size]`` positions of one client, ``-1`` where padded."""
    num_examples = index.numel()
    per_pass = math.ceil(num_examples / batch_size)
    padded_len = per_pass * batch_size
    passes = []
    steps = 0
    while steps < num_steps:  # the same draws as train_local: one randperm per started pass
        order = index[torch.randperm(num_examples, generator=generator)]
        if padded_len > num_examples:
            order = torch.cat([order, order.new_full((padded_len - num_examples,), -1)])
        passes.append(order.view(per_pass, batch_size))
        steps += per_pass
    return torch.cat(passes)[:num_steps]


def plan_minibatches(
    indices: Sequence[torch.Tensor],
    num_steps: Sequence[int],
    batch_size: int,
    generators: Sequence[torch.Generator],
    *,
    pad_position: int = 0,
) -> MinibatchPlan:
    """Draw every client's step batches with its generator and lay them out padded.

    Args:
        indices: Per client, its validated 1-D int64 CPU sample positions (non-empty).
        num_steps: Per client, the number of optimizer steps (>= 1).
        batch_size: The minibatch size B.
        generators: Per client, the CPU generator the sequential trainer would get; each is
            advanced exactly as :func:`~fedkit.training.train_local` advances it.
        pad_position: A valid sample position used for padding (masked out of the loss).

    Returns:
        A :class:`MinibatchPlan`.
    """
    num_clients = len(indices)
    order = tuple(sorted(range(num_clients), key=lambda k: -num_steps[k]))
    column = {k: c for c, k in enumerate(order)}
    max_steps = num_steps[order[0]]
    width = min(batch_size, max(index.numel() for index in indices))
    positions = torch.full((max_steps, num_clients, width), -1, dtype=torch.int64)
    for k, (index, steps, gen) in enumerate(zip(indices, num_steps, generators, strict=True)):
        batches = _client_batches(index, steps, batch_size, gen)
        positions[:steps, column[k]] = batches[:, :width]  # the cut columns are padding
    real = positions >= 0
    counts = real.sum(dim=2)
    positions.masked_fill_(~real, pad_position)
    sorted_steps = [num_steps[k] for k in order]
    num_active = tuple(sum(1 for steps in sorted_steps if steps > s) for s in range(max_steps))
    return MinibatchPlan(order=order, positions=positions, counts=counts, num_active=num_active)
