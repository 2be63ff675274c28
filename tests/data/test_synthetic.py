"""Synthetic(alpha, beta): determinism, layout, the heterogeneity it promises, learnability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedkit.data import label_skew, make_synthetic, partition_iid, partition_report


@pytest.fixture(scope="module")
def data():
    return make_synthetic(30, seed=0)


def test_same_seed_same_data_different_seed_different():
    first, again, other = (make_synthetic(10, seed=s) for s in (3, 3, 4))
    for split in ("train", "test"):
        assert torch.equal(getattr(first, split).x, getattr(again, split).x)
        assert torch.equal(getattr(first, split).y, getattr(again, split).y)
    np.testing.assert_array_equal(first.partition.sizes(), again.partition.sizes())
    assert first.train.x.shape != other.train.x.shape or not torch.equal(
        first.train.x, other.train.x
    )


def test_shapes_dtypes_and_label_range(data):
    for split in (data.train, data.test):
        assert split.x.dtype == torch.float32 and split.x.ndim == 2 and split.x.shape[1] == 60
        assert split.y.dtype == torch.int64 and split.y.shape == (split.x.shape[0],)
        assert split.num_classes == 10 and split.input_shape == (60,)
        assert 0 <= int(split.y.min()) and int(split.y.max()) < 10
        assert torch.isfinite(split.x).all()
    assert len(np.unique(data.train.y.numpy())) >= 5


def test_partitions_are_contiguous_client_blocks_covering_each_split(data):
    for partition, split in ((data.partition, data.train), (data.test_partition, data.test)):
        assert partition.num_clients == 30
        every = np.concatenate(partition.client_indices)
        np.testing.assert_array_equal(every, np.arange(len(split)))  # client by client, in order


def test_each_client_holds_out_its_test_fraction():
    data = make_synthetic(200, seed=1, test_fraction=0.25, min_samples=10)
    train_sizes, test_sizes = data.partition.sizes(), data.test_partition.sizes()
    totals = train_sizes + test_sizes
    np.testing.assert_array_equal(test_sizes, np.maximum(1, np.round(0.25 * totals)))
    assert totals.min() >= 10 and train_sizes.min() >= 1


def test_client_sizes_follow_a_heavy_tailed_law_with_the_requested_mean():
    data = make_synthetic(3000, seed=2, mean_samples=100.0, min_samples=20, num_features=5)
    totals = data.partition.sizes() + data.test_partition.sizes()
    assert totals.min() >= 20
    assert totals.mean() == pytest.approx(100.0, rel=0.1)
    assert np.median(totals) < totals.mean()  # right-skewed, as a lognormal is
    assert totals.std() / totals.mean() > 0.5
    equal = make_synthetic(20, seed=2, mean_samples=50.0, min_samples=20, size_sigma=0.0)
    np.testing.assert_array_equal(equal.partition.sizes() + equal.test_partition.sizes(), 50)


def test_clients_label_distributions_are_heterogeneous(data):
    labels = data.train.y.numpy()
    natural = label_skew(partition_report(data.partition, labels, 10))
    shuffled = label_skew(partition_report(partition_iid(labels, 30, seed=0), labels, 10))
    assert natural > 0.5
    assert natural > shuffled + 0.4


def _client_feature_means(data) -> np.ndarray:
    return np.array([float(data.train.x[idx].mean()) for idx in data.partition])


def test_beta_spreads_the_clients_feature_means():
    # mean over features of v_k ~ N(B_k, 1) has variance beta^2 + 1/60 across clients
    flat = _client_feature_means(make_synthetic(100, beta=0.0, seed=5)).var()
    spread = _client_feature_means(make_synthetic(100, beta=2.0, seed=5)).var()
    assert flat < 0.1
    assert spread > 2.0


def test_alpha_shifts_all_logits_equally_so_labels_do_not_change():
    # u_k is added to every entry of W_k and b_k: the same for every class, so argmax is kept
    low = make_synthetic(20, alpha=0.0, seed=6)
    high = make_synthetic(20, alpha=3.0, seed=6)
    assert torch.equal(low.train.x, high.train.x)
    assert (low.train.y == high.train.y).float().mean() > 0.999


def test_a_central_logistic_regression_learns_it(data):
    weight = torch.zeros(10, 60, requires_grad=True)
    bias = torch.zeros(10, requires_grad=True)
    optimizer = torch.optim.SGD([weight, bias], lr=0.1)
    for _ in range(200):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(data.train.x @ weight.T + bias, data.train.y)
        loss.backward()
        optimizer.step()
    accuracy = ((data.test.x @ weight.T + bias).argmax(1) == data.test.y).float().mean()
    majority = (data.test.y == data.test.y.mode().values).float().mean()
    assert accuracy > 0.7 and accuracy > majority + 0.4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_clients": 0}, "num_clients = 0, expected an integer >= 1"),
        ({"num_features": 0}, "num_features = 0, expected an integer >= 1"),
        ({"num_classes": 1}, "num_classes = 1, expected an integer >= 2"),
        ({"min_samples": 1}, "min_samples = 1, expected an integer >= 2"),
        ({"alpha": -1.0}, "alpha = -1.0, expected a finite number >= 0"),
        ({"beta": float("nan")}, "beta = nan, expected a finite number >= 0"),
        ({"size_sigma": -0.5}, "size_sigma = -0.5, expected a finite number >= 0"),
        ({"mean_samples": 40.0}, "mean_samples = 40.0, expected a finite number > 40"),
        ({"test_fraction": 0.0}, "test_fraction = 0.0, expected a finite number > 0"),
        ({"test_fraction": 1.0}, r"test_fraction = 1.0, expected a number in \(0, 1\)"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    arguments = {"num_clients": 3, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_synthetic(**arguments)
