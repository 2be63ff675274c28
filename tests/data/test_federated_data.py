"""load_federated_data: the one entry point of the apps (dataset + partition, cached)."""

from __future__ import annotations

import numpy as np
import pytest

from fedkit.data import (
    PARTITIONS,
    load_federated_data,
    make_synthetic,
    partition_report,
)


def _load(**overrides):
    arguments = {"dataset": "synthetic", "num_clients": 30, "partition": "natural", "seed": 0}
    return load_federated_data(**{**arguments, **overrides})


def test_natural_partition_is_the_generators_own():
    data = _load()
    generated = make_synthetic(30, seed=0)
    assert data.name == "synthetic"
    np.testing.assert_array_equal(data.partition.sizes(), generated.partition.sizes())
    np.testing.assert_array_equal(data.train.y.numpy(), generated.train.y.numpy())


def test_cached_per_argument_tuple():
    assert _load() is _load()
    assert _load(seed=1) is not _load()
    assert _load(synthetic_beta=0.5) is not _load()


@pytest.mark.parametrize("partition", [p for p in PARTITIONS if p != "natural"])
def test_every_partition_covers_the_synthetic_train_set(partition):
    data = _load(partition=partition)
    assert data.partition.num_clients == 30
    every = np.sort(np.concatenate(data.partition.client_indices))
    np.testing.assert_array_equal(every, np.arange(len(data.train)))


def test_partition_arguments_reach_the_partitioner():
    one = _load(partition="shards", classes_per_client=1)
    report = partition_report(one.partition, one.train.y.numpy(), 10)
    assert report.classes_per_client().max() == 1
    skewed = partition_report(_load(partition="dirichlet", dirichlet_alpha=0.05).partition,
                              _load().train.y.numpy(), 10)
    flat = partition_report(_load(partition="dirichlet", dirichlet_alpha=100.0).partition,
                            _load().train.y.numpy(), 10)
    assert skewed.classes_per_client().mean() < flat.classes_per_client().mean()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"dataset": "mnist"}, r"dataset = 'mnist', expected one of \['synthetic', 'cifar10'\]"),
        ({"partition": "pathological"},
         r"partition = 'pathological', expected one of \['iid', 'dirichlet', 'shards', "
         r"'one-class', 'natural'\]"),
        ({"dataset": "cifar10"},
         r"partition = 'natural' is only defined for dataset 'synthetic', got dataset = "
         r"'cifar10'; expected one of \['iid', 'dirichlet', 'shards', 'one-class'\]"),
        ({"partition": "one-class", "num_clients": 15}, "not a multiple"),
    ],
)
def test_rejects_bad_choices(overrides, match):
    with pytest.raises(ValueError, match=match):
        _load(**overrides)


def test_cifar10_one_class_as_in_fedlaavg(cifar10_dir):
    data = load_federated_data(dataset="cifar10", num_clients=1000, partition="one-class",
                               seed=0, data_dir=cifar10_dir)
    report = partition_report(data.partition, data.train.y.numpy(), 10)
    assert data.name == "cifar10" and len(data.train) == 50_000 and len(data.test) == 10_000
    np.testing.assert_array_equal(report.classes_per_client(), 1)
    assert report.sizes.mean() == 50 and report.sizes.min() >= 1
