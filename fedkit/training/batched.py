"""Batched local training: the K clients of one round train together, in one computation.

:func:`train_local_batched` computes, for K clients at once, what K calls of
:func:`fedkit.training.train_local` compute one after another -- same minibatches (the same
generator calls, in the same order), same loss, same SGD update -- up to float32 rounding. It
is the engine of the batched in-process grid, which may change how a round's train messages
are executed, never what they compute (docs/design.md, "Principles"). Gradients come from
``vmap(grad(functional_call))`` over the stacked parameters, or for an unmodified LeNet5 from
one grouped network (:mod:`fedkit.training._batched_lenet`); padded samples are masked out of
the loss. :func:`can_batch` accepts models whose state is trainable floating-point parameters
only (no buffers, dropout or batch normalisation): LeNet5, FedAvgCNN, LogisticRegression;
callers fall back to :func:`train_local` otherwise. See docs/design.md, "Batched engine".

References:
    Yan et al., FedLaAvg, arXiv:2002.07399 (C local steps, loss scaled by N n_i / n);
    McMahan et al., AISTATS 2017, Algorithm 1 (E local epochs);
    ``torch.func.functional_call``, ``torch.func.vmap``, ``torch.func.grad``;
    ``torch.optim.SGD`` (update rule with momentum and weight decay).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from fedkit.training._batched_checks import ClientJob, can_batch, check_start_states
from fedkit.training._batched_lenet import (
    grouped_images,
    is_plain_lenet5,
    lenet5_loss_grads,
    lenet5_sgd_step,
)
from fedkit.training._batched_plan import MinibatchPlan, plan_minibatches
from fedkit.training._indices import as_index_tensor
from fedkit.training.local_sgd import LocalSGDConfig, TrainResult

if TYPE_CHECKING:
    from fedkit.data import Split

__all__ = ["ClientJob", "can_batch", "train_local_batched"]

_OWNER = "train_local_batched"


@dataclass(frozen=True)
class _Formulation:
    """How one step's per-client gradients are computed.

    ``inputs(local, flat, clients, batch)`` turns the step's gathered sample positions into
    the model input; ``loss_grads(params, inputs, labels, masks, divisors, scales)`` returns
    ``(grads, losses)``; ``sgd_step`` (same arguments plus ``neg_lrs``), when not None, does a
    plain SGD step in place and returns the losses -- used when there is no momentum and no
    weight decay.
    """

    inputs: Callable[..., torch.Tensor]
    loss_grads: Callable[..., tuple[dict[str, torch.Tensor], torch.Tensor]]
    sgd_step: Callable[..., torch.Tensor] | None = None


def _stacked_features(local: Split, flat: torch.Tensor, clients: int, batch: int) -> torch.Tensor:
    return local.features(flat).view(clients, batch, *local.input_shape)


def _formulation(model: nn.Module, template: nn.Module) -> _Formulation:
    """The grouped LeNet-5 network for an unmodified :class:`~fedkit.models.LeNet5`, else
    ``vmap(grad(loss))`` of ``functional_call`` on the (meta-device) template."""
    if is_plain_lenet5(model):
        return _Formulation(grouped_images, lenet5_loss_grads, lenet5_sgd_step)

    def loss_fn(params, x, y, mask, count, scale):
        logits = functional_call(template, params, (x,))
        per_sample = F.cross_entropy(logits, y, reduction="none")
        loss = (per_sample * mask).sum() / count
        return loss * scale, loss

    return _Formulation(_stacked_features, vmap(grad(loss_fn, has_aux=True)))


def _local_data(
    data: Split, positions: torch.Tensor, indices: list[torch.Tensor], device: torch.device
) -> tuple[Split, torch.Tensor]:
    """Return the split to gather from on ``device`` and the plan's positions into it.

    ``data`` itself when it already lives on ``device``; otherwise the rows the jobs use,
    gathered once and moved as stored (uint8 images stay uint8).
    """
    from fedkit.data import Split

    if data.x.device == device and data.y.device == device:
        return data, positions.to(device)
    rows = torch.unique(torch.cat(indices))  # sorted
    local = Split(
        x=data.x[rows.to(data.x.device)].to(device),
        y=data.y[rows.to(data.y.device)].to(device),
        num_classes=data.num_classes,
    )
    # Padding positions may not be among the rows: clamp them (they are masked out).
    local_positions = torch.searchsorted(rows, positions).clamp_(max=rows.numel() - 1)
    return local, local_positions.to(device)


def _stack_states(
    states: list[Mapping[str, torch.Tensor]],
    reference: Mapping[str, torch.Tensor],
    order: Sequence[int],
    shared: bool,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Return ``{name: [K, *shape]}`` start parameters in plan order (new tensors)."""
    params = {}
    for name, ref in reference.items():
        if shared:
            one = states[0][name].detach().to(device=device, dtype=ref.dtype)
            params[name] = one.unsqueeze(0).expand(len(order), *one.shape).clone()
        else:
            stacked = torch.stack([states[k][name].detach().to(device) for k in order])
            params[name] = stacked.to(dtype=ref.dtype).clone()
    return params


