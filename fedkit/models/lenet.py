"""LeNet-5, the CIFAR-10 CNN of the FedLaAvg experiments.

The network is the "CPCFF" model of Yan et al.'s code: two 5x5 convolutions without padding,
each followed by ReLU and 2x2 max pooling, then three fully connected layers. On a 3x32x32
image the feature maps are 6x28x28 -> 6x14x14 -> 16x10x10 -> 16x5x5, so the classifier sees
400 features. With 10 classes the model has 62,006 parameters.

The forward pass uses only out-of-place functional operations, so the model works unchanged
under ``torch.func.functional_call`` and ``vmap`` (the batched in-process grid).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedkit.models._checks import check_num_classes

__all__ = ["LENET5_INPUT_SHAPE", "LeNet5"]

LENET5_INPUT_SHAPE: tuple[int, int, int] = (3, 32, 32)
"""The only input shape LeNet-5 accepts: RGB images of 32x32 pixels, channels first."""


class LeNet5(nn.Module):
    """LeNet-5 for 3x32x32 images (conv 3->6 5x5, conv 6->16 5x5, FC 400->120->84->classes).

    Layers, in order: ``conv1`` (3->6, 5x5), ReLU, 2x2 max pool, ``conv2`` (6->16, 5x5), ReLU,
    2x2 max pool, flatten to 400, ``fc1`` (400->120), ReLU, ``fc2`` (120->84), ReLU, ``fc3``
    (84->``num_classes``). The output is logits; the softmax lives in the loss.

    Args:
        num_classes: Number of output logits (10 for CIFAR-10).

    Raises:
        ValueError: If ``num_classes`` is not an integer of at least 2.

    Example:
        >>> model = LeNet5(num_classes=10)
        >>> sum(p.numel() for p in model.parameters())
        62006
        >>> model(torch.zeros(4, 3, 32, 32)).shape
        torch.Size([4, 10])

    References:
        Yan, Niu, Ding, Zheng, Wu, Chen, Tang, Wu. "Distributed Non-Convex Optimization with
        Sublinear Speedup under Intermittent Client Availability" (FedLaAvg),
        arXiv:2002.07399 v1, CIFAR-10 experiments; code ``mikudehuane/FedLaAvg``,
        ``train/model.py::Net`` (the CPCFF network of the v1 CIFAR-10 experiments).
        LeCun, Bottou, Bengio, Haffner. "Gradient-based learning applied to document
        recognition", Proc. IEEE 86(11), 1998.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.num_classes = check_num_classes("LeNet5", num_classes)
        self.conv1 = nn.Conv2d(3, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a float batch ``[B, 3, 32, 32]`` to logits ``[B, num_classes]``."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
