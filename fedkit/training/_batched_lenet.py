"""Per-client gradients of K LeNet-5 models at once, as one grouped network.

The K clients' LeNet-5s are one wide network: their images are stacked on the channel axis
(input ``[B, K*3, 32, 32]``, ``channels_last``), each convolution is one grouped convolution
with ``groups=K`` (weights ``[K*6, 3, 5, 5]`` and ``[K*16, 6, 5, 5]``), and each dense layer a
batched matrix product over the client axis (``baddbmm``). The loss is the sum over clients of
``scale_k`` times client k's masked mean cross-entropy; client k's parameters enter only its
own term, so one backward pass gives every client exactly its own gradient. The arithmetic is
the same as the sequential model's; only the kernels (and so the float rounding) differ.

On CPUs this is about twice as fast as ``vmap(grad(functional_call))``: oneDNN's grouped
convolution runs well on ``channels_last`` input, which vmap's 5-D batches cannot use.

References:
    shared/reference/performance.md ("How the fastest formulation works");
    Yan et al., FedLaAvg, arXiv:2002.07399 (the CPCFF LeNet-5 of the CIFAR-10 experiments).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedkit.models import LeNet5

__all__ = ["is_plain_lenet5", "lenet5_loss_grads"]

_FC = ("fc1", "fc2", "fc3")


def is_plain_lenet5(model: nn.Module) -> bool:
    """True for an unmodified :class:`LeNet5` (not a subclass, which may change ``forward``)."""
    return type(model) is LeNet5


def lenet5_loss_grads(
    params: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    divisors: torch.Tensor,
    scales: torch.Tensor,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Return each client's gradient of ``scale_k * masked mean CE`` and its unscaled loss.

    Args:
        params: Stacked LeNet-5 parameters ``{name: [K, *shape]}``; not modified.
        inputs: Float images ``[K, B, 3, 32, 32]``.
        labels: ``int64 [K, B]``.
        masks: ``[K, B]``, 1 for real samples and 0 for padding.
        divisors: ``[K]`` number of real samples per client.
        scales: ``[K]`` loss scales.

    Returns:
        ``(grads, losses)``: ``{name: [K, *shape]}`` and ``[K]`` (detached).
    """
    num_clients, batch = labels.shape
    leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
    with torch.enable_grad():
        x = inputs.transpose(0, 1).reshape(batch, num_clients * 3, 32, 32)
        x = x.contiguous(memory_format=torch.channels_last)
        for conv, in_channels in (("conv1", 3), ("conv2", 6)):
            weight = leaves[f"{conv}.weight"]
            x = F.conv2d(
                x,
                weight.reshape(-1, in_channels, *weight.shape[-2:]),
                leaves[f"{conv}.bias"].reshape(-1),
                groups=num_clients,
            )
            x = F.max_pool2d(F.relu(x), 2)
        # [B, K*16, 5, 5] -> [K, B, 400], each client's features in LeNet5's flatten order
        x = x.reshape(batch, num_clients, 400).transpose(0, 1)
        for i, name in enumerate(_FC):
            weight, bias = leaves[f"{name}.weight"], leaves[f"{name}.bias"]
            x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            if i < len(_FC) - 1:
                x = F.relu(x)
        per_sample = F.cross_entropy(x.flatten(0, 1), labels.flatten(), reduction="none")
        losses = (per_sample.view(num_clients, batch) * masks).sum(dim=1) / divisors
        names = list(leaves)
        grads = torch.autograd.grad((losses * scales).sum(), [leaves[n] for n in names])
    return dict(zip(names, grads, strict=True)), losses.detach()