def _run_steps(
    formulation: _Formulation,
    params: dict[str, torch.Tensor],
    lrs: torch.Tensor,
    scales: torch.Tensor,
    local: Split,
    positions: torch.Tensor,
    plan: MinibatchPlan,
    config: LocalSGDConfig,
) -> torch.Tensor:
    """Run every step on the stacked ``params`` in place; return float64 loss sums ``[K]``."""
    device = positions.device
    momentum, weight_decay = config.momentum, config.weight_decay
    fused_step = formulation.sgd_step if momentum == 0.0 and weight_decay == 0.0 else None
    counts = plan.counts.to(device)
    width = positions.shape[2]
    masks = (torch.arange(width, device=device) < counts.unsqueeze(-1)).to(scales.dtype)
    divisors = counts.clamp(min=1).to(scales.dtype)
    neg_lrs = {name: (-lrs).view(-1, *([1] * (p.ndim - 1))) for name, p in params.items()}
    buffers: dict[str, torch.Tensor] = {}
    loss_sums = torch.zeros(lrs.numel(), dtype=torch.float64, device=device)
    for step, active in enumerate(plan.num_active):
        flat = positions[step, :active].reshape(-1)
        inputs = formulation.inputs(local, flat, active, width)
        labels = local.y[flat].view(active, width)
        views = {name: p[:active] for name, p in params.items()}
        batch = (views, inputs, labels, masks[step, :active], divisors[step, :active],
                 scales[:active])
        if fused_step is not None:
            losses = fused_step(*batch, {name: lr[:active] for name, lr in neg_lrs.items()})
        else:
            grads, losses = formulation.loss_grads(*batch)
            for name, view in views.items():  # torch.optim.SGD, on all clients at once
                d_p = grads[name]
                if weight_decay != 0.0:
                    d_p = d_p.add(view, alpha=weight_decay)
                if momentum != 0.0:
                    if step == 0:  # every client is active at step 0
                        buffers[name] = d_p.clone()
                    else:
                        d_p = buffers[name][:active].mul_(momentum).add_(d_p)
                view.addcmul_(neg_lrs[name][:active], d_p)
        loss_sums[:active] += losses.to(torch.float64) * counts[step, :active]
    return loss_sums


