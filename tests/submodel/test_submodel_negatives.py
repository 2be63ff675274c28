"""Union frequencies and the loss weights that correct downloaded negatives' sampling bias."""

import numpy as np
import pytest
import torch

from fedkit.models.recommender import init_dense, init_item_rows, init_user_vector
from fedkit.submodel import UnionFrequency
from fedkit.training.recsys import RecTrainConfig, train_user


def test_inclusion_is_laplaces_rule_over_the_observed_unions():
    freq = UnionFrequency(5)
    assert freq.inclusion().tolist() == [0.5] * 5  # no union yet: every item 1/2
    for union in ([0, 1, 2], [0, 1], [0]):
        freq.observe(np.array(union))
    assert freq.rounds == 3 and freq.counts.tolist() == [3, 2, 1, 0, 0]
    np.testing.assert_allclose(freq.inclusion(), [4 / 5, 3 / 5, 2 / 5, 1 / 5, 1 / 5])


def test_weights_are_mean_over_inclusion_capped():
    freq = UnionFrequency(4)
    for _ in range(8):
        freq.observe(np.array([0, 1, 2]))
    pi = freq.inclusion()  # 0.9, 0.9, 0.9, 0.1
    weights = freq.negative_weights(np.arange(4), cap=100.0)
    np.testing.assert_allclose(weights, pi.mean() / pi, rtol=1e-6)
    assert weights[3] == pytest.approx(7.0)  # (3 * 0.9 + 0.1) / 4 / 0.1
    assert freq.negative_weights(np.array([3]), cap=2.0).tolist() == [2.0]
    assert freq.negative_weights(np.array([0, 3]), cap=2.0).dtype == np.float32


def test_weighting_removes_the_popularity_bias_of_fakes_drawn_from_the_union():
    # Items held by many users are in nearly every round's union, items held by one user in
    # ~K/N of them; fakes are drawn uniformly from the union, so unweighted negatives follow
    # the inclusion probability. Weighted by the estimated mean(pi)/pi, every item gets the
    # same expected negative weight -- what uniform sampling over the catalogue gives.
    rng = np.random.default_rng(0)
    num_users, num_items, cohort = 400, 60, 40
    holders = [rng.choice(num_users, size=1 + 3 * (j % 20) ** 2 // 20, replace=False)
               for j in range(num_items)]  # 1 to 55 holders per item
    freq = UnionFrequency(num_items)
    raw = np.zeros(num_items)
    weighted = np.zeros(num_items)
    for round_ in range(3000):
        members = set(rng.choice(num_users, size=cohort, replace=False).tolist())
        union = np.array([j for j in range(num_items) if members & set(holders[j].tolist())])
        freq.observe(union)
        if round_ < 500:  # let the estimate settle before measuring
            continue
        fakes = union[rng.random(union.size) < 0.12]
        raw[fakes] += 1
        weighted[fakes] += freq.negative_weights(fakes, cap=1000.0)
    rare, popular = np.arange(num_items) % 20 == 0, np.arange(num_items) % 20 == 19
    assert raw[popular].mean() > 3 * raw[rare].mean()  # the bias
    spread = weighted.std() / weighted.mean()
    assert spread < 0.1, f"weighted negative counts vary by {spread:.1%} across items"
    assert weighted[popular].mean() == pytest.approx(weighted[rare].mean(), rel=0.1)


@pytest.mark.parametrize(("union", "match"), [
    (np.array([0, 5]), r"union ids span \[0, 5\], expected ids in \[0, 5\)"),
    (np.array([1, 1]), "repeated ids"),
    (np.array([[0]]), "1-D integer array"),
    (np.array([0.5]), "1-D integer array"),
])
def test_bad_unions_are_refused_with_the_reason(union, match):
    with pytest.raises(ValueError, match=match):
        UnionFrequency(5).observe(union)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_items = 0"):
        UnionFrequency(0)
    with pytest.raises(ValueError, match="cap = 0.5, expected >= 1"):
        UnionFrequency(3).negative_weights(np.array([0]), cap=0.5)
    with pytest.raises(ValueError, match=r"ids span \[2, 3\]"):
        UnionFrequency(3).negative_weights(np.array([2, 3]), cap=2.0)


def _train(negative_weights):
    dim = 4
    rows, dense = init_item_rows(6, dim, 0), init_dense(dim, 0)
    result = train_user(rows, dense, init_user_vector(dim, 0, 0), np.array([0, 1]),
                        np.array([2, 3, 4]), RecTrainConfig(lr=0.1, epochs=3, l2=0.0),
                        torch.Generator().manual_seed(0), negative_weights=negative_weights)
    return rows, result


def test_a_negative_of_weight_zero_leaves_its_row_unchanged_and_heavier_ones_move_more():
    rows, result = _train(np.array([0.0, 1.0, 4.0], np.float32))
    np.testing.assert_array_equal(result.rows[2], rows[2])
    moved = np.abs(result.rows - rows).sum(axis=1)
    assert moved[3] > 0 and moved[4] > moved[3]
    _, unweighted = _train(None)
    _, ones = _train(np.ones(3, np.float32))
    np.testing.assert_array_equal(unweighted.rows, ones.rows)


@pytest.mark.parametrize(("weights", "match"), [
    (np.ones(2, np.float32), r"shape \(2,\), expected one weight per negative \(3,\)"),
    (np.array([1.0, np.nan, 1.0], np.float32), "finite and >= 0"),
    (np.array([1.0, -1.0, 1.0], np.float32), "finite and >= 0"),
])
def test_train_user_refuses_bad_negative_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        _train(weights)
