"""Tests for fedkit.training.evaluate: hand-computed metrics, batching, modes, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fedkit.models import LogisticRegression
from fedkit.training import EvalResult, evaluate

# Identity logits: logits = x. Per-sample cross-entropy and correctness by hand:
#   x=[2,0], y=0: log(1+e^-2), correct     x=[0,1], y=1: log(1+e^-1), correct
#   x=[3,0], y=1: log(1+e^3),  wrong       x=[0,0], y=1: log 2, wrong (tie -> class 0)
_X = [[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.0]]
_Y = [0, 1, 1, 1]
_LOSSES = [math.log1p(math.exp(-2)), math.log1p(math.exp(-1)), math.log1p(math.exp(3)), math.log(2)]


@pytest.fixture
def identity_model() -> LogisticRegression:
    model = LogisticRegression(num_features=2, num_classes=2)
    with torch.no_grad():
        model.linear.weight.copy_(torch.eye(2))
        model.linear.bias.zero_()
    return model


@pytest.fixture
def tiny(make_split):
    return make_split(torch.tensor(_X), torch.tensor(_Y), 2)


@pytest.mark.parametrize("batch_size", [1, 3, 4, 1000])
def test_hand_computed_loss_and_accuracy(identity_model, tiny, batch_size):
    result = evaluate(identity_model, tiny, batch_size=batch_size)
    assert result.num_examples == 4
    assert result.accuracy == 0.5
    assert result.loss == pytest.approx(sum(_LOSSES) / 4, rel=1e-6)


@pytest.mark.parametrize(
    ("indices", "loss", "accuracy"),
    [
        ([0, 2], (_LOSSES[0] + _LOSSES[2]) / 2, 0.5),
        (np.array([1]), _LOSSES[1], 1.0),
        (torch.tensor([3, 2]), (_LOSSES[3] + _LOSSES[2]) / 2, 0.0),
        ([1, 1, 0], (2 * _LOSSES[1] + _LOSSES[0]) / 3, 1.0),
        (np.array([0, 1, 2])[::-2], (_LOSSES[2] + _LOSSES[0]) / 2, 0.5),
    ],
)
def test_subset_by_indices(identity_model, tiny, indices, loss, accuracy):
    result = evaluate(identity_model, tiny, indices=indices, batch_size=2)
    assert result == EvalResult(
        loss=pytest.approx(loss, rel=1e-6), accuracy=accuracy, num_examples=len(indices)
    )


class _Spy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = LogisticRegression(num_features=2, num_classes=2)
        self.seen: list[tuple[bool, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, self.inner.training, torch.is_grad_enabled()))
        return self.inner(x)


@pytest.mark.parametrize("outer, inner", [(True, True), (False, False), (True, False)])
def test_eval_mode_no_grad_and_modes_restored(tiny, outer, inner):
    model = _Spy()
    model.train(outer)
    model.inner.train(inner)
    evaluate(model, tiny, batch_size=3)
    assert model.seen == [(False, False, False)] * 2
    assert (model.training, model.inner.training) == (outer, inner)
    assert all(p.grad is None for p in model.parameters())


def test_parameters_unchanged(identity_model, tiny):
    before = [p.detach().clone() for p in identity_model.parameters()]
    evaluate(identity_model, tiny)
    assert all(torch.equal(a, b) for a, b in zip(before, identity_model.parameters(), strict=True))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, r"evaluate: batch_size must be a positive integer, got 0"),
        ({"batch_size": 2.0}, r"evaluate: batch_size must be a positive integer, got 2.0"),
        ({"indices": []}, r"evaluate: indices is empty"),
        ({"indices": [4]}, r"evaluate: index 4 is out of range; expected positions in \[0, 4\)"),
        ({"indices": [[0]]}, r"evaluate: indices must be 1-D, got shape \(1, 1\)"),
    ],
)
def test_validation(identity_model, tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate(identity_model, tiny, **kwargs)


def test_empty_data_rejected(identity_model, make_split):
    empty = make_split(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64), 2)
    with pytest.raises(ValueError, match=r"evaluate: data is empty; expected at least one"):
        evaluate(identity_model, empty)