def train_local_batched(
    model: nn.Module,
    start_states: Sequence[Mapping[str, torch.Tensor]] | Mapping[str, torch.Tensor],
    data: Split,
    jobs: Sequence[ClientJob],
    config: LocalSGDConfig,
    *,
    device: str | torch.device = "cpu",
    copy_states: bool = True,
) -> list[tuple[dict[str, torch.Tensor], TrainResult]]:
    """Train K clients at once; the same result as K calls of :func:`train_local`.

    Args:
        model: Template module (the architecture); it is neither trained nor modified. It must
            pass :func:`can_batch`.
        start_states: One state dict shared by every job (all clients start from the global
            model), or one state dict per job. Keys and shapes must be those of
            ``model.state_dict()``; not modified.
        data: The dataset the jobs' indices point into.
        jobs: One :class:`ClientJob` per client (sample indices, generator, lr, loss scale).
            Each generator is advanced exactly as :func:`train_local` would advance it, jobs
            taken in order (so jobs may even share one generator).
        config: batch size, ``local_steps`` or ``local_epochs``, momentum and weight decay;
            its ``lr`` and ``loss_scale`` are ignored (each job brings its own).
        device: Where the stacked parameters live and the compute runs (``"cuda"`` on a GPU
            machine).
        copy_states: ``False`` returns each client's tensors as views into one stacked CPU
            tensor per parameter (read-only use, e.g. serialising a reply) and skips K copies
            of the model.

    Returns:
        Per job, in order: the trained state dict (new CPU tensors, unless ``copy_states`` is
        False, with the keys and dtypes of ``model.state_dict()``) and its
        :class:`TrainResult`, equal to what ``train_local(model_with_that_state, data,
        job.indices, replace(config, lr=job.lr, loss_scale=job.loss_scale),
        generator=job.generator)`` gives, up to float32 rounding.

    Raises:
        ValueError: If ``jobs`` is empty, the model cannot be batched (the reason is given),
            a job's indices are invalid, or ``start_states`` has the wrong length, keys or
            shapes.
        TypeError: If ``config`` is not a :class:`LocalSGDConfig` or a job is not a
            :class:`ClientJob`.

    Example:
        >>> jobs = [ClientJob(indices=idx, generator=torch_generator(0, "local-sgd", r, cid),
        ...                   lr=0.01) for cid, idx in clients]  # doctest: +SKIP
        >>> out = train_local_batched(model, state, split, jobs, config)  # doctest: +SKIP

    References:
        Yan et al., FedLaAvg, arXiv:2002.07399; docs/design.md, "Batched engine".
    """
    if not isinstance(config, LocalSGDConfig):
        raise TypeError(f"{_OWNER}: config must be a LocalSGDConfig, got {type(config)!r}")
    if isinstance(jobs, ClientJob) or not isinstance(jobs, Sequence) or len(jobs) == 0:
        raise ValueError(
            f"{_OWNER}: jobs must be a non-empty sequence of ClientJob, got {jobs!r}; skip the "
            "call when no client trains this round"
        )
    for i, job in enumerate(jobs):
        if not isinstance(job, ClientJob):
            raise TypeError(f"{_OWNER}: jobs[{i}] must be a ClientJob, got {type(job)!r}")
    ok, reason = can_batch(model)
    if not ok:
        raise ValueError(f"{_OWNER}: model cannot be batched ({reason}); use train_local")
    device = torch.device(device)
    reference = model.state_dict()
    states = check_start_states(start_states, reference, len(jobs), owner=_OWNER)
    indices = [
        as_index_tensor(job.indices, len(data), owner=f"{_OWNER}: jobs[{i}]")
        for i, job in enumerate(jobs)
    ]
    steps = [config.num_steps(index.numel()) for index in indices]
    plan = plan_minibatches(
        indices, steps, config.batch_size, [job.generator for job in jobs], pad_position=0
    )
    order = plan.order
    local, positions = _local_data(data, plan.positions, indices, device)
    params = _stack_states(states, reference, order, isinstance(start_states, Mapping), device)
    first = next(iter(params.values()))
    lrs = torch.tensor([jobs[k].lr for k in order], dtype=first.dtype, device=device)
    scales = torch.tensor([jobs[k].loss_scale for k in order], dtype=first.dtype, device=device)
    template = copy.deepcopy(model).to("meta").train()  # the caller's model is never touched
    formulation = _formulation(model, template)
    loss_sums = _run_steps(formulation, params, lrs, scales, local, positions, plan, config).cpu()
    processed = plan.counts.sum(dim=0).tolist()

    cpu_params = {name: tensor.cpu() for name, tensor in params.items()}
    outputs: list[tuple[dict[str, torch.Tensor], TrainResult]] = [None] * len(jobs)  # type: ignore[list-item]
    for column, k in enumerate(order):
        state = {name: cpu_params[name][column] for name in reference}
        if copy_states:
            state = {name: tensor.clone() for name, tensor in state.items()}
        result = TrainResult(
            num_examples=indices[k].numel(),
            num_steps=steps[k],
            mean_loss=float(loss_sums[column]) / processed[column],
        )
        outputs[k] = (state, result)
    return outputs
