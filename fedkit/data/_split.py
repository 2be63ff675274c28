"""One labelled split of a dataset (train or test), in its stored form.

A :class:`Split` holds the samples as they are stored -- ``uint8`` images ``[n, C, H, W]``
(CIFAR-10: ``[n, 3, 32, 32]``) or ``float32`` feature vectors ``[n, d]`` -- together with their
``int64`` labels. Images stay ``uint8`` (4x less memory, cheap to ship to a device) and are
turned into model input only for the samples a minibatch needs, by :meth:`Split.features`.

The image normalisation is the one of the FedLaAvg code: ``x / 255`` then mean 0.5 and
standard deviation 0.5 per channel, i.e. values in ``[-1, 1]``.

References:
    Y. Yan, C. Niu et al., "Distributed Non-Convex Optimization with Sublinear Speedup under
    Intermittent Client Availability", INFORMS Journal on Computing (arXiv:2002.07399); code
    github.com/mikudehuane/FedLaAvg.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["Split", "IMAGE_MEAN", "IMAGE_STD", "normalise_images"]

IMAGE_MEAN = 0.5
"""Per-channel mean subtracted from images scaled to [0, 1] (FedLaAvg code)."""
IMAGE_STD = 0.5
"""Per-channel standard deviation images are divided by (FedLaAvg code)."""


@dataclass(frozen=True, eq=False)
class Split:
    """Samples and labels of one dataset split.

    Attributes:
        x: Stored samples: ``uint8`` images ``[n, C, H, W]`` or ``float32`` features
            ``[n, d]`` (any ``float32`` tensor with a leading sample axis is accepted).
        y: ``int64`` labels ``[n]`` in ``[0, num_classes)``.
        num_classes: Number of classes of the task (>= 2).

    The tensors are shared, not copied: treat them as read-only.

    Example:
        >>> split = Split(torch.zeros(4, 3, dtype=torch.float32), torch.tensor([0, 1, 1, 0]), 2)
        >>> len(split), split.input_shape
        (4, (3,))
    """

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor):
            raise TypeError(f"Split.x must be a torch.Tensor, got {type(self.x).__name__}")
        if not isinstance(self.y, torch.Tensor):
            raise TypeError(f"Split.y must be a torch.Tensor, got {type(self.y).__name__}")
        if self.x.dtype == torch.uint8:
            if self.x.ndim != 4:
                raise ValueError(
                    f"Split.x is uint8 with shape {tuple(self.x.shape)}, expected images "
                    "[n, C, H, W] (uint8) or float32 features [n, d]"
                )
        elif self.x.dtype == torch.float32:
            if self.x.ndim < 2:
                raise ValueError(
                    f"Split.x is float32 with shape {tuple(self.x.shape)}, expected features "
                    "[n, d] with a leading sample axis"
                )
        else:
            raise ValueError(
                f"Split.x has dtype {self.x.dtype}, expected torch.uint8 images [n, C, H, W] "
                "or torch.float32 features [n, d]"
            )
        if self.y.dtype != torch.int64 or self.y.ndim != 1:
            raise ValueError(
                f"Split.y has dtype {self.y.dtype} and shape {tuple(self.y.shape)}, "
                "expected int64 labels of shape [n]"
            )
        if self.y.shape[0] != self.x.shape[0]:
            raise ValueError(
                f"Split.y has {self.y.shape[0]} labels but Split.x has {self.x.shape[0]} "
                "samples, expected one label per sample"
            )
        num_classes = self.num_classes
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"Split.num_classes = {num_classes!r}, expected an integer >= 2")
        if self.y.numel() > 0:
            low, high = int(self.y.min()), int(self.y.max())
            if low < 0 or high >= num_classes:
                raise ValueError(
                    f"Split.y has labels in [{low}, {high}], expected labels in "
                    f"[0, {num_classes - 1}] for num_classes = {num_classes}"
                )

    def __len__(self) -> int:
        """Return the number of samples."""
        return int(self.x.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample as the model sees it, e.g. ``(3, 32, 32)`` or ``(60,)``."""
        return tuple(int(d) for d in self.x.shape[1:])

    def features(self, index: Any = None) -> torch.Tensor:
        """Return the float32 model input for ``x[index]`` (a new tensor).

        ``uint8`` images become ``(x / 255 - 0.5) / 0.5`` (values in ``[-1, 1]``); ``float32``
        features are returned as they are stored.

        Args:
            index: A ``torch.LongTensor``, a ``slice``, an integer ``numpy`` array or ``None``
                (all samples).

        Returns:
            A ``float32`` tensor ``[len(index), *input_shape]`` on the device of ``x``.

        Example:
            >>> split = Split(torch.full((2, 3, 32, 32), 255, dtype=torch.uint8),
            ...               torch.tensor([0, 1]), 10)
            >>> float(split.features(slice(0, 1)).max())
            1.0
        """
        batch = self.x if index is None else self.x[_as_index(index, self.x.device)]
        if batch.dtype == torch.uint8:
            return normalise_images(batch)
        if index is None or isinstance(index, slice | int):
            return batch.clone()  # basic indexing gives a view; never hand out x itself
        return batch

    def labels(self, index: Any = None) -> torch.Tensor:
        """Return the labels ``y[index]`` (same index forms as :meth:`features`)."""
        return self.y if index is None else self.y[_as_index(index, self.y.device)]


def normalise_images(images: torch.Tensor) -> torch.Tensor:
    """Return ``uint8`` images as float32 model input ``(x / 255 - 0.5) / 0.5`` (a new tensor).

    The rule is elementwise, so it applies to any layout (``[n, C, H, W]``, or the batched
    engine's ``[B, H, W, K, C]``); the result has the layout of ``images``.
    """
    # the same three operations, in place: no temporaries
    return images.to(torch.float32).div_(255.0).sub_(IMAGE_MEAN).div_(IMAGE_STD)


def _as_index(index: Any, device: torch.device) -> Any:
    """Turn a numpy index array into a tensor index on ``device``; pass others through."""
    if isinstance(index, np.ndarray):
        dtype = np.bool_ if index.dtype == np.bool_ else np.int64
        return torch.as_tensor(index.astype(dtype, copy=False), device=device)
    return index
