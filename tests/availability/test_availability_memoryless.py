"""ClientInfo, always, bernoulli and MIFA's class-correlated availability."""

from __future__ import annotations

import numpy as np
import pytest

from fedkit.availability import (
    AlwaysAvailable,
    BernoulliAvailability,
    ClassCorrelatedAvailability,
    ClientInfo,
    availability_schedule,
)


def hand_info() -> ClientInfo:
    # client 0: classes {1, 3}, tie 2/2 -> dominant 1; client 1: only class 2;
    # client 2: classes {0, 3}, dominant 3; L = 4.
    hist = np.array([[0, 2, 0, 2], [0, 0, 5, 0], [1, 0, 0, 4]])
    return ClientInfo(label_histograms=hist, sizes=hist.sum(axis=1))


def test_client_info_helpers_on_a_hand_made_federation():
    info = hand_info()
    assert (info.num_clients, info.num_classes) == (3, 4)
    assert info.min_label.tolist() == [1, 2, 0]
    assert info.max_label.tolist() == [3, 2, 3]
    assert info.dominant_label.tolist() == [1, 2, 3]
    assert info.num_labels_present.tolist() == [2, 1, 2]
    assert np.allclose(info.label_distribution[0], [0, 0.5, 0, 0.5])
    assert np.allclose(info.label_distribution.sum(axis=1), 1.0)


def test_client_info_copies_input_and_is_read_only():
    hist = np.array([[1, 0], [0, 3]])
    info = ClientInfo(label_histograms=hist, sizes=np.array([1, 3]))
    hist[0, 0] = 7
    assert info.label_histograms[0, 0] == 1
    with pytest.raises(ValueError, match="read-only"):
        info.sizes[0] = 5
    with pytest.raises(ValueError, match="read-only"):
        info.min_label[0] = 5


def test_client_info_of_empty_client_and_from_report():
    class Report:  # duck-typed fedkit.data.PartitionReport
        label_histograms = np.array([[0, 0], [2, 1]])
        sizes = np.array([0, 3])

    info = ClientInfo.from_report(Report())
    assert info.min_label.tolist() == [-1, 0] and info.dominant_label.tolist() == [-1, 0]
    assert info.label_distribution[0].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"client 0 has no examples \(sizes\[0\] = 0\)"):
        ClassCorrelatedAvailability(client_info=info)


@pytest.mark.parametrize(
    ("hist", "sizes", "match"),
    [
        (np.array([1, 2]), np.array([3]), r"label_histograms has .* shape \(2,\), expected"),
        (np.array([[1.0, 2.0]]), np.array([3]), "label_histograms has dtype float64"),
        (np.array([[1, 2]]), np.array([3, 1]), r"ClientInfo.sizes has .* shape \(2,\)"),
        (np.array([[1, -2]]), np.array([-1]), "label_histograms holds -2, expected >= 0"),
        (np.array([[1, 2], [0, 1]]), np.array([3, 4]), r"sizes\[1\] = 4, expected the row sum"),
    ],
)
def test_client_info_validation(hist, sizes, match):
    with pytest.raises(ValueError, match=match):
        ClientInfo(label_histograms=hist, sizes=sizes)


def test_one_class_per_client_validation():
    assert ClientInfo.one_class_per_client([1, 0], num_classes=2, size=3).sizes.tolist() == [3, 3]
    with pytest.raises(ValueError, match=r"labels = \[0, 5\], expected values in \[0, 2\]"):
        ClientInfo.one_class_per_client([0, 5], num_classes=3)
    with pytest.raises(ValueError, match="num_classes = 0, expected an integer >= 1"):
        ClientInfo.one_class_per_client([0], num_classes=0)


def test_always_is_always_online():
    model = AlwaysAvailable(num_clients=4)
    assert availability_schedule(model, 50).all()
    assert model.probabilities(3).tolist() == [1.0] * 4


def test_bernoulli_extremes_are_exact():
    model = BernoulliAvailability(num_clients=3, client_probabilities=[0.0, 1.0, 0.0], seed=2)
    schedule = availability_schedule(model, 200)
    assert not schedule[:, 0].any() and schedule[:, 1].all() and not schedule[:, 2].any()


def test_bernoulli_pooled_rate():
    schedule = availability_schedule(BernoulliAvailability(num_clients=100, p=0.3, seed=5), 400)
    assert abs(schedule.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / schedule.size)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "neither p nor probabilities, expected exactly one"),
        ({"p": 0.5, "client_probabilities": [0.5] * 3}, "both p and probabilities"),
        ({"p": 1.5}, r"bernoulli.p = 1.5, expected a probability in \[0, 1\]"),
        ({"p": -0.1}, r"bernoulli.p = -0.1, expected a probability"),
        ({"client_probabilities": [0.5, 0.5]}, "has 2 entries, expected one per client \\(3\\)"),
        ({"client_probabilities": [0.5, 2, 0.1]}, r"bernoulli.probabilities\[1\] = 2"),
        ({"client_probabilities": 0.5}, "bernoulli.probabilities = 0.5, expected a list"),
    ],
)
def test_bernoulli_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BernoulliAvailability(num_clients=3, **kwargs)


def test_class_correlated_formula_on_hand_made_clients():
    info = hand_info()  # min labels 1, 2, 0 with L = 4
    model = ClassCorrelatedAvailability(client_info=info, p_min=0.1)
    expected = [0.1 + 0.9 * 1 / 3, 0.1 + 0.9 * 2 / 3, 0.1]
    assert np.allclose(model.probabilities(1), expected)
    one_class = ClientInfo.one_class_per_client([0, 0], num_classes=1)
    assert np.allclose(ClassCorrelatedAvailability(client_info=one_class, p_min=0.3)
                       .probabilities(1), 0.3)


def test_class_correlated_rates_follow_the_smallest_class():
    info = ClientInfo.one_class_per_client(np.repeat(np.arange(10), 10), num_classes=10)
    schedule = availability_schedule(ClassCorrelatedAvailability(client_info=info, seed=1), 500)
    per_class = schedule.reshape(500, 10, 10).mean(axis=(0, 2))
    expected = 0.1 + 0.9 * np.arange(10) / 9
    assert np.all(np.abs(per_class - expected) < 5 * np.sqrt(expected * (1 - expected) / 5000)
                  + 1e-12)
    assert np.all(np.diff(per_class) > 0)


def test_class_correlated_validation():
    with pytest.raises(ValueError, match=r"class-correlated.p_min = 1.5, expected a probability"):
        ClassCorrelatedAvailability(client_info=hand_info(), p_min=1.5)
