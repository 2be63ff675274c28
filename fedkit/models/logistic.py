"""Multinomial logistic regression: one linear layer on the flattened input.

The model returns logits ``W x + b``; the softmax is part of the cross-entropy loss, so
training it with :func:`fedkit.training.train_local` minimises the usual multinomial
log-likelihood. Inputs of any shape are flattened from the second axis on, so the same model
serves feature vectors ``[B, d]`` and images ``[B, C, H, W]`` (then ``d = C * H * W``).
"""

from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

from fedkit.models._checks import check_num_classes

__all__ = ["LogisticRegression"]


class LogisticRegression(nn.Module):
    """Multinomial logistic regression, ``logits = linear(flatten(x))``.

    Args:
        num_features: Number of input features after flattening one sample.
        num_classes: Number of classes (output logits).

    Raises:
        ValueError: If ``num_features`` is not a positive integer or ``num_classes`` is not an
            integer >= 2.

    Example:
        >>> model = LogisticRegression(num_features=784, num_classes=10)
        >>> model(torch.zeros(5, 1, 28, 28)).shape
        torch.Size([5, 10])

    References:
        The MNIST logistic-regression model of FedLaAvg (JoC version), code
        ``mikudehuane/FedLaAvg``, ``train/model.py::Logistic``. Bishop, C. M. "Pattern
        Recognition and Machine Learning", 2006, Sec. 4.3.4 (multiclass logistic regression).
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        if (
            isinstance(num_features, bool)
            or not isinstance(num_features, Integral)
            or num_features < 1
        ):
            raise ValueError(
                f"LogisticRegression: num_features must be a positive integer, got {num_features!r}"
            )
        self.num_features = int(num_features)
        self.num_classes = check_num_classes("LogisticRegression", num_classes)
        self.linear = nn.Linear(self.num_features, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a float batch ``[B, ...]`` with ``num_features`` values per sample to logits."""
        return self.linear(torch.flatten(x, 1))
