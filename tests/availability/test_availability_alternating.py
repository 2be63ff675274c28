"""FedLaAvg's diurnal schedule: exact slots, the E + int(alpha E) bound, validation."""

from __future__ import annotations

import numpy as np
import pytest

from fedkit.availability import AlternatingAvailability, ClientInfo, availability_schedule


def one_class_info() -> ClientInfo:
    return ClientInfo.one_class_per_client(np.repeat(np.arange(10), 3), num_classes=10)


def test_exact_schedule_for_e10_alpha_half_over_two_periods():
    model = AlternatingAvailability(client_info=one_class_info(), period_e=10, alpha=0.5)
    assert model.lengths == (10, 5) and model.period == 15
    group0 = set(range(1, 11)) | set(range(16, 26))
    group1 = set(range(11, 16)) | set(range(26, 31))
    schedule = availability_schedule(model, 30)
    low = np.repeat(np.arange(10), 3) < 5
    for r in range(1, 31):
        assert np.array_equal(schedule[r - 1], low if r in group0 else ~low), r
        assert model.online_group(r) == (0 if r in group0 else 1)
    assert group0 | group1 == set(range(1, 31))
    assert model.probabilities(1) is None


def test_defaults_are_the_fedlaavg_cifar10_setup():
    model = AlternatingAvailability(client_info=one_class_info())
    assert model.groups == ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)) and model.lengths == (10, 5)


@pytest.mark.parametrize(("e", "alpha"), [(10, 0.5), (5, 0.5), (15, 0.5), (10, 1.0), (7, 0.3)])
def test_every_client_online_at_least_once_every_period(e, alpha):
    model = AlternatingAvailability(client_info=one_class_info(), period_e=e, alpha=alpha)
    window = e + int(alpha * e)
    schedule = availability_schedule(model, 5 * window)
    for start in range(schedule.shape[0] - window + 1):
        assert schedule[start : start + window].any(axis=0).all()
    # ... and that bound is tight: group 0 is offline for int(alpha E) rounds in a row.
    assert not schedule[e : e + int(alpha * e), 0].any()


def test_three_groups_with_lengths_and_dominant_label_membership():
    hist = np.array([[5, 1, 0], [1, 0, 3], [0, 4, 4]])  # dominant labels 0, 2, 1 (tie -> 1)
    info = ClientInfo(label_histograms=hist, sizes=hist.sum(axis=1))
    model = AlternatingAvailability(client_info=info, groups=[[0], [1], [2]], lengths=[2, 1, 3])
    assert model.group_of_client.tolist() == [0, 2, 1]
    rows = availability_schedule(model, 12).astype(int).tolist()
    assert rows == [[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 0], [0, 1, 0]] * 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lengths": [10, 5], "period_e": 10}, "got lengths and period_e/alpha, expected either"),
        ({"lengths": [10]}, r"alternating.lengths = \[10\] has 1 entries, expected one per group"),
        ({"lengths": [10, 0]}, r"alternating.lengths\[1\] = 0, expected an integer >= 1"),
        ({"lengths": [10, 2.5]}, r"alternating.lengths\[1\] = 2.5, expected an integer >= 1"),
        ({"period_e": 10, "alpha": 0.05}, r"int\(0.05 \* 10\) = 0 rounds for group 1"),
        ({"period_e": 0}, "alternating.period_e = 0, expected an integer >= 1"),
        ({"alpha": -1.0}, r"alternating.alpha = -1.0, expected a number in \(0.0, inf\]"),
        ({"groups": [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8, 9]]}, "holds class 4, which is repeated"),
        ({"groups": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]]}, r"holds class 10, which >= num"),
        ({"groups": [[0, 1, 2, 3, 4], [5, 6, 7, 8]]}, "client 27 has dominant label 9, which"),
        ({"groups": [[0, 1, 2, 3, 4], []]}, r"alternating.groups\[1\] = \[\], expected a non"),
        ({"groups": []}, r"alternating.groups = \[\], expected at least one list"),
        ({"groups": "0-4"}, "alternating.groups = '0-4', expected a list"),
        ({"groups": [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]}, "3 groups but no lengths"),
    ],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AlternatingAvailability(client_info=one_class_info(), **kwargs)
