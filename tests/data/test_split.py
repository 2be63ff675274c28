"""Split: the stored form is validated once, and model input is computed without side effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedkit.data import Split


def _images(n: int = 4) -> torch.Tensor:
    return torch.arange(n * 3 * 32 * 32, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(
        n, 3, 32, 32
    )


def test_image_features_are_fedlaavg_normalised_for_every_index_form():
    split = Split(_images(), torch.tensor([0, 1, 2, 3]), 10)
    expected = (split.x[[1, 3]].to(torch.float32) / 255 - 0.5) / 0.5
    for index in (torch.tensor([1, 3]), np.array([1, 3]), slice(1, 4, 2)):
        torch.testing.assert_close(split.features(index), expected)
    assert split.features().shape == (4, 3, 32, 32)
    assert split.features(slice(0, 1)).dtype == torch.float32
    assert float(Split(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), torch.tensor([0]), 2)
                 .features().min()) == -1.0
    assert split.input_shape == (3, 32, 32) and len(split) == 4
    torch.testing.assert_close(split.labels(np.array([3, 0])), torch.tensor([3, 0]))


def test_float_features_are_returned_as_stored_and_never_alias_x():
    x = torch.randn(5, 7)
    split = Split(x, torch.tensor([0, 1, 0, 1, 0]), 2)
    torch.testing.assert_close(split.features(np.array([4, 0])), x[[4, 0]])
    for view in (split.features(), split.features(slice(0, 2))):
        view.add_(1.0)
    torch.testing.assert_close(split.x, x)
    assert split.input_shape == (7,)


@pytest.mark.parametrize(
    ("x", "y", "num_classes", "error", "match"),
    [
        (np.zeros((2, 3)), torch.zeros(2, dtype=torch.int64), 2, TypeError,
         "Split.x must be a torch.Tensor, got ndarray"),
        (torch.zeros(2, 3), [0, 1], 2, TypeError, "Split.y must be a torch.Tensor, got list"),
        (torch.zeros(2, 3, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), 2, ValueError,
         r"uint8 with shape \(2, 3\), expected images \[n, C, H, W\]"),
        (torch.zeros(3), torch.zeros(3, dtype=torch.int64), 2, ValueError,
         r"float32 with shape \(3,\), expected features \[n, d\]"),
        (torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, dtype=torch.int64), 2,
         ValueError, "dtype torch.float64, expected torch.uint8 images"),
        (torch.zeros(2, 3), torch.zeros(2, dtype=torch.int32), 2, ValueError,
         "Split.y has dtype torch.int32 .* expected int64 labels"),
        (torch.zeros(2, 3), torch.zeros(3, dtype=torch.int64), 2, ValueError,
         "Split.y has 3 labels but Split.x has 2 samples"),
        (torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64), 1, ValueError,
         "Split.num_classes = 1, expected an integer >= 2"),
        (torch.zeros(2, 3), torch.tensor([0, 5]), 5, ValueError,
         r"labels in \[0, 5\], expected labels in \[0, 4\] for num_classes = 5"),
        (torch.zeros(2, 3), torch.tensor([-1, 0]), 5, ValueError, r"labels in \[-1, 0\]"),
    ],
)
def test_rejects_bad_stored_form(x, y, num_classes, error, match):
    with pytest.raises(error, match=match):
        Split(x, y, num_classes)
