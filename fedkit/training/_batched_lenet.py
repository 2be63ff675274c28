"""Per-client gradients of K LeNet-5 models at once, as one grouped network.

The K clients' LeNet-5s are one wide network: images stacked on the channel axis
(``[B, K*3, 32, 32]``, ``channels_last``), each convolution one grouped convolution with
``groups=K``, each dense layer a batched matrix product over the client axis (``baddbmm``).
The loss sums ``scale_k`` times client k's masked mean cross-entropy, so one backward pass
gives every client exactly its own gradient. Three rewrites change the kernels, not the
maths: the input is laid out while still ``uint8``; ``relu(max_pool(.))`` replaces
``max_pool(relu(.))`` (ReLU is monotone: equal values and gradients); for plain SGD
:func:`lenet5_sgd_step` updates the dense weights in place (``W -= lr (dL/dz)^T x``, one
``baddbmm_``) instead of storing their gradients. Results agree with
:func:`~fedkit.training.train_local` within float32 tolerance. See docs/design.md, "Batched
engine".

References:
    Yan et al., FedLaAvg, arXiv:2002.07399 (the CPCFF LeNet-5 of the CIFAR-10 experiments).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from fedkit.data import normalise_images
from fedkit.models import LeNet5

if TYPE_CHECKING:
    from fedkit.data import Split

__all__ = ["grouped_images", "is_plain_lenet5", "lenet5_loss_grads", "lenet5_sgd_step"]

_CONV = (("conv1", 3), ("conv2", 6))
_FC = ("fc1", "fc2", "fc3")


def is_plain_lenet5(model: nn.Module) -> bool:
    """True for an unmodified :class:`LeNet5` (not a subclass, which may change ``forward``)."""
    return type(model) is LeNet5


def grouped_images(local: Split, flat: torch.Tensor, clients: int, batch: int) -> torch.Tensor:
    """Return samples ``flat`` (client-major, ``clients * batch``) as grouped-network input.

    The result is ``[batch, clients * C, H, W]`` float32 with ``channels_last`` strides;
    channel ``k * C + c`` of sample ``b`` is channel ``c`` of client k's b-th image, normalised
    as :meth:`fedkit.data.Split.features` does.
    """
    images = local.x[flat]
    _, channels, height, width = images.shape
    # [K, B, C, H, W] -> [B, H, W, K, C]: the one copy, made on the stored (uint8) values
    images = images.view(clients, batch, channels, height, width).permute(1, 3, 4, 0, 2)
    images = images.contiguous()
    x = normalise_images(images) if images.dtype == torch.uint8 else images
    return x.view(batch, height, width, clients * channels).permute(0, 3, 1, 2)


def _forward(
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    divisors: torch.Tensor,
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Return the per-client losses ``[K]`` and each dense layer's ``(input, output)``."""
    num_clients, batch = labels.shape
    for conv, in_channels in _CONV:
        weight = params[f"{conv}.weight"]
        x = F.conv2d(
            x,
            weight.reshape(-1, in_channels, *weight.shape[-2:]),
            params[f"{conv}.bias"].reshape(-1),
            groups=num_clients,
        )
        x = F.relu(F.max_pool2d(x, 2))  # = max_pool(relu(x)): ReLU is monotone
    # [B, K*16, 5, 5] -> [K, B, 400], each client's features in LeNet5's flatten order
    x = x.reshape(batch, num_clients, 400).transpose(0, 1)
    dense = []
    for i, name in enumerate(_FC):
        weight, bias = params[f"{name}.weight"], params[f"{name}.bias"]
        z = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        dense.append((x, z))
        x = F.relu(z) if i < len(_FC) - 1 else z
    per_sample = F.cross_entropy(x.flatten(0, 1), labels.flatten(), reduction="none")
    losses = (per_sample.view(num_clients, batch) * masks).sum(dim=1) / divisors
    return losses, dense


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
        inputs: :func:`grouped_images` ``[B, K*3, 32, 32]``.
        labels: ``int64 [K, B]``.
        masks: ``[K, B]``, 1 for real samples and 0 for padding.
        divisors: ``[K]`` number of real samples per client.
        scales: ``[K]`` loss scales.

    Returns:
        ``(grads, losses)``: ``{name: [K, *shape]}`` and ``[K]`` (detached).
    """
    leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
    with torch.enable_grad():
        losses, _ = _forward(leaves, inputs, labels, masks, divisors)
        names = list(leaves)
        grads = torch.autograd.grad((losses * scales).sum(), [leaves[n] for n in names])
    return dict(zip(names, grads, strict=True)), losses.detach()


def lenet5_sgd_step(
    params: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    divisors: torch.Tensor,
    scales: torch.Tensor,
    neg_lrs: dict[str, torch.Tensor],
) -> torch.Tensor:
    """One plain SGD step ``theta_k -= lr_k * grad_k`` on the stacked ``params``, in place.

    The same update as :func:`lenet5_loss_grads` followed by ``torch.optim.SGD`` without
    momentum or weight decay; the dense weights are updated by ``baddbmm_`` from the gradient
    at the layer's output (see the module docstring). Arguments as :func:`lenet5_loss_grads`,
    plus ``neg_lrs``: per parameter, ``-lr_k`` shaped to broadcast over ``[K, *shape]``.
    Returns the unscaled per-client losses ``[K]`` (detached).
    """
    dense_weights = {f"{name}.weight" for name in _FC}
    leaves = {
        name: p if name in dense_weights else p.detach().requires_grad_()
        for name, p in params.items()
    }
    learned = [name for name in leaves if name not in dense_weights]
    with torch.enable_grad():
        losses, dense = _forward(leaves, inputs, labels, masks, divisors)
        grads = torch.autograd.grad(
            (losses * scales).sum(), [leaves[n] for n in learned] + [z for _, z in dense]
        )
    for name, grad in zip(learned, grads[: len(learned)], strict=True):
        params[name].addcmul_(neg_lrs[name], grad)
    for name, (x, _), grad_z in zip(_FC, dense, grads[len(learned):], strict=True):
        weight = params[f"{name}.weight"]
        # W_k += (-lr_k dL/dz_k)^T x_k: [K, out, B] @ [K, B, in]
        weight.baddbmm_((grad_z * neg_lrs[f"{name}.weight"]).transpose(1, 2), x.detach())
    return losses.detach()
