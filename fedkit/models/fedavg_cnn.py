"""The CIFAR-10 CNN of the FedAvg paper (McMahan et al., 2017, Sec. 3).

The paper describes the model as "two 5x5 convolution layers (64 channels each), each
followed by 2x2 max pooling, two fully connected layers with 384 and 192 units with ReLU
activation and a final softmax output layer". It comes from the TensorFlow CIFAR-10 tutorial,
which trains on 24x24 crops with "same" padding, 3x3/stride-2 pooling and local response
normalisation. fedkit follows the paper's text, with these choices:

- convolutions use "same" padding (``padding=2``), as in the tutorial, and are followed by
  ReLU (the tutorial has it; the paper's sentence lists activations only for the dense layers);
- pooling is 2x2 with stride 2 (the paper's text), no local response normalisation;
- the input is the full 32x32 image (no crop), so the classifier sees 64 x 8 x 8 = 4096
  features and the model has 1,756,426 parameters for 10 classes. Fed 24x24 crops
  (``input_shape=(3, 24, 24)``) it sees 64 x 6 x 6 = 2304 features and has 1,068,298
  parameters, the tutorial model's count.

Any ``(C, H, W)`` input with H, W >= 4 is accepted; pooling floors odd sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedkit.models._checks import check_input_shape, check_num_classes

__all__ = ["FedAvgCNN"]


class FedAvgCNN(nn.Module):
    """Two 5x5 conv layers (64 channels, same padding, ReLU, 2x2 max pool), FC 384, FC 192.

    Args:
        input_shape: Shape of one image, channels first; default ``(3, 32, 32)``.
        num_classes: Number of output logits (10 for CIFAR-10). The softmax lives in the loss.

    Raises:
        ValueError: If ``input_shape`` is not ``(C, H, W)`` with H, W >= 4, or if
            ``num_classes`` is not an integer >= 2.

    Example:
        >>> model = FedAvgCNN(input_shape=(3, 32, 32), num_classes=10)
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])

    References:
        McMahan, Moore, Ramage, Hampson, Agüera y Arcas. "Communication-Efficient Learning of
        Deep Networks from Decentralized Data", AISTATS 2017, Sec. 3 (CIFAR experiments).
    """

    def __init__(
        self, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10
    ) -> None:
        super().__init__()
        shape = check_input_shape("FedAvgCNN", input_shape)
        if len(shape) != 3 or shape[1] < 4 or shape[2] < 4:
            raise ValueError(
                f"FedAvgCNN: input_shape must be (channels, height, width) with height and "
                f"width >= 4, got {input_shape!r}"
            )
        self.num_classes = check_num_classes("FedAvgCNN", num_classes)
        self.input_shape = shape
        channels, height, width = shape
        self.conv1 = nn.Conv2d(channels, 64, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=5, padding=2)
        self.fc1 = nn.Linear(64 * (height // 4) * (width // 4), 384)
        self.fc2 = nn.Linear(384, 192)
        self.fc3 = nn.Linear(192, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a float batch ``[B, C, H, W]`` to logits ``[B, num_classes]``."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
