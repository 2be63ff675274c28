"""Partitioners: exact cover, determinism, the skew each one promises, and every validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fedkit.data import (
    Partition,
    PartitionReport,
    label_skew,
    partition_dirichlet,
    partition_iid,
    partition_one_class,
    partition_report,
    partition_shards,
)

CIFAR_LIKE = np.repeat(np.arange(10), 500)  # 10 balanced classes, 5,000 samples

PARTITIONERS = {
    "iid": lambda y, n, seed: partition_iid(y, n, seed=seed),
    "dirichlet": lambda y, n, seed: partition_dirichlet(y, n, alpha=0.5, seed=seed),
    "shards": lambda y, n, seed: partition_shards(y, n, classes_per_client=2, seed=seed),
    "one-class": lambda y, n, seed: partition_one_class(y, n, seed=seed),
}


def assert_exact_cover(partition: Partition, num_samples: int) -> None:
    """Every sample index 0..num_samples-1 appears in exactly one client, sorted, int64."""
    for indices in partition:
        assert indices.dtype == np.int64
        assert np.all(np.diff(indices) > 0)
    every = np.sort(np.concatenate(partition.client_indices))
    np.testing.assert_array_equal(every, np.arange(num_samples))
    assert partition.sizes().sum() == num_samples == partition.num_samples


@st.composite
def labels_and_clients(draw, max_samples: int = 300):
    num_classes = draw(st.integers(1, 10))
    labels = np.array(
        draw(st.lists(st.integers(0, num_classes - 1), min_size=1, max_size=max_samples)),
        dtype=np.int64,
    )
    num_clients = draw(st.integers(1, labels.size))
    return labels, num_clients


seeds = st.integers(0, 2**32)


# ---------------------------------------------------------------- exact cover, every partitioner


@given(labels_and_clients(), seeds)
def test_iid_assigns_every_sample_once_with_balanced_sizes(case, seed):
    labels, num_clients = case
    partition = partition_iid(labels, num_clients, seed=seed)
    assert partition.num_clients == num_clients
    assert_exact_cover(partition, labels.size)
    assert np.ptp(partition.sizes()) <= 1


@given(labels_and_clients(), seeds, st.floats(0.05, 100.0))
def test_dirichlet_assigns_every_sample_once(case, seed, alpha):
    labels, num_clients = case
    partition = partition_dirichlet(labels, num_clients, alpha=alpha, seed=seed, min_size=0)
    assert partition.num_clients == num_clients
    assert_exact_cover(partition, labels.size)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dirichlet_respects_min_size(seed):
    partition = partition_dirichlet(CIFAR_LIKE, 50, alpha=0.3, seed=seed, min_size=20)
    assert partition.sizes().min() >= 20
    assert_exact_cover(partition, CIFAR_LIKE.size)


@given(labels_and_clients(), seeds, st.integers(1, 4))
def test_shards_cover_and_give_at_most_classes_per_client_labels(case, seed, per_client):
    labels, num_clients = case
    num_labels = np.unique(labels).size
    assume(per_client <= num_labels)
    assume(num_labels <= num_clients * per_client <= labels.size)
    partition = partition_shards(labels, num_clients, classes_per_client=per_client, seed=seed)
    assert_exact_cover(partition, labels.size)
    report = partition_report(partition, labels, int(labels.max()) + 1)
    assert report.classes_per_client().max() <= per_client
    assert partition.sizes().min() >= 1


def test_shards_on_balanced_data_is_mcmahans_split():
    partition = partition_shards(CIFAR_LIKE, 100, classes_per_client=2, seed=0)
    report = partition_report(partition, CIFAR_LIKE, 10)
    np.testing.assert_array_equal(partition.sizes(), np.full(100, 50))  # two shards of 25
    assert report.classes_per_client().max() <= 2
    assert report.classes_per_client().mean() > 1.5  # mostly two distinct classes


@st.composite
def one_class_case(draw):
    num_classes = draw(st.integers(1, 5))
    per_class = draw(st.integers(1, 5))
    counts = draw(st.lists(st.integers(per_class, 60), min_size=num_classes,
                           max_size=num_classes))
    labels = np.repeat(np.arange(num_classes), counts)
    order = np.random.default_rng(draw(seeds)).permutation(labels.size)  # shuffle the labels
    return labels[order], num_classes * per_class, per_class


@given(one_class_case(), seeds)
def test_one_class_gives_each_client_one_class_and_covers(case, seed):
    labels, num_clients, per_class = case
    partition = partition_one_class(labels, num_clients, seed=seed)
    assert_exact_cover(partition, labels.size)
    for client_id, indices in enumerate(partition):
        assert indices.size >= 1
        # clients k*m .. (k+1)*m-1 hold the k-th smallest label (labels here are 0..C-1)
        np.testing.assert_array_equal(np.unique(labels[indices]), [client_id // per_class])


def test_one_class_sizes_are_unbalanced_as_in_fedlaavg():
    partition = partition_one_class(CIFAR_LIKE, 100, seed=0)  # 10 clients per class
    sizes = partition.sizes()
    assert sizes.mean() == 50
    assert sizes.std() > 3  # clearly unbalanced
    for k in range(10):
        block = sizes[k * 10:(k + 1) * 10]
        assert block.sum() == 500
        # weights are clipped to [3, 7]: no client gets more than 7/3 of another (+ rounding)
        assert block.max() <= 7 / 3 * block.min() + 2


def test_one_class_1000_clients_on_cifar10_sizes():
    labels = np.repeat(np.arange(10), 5000)
    sizes = partition_one_class(labels, 1000, seed=0).sizes()
    assert sizes.mean() == 50
    assert 25 <= sizes.min() < 45 and 55 < sizes.max() <= 75


# ---------------------------------------------------------------- seeds and skew


@pytest.mark.parametrize("name", sorted(PARTITIONERS))
def test_same_seed_same_partition_different_seed_different(name):
    make = PARTITIONERS[name]
    first, again, other = make(CIFAR_LIKE, 20, 7), make(CIFAR_LIKE, 20, 7), make(CIFAR_LIKE, 20, 8)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        a.shape != b.shape or not np.array_equal(a, b)
        for a, b in zip(first, other, strict=True)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dirichlet_label_skew_grows_as_alpha_shrinks(seed):
    skews = [
        label_skew(partition_report(
            partition_dirichlet(CIFAR_LIKE, 20, alpha=alpha, seed=seed), CIFAR_LIKE, 10
        ))
        for alpha in (100.0, 1.0, 0.1)
    ]
    assert skews[0] < 0.1 < skews[1] < skews[2]
    assert skews[2] > 0.6


def test_skew_of_iid_is_small_and_of_one_class_is_one_minus_class_share():
    iid = partition_report(partition_iid(CIFAR_LIKE, 10, seed=0), CIFAR_LIKE, 10)
    one = partition_report(partition_one_class(CIFAR_LIKE, 10, seed=0), CIFAR_LIKE, 10)
    assert label_skew(iid) < 0.05
    assert label_skew(one) == pytest.approx(0.9)


def test_label_skew_known_answer():
    labels = np.array([0, 0, 1, 1])
    split = partition_report(Partition((np.array([0, 1]), np.array([2, 3]))), labels, 2)
    mixed = partition_report(Partition((np.array([0, 2]), np.array([1, 3]))), labels, 2)
    assert label_skew(split) == pytest.approx(0.5)
    assert label_skew(mixed) == pytest.approx(0.0)


# ---------------------------------------------------------------- report and Partition type


def test_report_counts_and_serialises():
    labels = np.array([0, 1, 1, 2, 2, 2])
    partition = Partition([np.array([5, 0]), np.array([1, 2, 3]), np.array([4])])
    report = partition_report(partition, labels, 4)
    np.testing.assert_array_equal(report.sizes, [2, 3, 1])
    np.testing.assert_array_equal(
        report.label_histograms, [[1, 0, 1, 0], [0, 2, 1, 0], [0, 0, 1, 0]]
    )
    np.testing.assert_array_equal(report.classes_per_client(), [2, 2, 1])
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["sizes"] == [2, 3, 1] and as_dict["num_samples"] == 6
    assert as_dict["mean_classes_per_client"] == pytest.approx(5 / 3)
    text = report.summary()
    assert "3 clients" in text and "1/2.0/3" in text and "1.67" in text


def test_partition_sorts_copies_and_indexes():
    given_indices = np.array([3, 1])
    partition = Partition([given_indices, np.array([0, 2])])
    np.testing.assert_array_equal(partition[0], [1, 3])
    np.testing.assert_array_equal(given_indices, [3, 1])  # input untouched
    assert len(partition) == partition.num_clients == 2
    with pytest.raises(IndexError, match=r"client_id = 2, expected an integer in \[0, 1\]"):
        partition[2]


@pytest.mark.parametrize(
    ("client_indices", "match"),
    [
        ([], "non-empty sequence"),
        (np.array([0, 1]), "non-empty sequence"),
        ([np.array([[0, 1]])], "client 0 .* expected a 1-D integer array"),
        ([np.array([0.5])], "client 0 .* expected a 1-D integer array"),
        ([np.array([0]), np.array([-1])], "client 1 has negative sample index -1"),
        ([np.array([0, 1]), np.array([1])], "sample index 1 is assigned more than once"),
    ],
)
def test_partition_rejects_bad_indices(client_indices, match):
    with pytest.raises(ValueError, match=match):
        Partition(client_indices)


def test_report_rejects_inconsistent_inputs():
    partition = Partition([np.array([0, 1]), np.array([2])])
    with pytest.raises(ValueError, match="labels go up to 3, expected < num_classes = 3"):
        partition_report(partition, np.array([0, 1, 3]), 3)
    with pytest.raises(ValueError, match="sample index 2, expected < len"):
        partition_report(partition, np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="num_classes = 0, expected an integer >= 1"):
        partition_report(partition, np.array([0, 0, 0]), 0)
    with pytest.raises(ValueError, match="rows must sum to sizes"):
        PartitionReport(np.array([1, 1]), np.array([[1, 0], [1, 1]]))
    with pytest.raises(ValueError, match="expected \\[num_clients\\]"):
        PartitionReport(np.array([1, 1]), np.array([1, 1]))
    with pytest.raises(ValueError, match="holds no samples"):
        label_skew(PartitionReport(np.array([0]), np.array([[0, 0]])))


# ---------------------------------------------------------------- validation of every partitioner


@pytest.mark.parametrize("name", sorted(PARTITIONERS))
@pytest.mark.parametrize(
    ("labels", "num_clients", "match"),
    [
        (np.zeros((2, 5), dtype=int), 1, r"shape \(2, 5\), expected a non-empty 1-D integer"),
        (np.array([0.0, 1.0]), 1, "dtype float64 .* expected a non-empty 1-D integer"),
        (np.array([], dtype=int), 1, "expected a non-empty 1-D integer"),
        (np.array([0, -2, 1]), 1, "labels contain -2, expected labels >= 0"),
        (CIFAR_LIKE, 0, r"num_clients = 0, expected an integer in \[1, 5000\]"),
        (CIFAR_LIKE, 5001, r"num_clients = 5001, expected an integer in \[1, 5000\]"),
        (CIFAR_LIKE, True, r"num_clients = True, expected an integer"),
        (CIFAR_LIKE, 2.0, r"num_clients = 2.0, expected an integer"),
    ],
)
def test_partitioners_reject_bad_labels_and_num_clients(name, labels, num_clients, match):
    with pytest.raises(ValueError, match=match):
        PARTITIONERS[name](labels, num_clients, 0)


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_dirichlet_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match=f"dirichlet alpha = {alpha!r}, expected a finite number"):
        partition_dirichlet(CIFAR_LIKE, 10, alpha=alpha, seed=0)


def test_dirichlet_rejects_bad_min_size_and_attempts():
    with pytest.raises(ValueError, match="min_size = -1, expected an integer >= 0"):
        partition_dirichlet(CIFAR_LIKE, 10, alpha=1.0, seed=0, min_size=-1)
    with pytest.raises(ValueError, match="max_attempts = 0, expected an integer >= 1"):
        partition_dirichlet(CIFAR_LIKE, 10, alpha=1.0, seed=0, max_attempts=0)
    with pytest.raises(ValueError, match="needs 5010 samples, but there are only 5000"):
        partition_dirichlet(CIFAR_LIKE, 10, alpha=1.0, seed=0, min_size=501)
    with pytest.raises(ValueError, match="no draw in 5 attempts .* min_size = 10 .* alpha = 0.01"):
        partition_dirichlet(np.arange(100) % 10, 10, alpha=0.01, seed=0, min_size=10,
                            max_attempts=5)


def test_shards_rejects_bad_classes_per_client():
    with pytest.raises(ValueError, match="classes_per_client = 0, expected an integer >= 1"):
        partition_shards(CIFAR_LIKE, 10, classes_per_client=0, seed=0)
    with pytest.raises(ValueError, match=r"classes_per_client = 11, expected .* \[1, 10\]"):
        partition_shards(CIFAR_LIKE, 10, classes_per_client=11, seed=0)
    with pytest.raises(ValueError, match="= 5 shards, expected between the number of labels"):
        partition_shards(CIFAR_LIKE, 5, classes_per_client=1, seed=0)
    with pytest.raises(ValueError, match="= 10 shards, expected .* samples \\(5\\)"):
        partition_shards(np.array([0, 0, 1, 1, 1]), 5, classes_per_client=2, seed=0)


def test_one_class_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"num_clients = 15 is not a multiple .* \(10\); use e.g"):
        partition_one_class(CIFAR_LIKE, 15, seed=0)
    with pytest.raises(ValueError, match="class 1 has 2 samples for 3 clients"):
        partition_one_class(np.array([0, 0, 0, 0, 1, 1]), 6, seed=0)
    with pytest.raises(ValueError, match="size_min = 6.0, size_mean = 5.0"):
        partition_one_class(CIFAR_LIKE, 10, seed=0, size_min=6.0)
    with pytest.raises(ValueError, match="size_std = -1.0; expected"):
        partition_one_class(CIFAR_LIKE, 10, seed=0, size_std=-1.0)
    with pytest.raises(ValueError, match="one-class size_max = nan, expected a finite number"):
        partition_one_class(CIFAR_LIKE, 10, seed=0, size_max=float("nan"))
    with pytest.raises(ValueError, match="max_attempts = 0, expected an integer >= 1"):
        partition_one_class(CIFAR_LIKE, 10, seed=0, max_attempts=0)
    # one sample per client is only reachable with near-equal weights: these never are
    with pytest.raises(ValueError, match="could not give each of 10 clients a sample in 3"):
        partition_one_class(np.arange(20) % 2, 20, seed=0, size_mean=1.0, size_std=1e6,
                            size_min=1.0, size_max=1e6, max_attempts=3)


@settings(max_examples=20)
@given(seeds)
def test_partitioners_do_not_modify_labels(seed):
    labels = CIFAR_LIKE[::-1].copy()
    before = labels.copy()
    for make in PARTITIONERS.values():
        make(labels, 10, seed)
    np.testing.assert_array_equal(labels, before)
