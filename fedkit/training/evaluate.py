"""Evaluate a classifier: mean cross-entropy and accuracy over (a subset of) a dataset."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from fedkit.training._indices import IndexLike, as_index_tensor
from fedkit.training._mode import module_mode

if TYPE_CHECKING:
    from fedkit.data import Split

__all__ = ["EvalResult", "evaluate"]


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one evaluation.

    Attributes:
        loss: Mean cross-entropy per sample (natural log).
        accuracy: Fraction of samples whose arg-max logit is the label, in [0, 1]. Ties go to
            the lowest class index (``torch.argmax``).
        num_examples: Number of samples evaluated.
    """

    loss: float
    accuracy: float
    num_examples: int


def evaluate(
    model: nn.Module,
    data: Split,
    *,
    indices: IndexLike | None = None,
    batch_size: int = 1000,
) -> EvalResult:
    """Compute the mean cross-entropy and the accuracy of ``model`` on ``data``.

    Runs under ``torch.no_grad`` with the model in eval mode; every submodule's previous mode
    is restored afterwards. Samples are taken in the order of ``indices`` in batches of
    ``batch_size``, moved to the device of the model's first parameter.

    Args:
        model: A classifier returning logits ``[B, num_classes]``; not modified.
        data: The dataset; ``data.features(index)`` gives the float model input.
        indices: 1-D integer positions to evaluate on; ``None`` means all of ``data``.
        batch_size: Samples per forward pass (memory, not results).

    Returns:
        An :class:`EvalResult`.

    Raises:
        ValueError: If ``batch_size`` is not a positive integer, if ``indices`` is empty,
            not 1-D integer or out of range, or if ``data`` is empty.

    Example:
        >>> evaluate(model, test_split)  # doctest: +SKIP
        EvalResult(loss=1.52..., accuracy=0.4471, num_examples=10000)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
        raise ValueError(f"evaluate: batch_size must be a positive integer, got {batch_size!r}")
    if indices is None:
        if len(data) == 0:
            raise ValueError("evaluate: data is empty; expected at least one sample")
        index = torch.arange(len(data))
    else:
        index = as_index_tensor(indices, len(data), owner="evaluate")
    num_examples = index.numel()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    num_correct = torch.zeros((), dtype=torch.int64, device=device)
    with module_mode(model, training=False), torch.no_grad():
        for start in range(0, num_examples, batch_size):
            batch = index[start : start + batch_size]
            inputs = data.features(batch).to(device, non_blocking=True)
            labels = data.y[batch].to(device, non_blocking=True)
            logits = model(inputs)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
            num_correct += (logits.argmax(dim=1) == labels).sum()
    return EvalResult(
        loss=float(loss_sum) / num_examples,
        accuracy=int(num_correct) / num_examples,
        num_examples=num_examples,
    )
