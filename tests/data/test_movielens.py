"""MovieLens-100k as a federated task, read from the offline copy at ``SHARED`` (never
downloaded), and its metrics."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fedkit.data import DatasetNotFoundError
from fedkit.data.movielens import load_movielens, movielens_federated
from fedkit.models.recommender import init_dense, init_item_rows, init_user_vector
from fedkit.training.recsys import RecTrainConfig, auc_hr, train_user

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-100k"


@pytest.fixture(scope="module")
def movielens():
    if not (SHARED / "u.data").is_file():
        pytest.skip(f"offline MovieLens-100k copy not found at {SHARED}")
    return load_movielens(SHARED, download=False)


def test_counts_match_the_published_data_set(movielens):
    assert (movielens.num_users, movielens.num_items, movielens.users.size) == (943, 1682,
                                                                                  100_000)


def test_split_is_by_time_disjoint_and_negatives_never_seen(movielens):
    data = movielens_federated(movielens, test_fraction=0.1, negatives_per_positive=4, seed=3)
    order = np.lexsort((movielens.items, movielens.timestamps))
    for user in (0, 57, 942):
        mine = order[movielens.users[order] == user]
        last_train = max(movielens.timestamps[mine][np.isin(movielens.items[mine],
                                                             data.positives[user])])
        first_test = min(movielens.timestamps[mine][np.isin(movielens.items[mine],
                                                             data.test[user])])
        assert last_train <= first_test
        assert not np.intersect1d(data.positives[user], data.test[user]).size
        assert not np.intersect1d(data.negatives[user], data.seen(user)).size
        assert data.negatives[user].size == 4 * data.positives[user].size
        assert data.test[user].size == max(1, round(0.1 * data.seen(user).size))
    again = movielens_federated(movielens, test_fraction=0.1, negatives_per_positive=4, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(data.negatives, again.negatives,
                                                     strict=True))


def test_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="movielens-100k"):
        load_movielens(tmp_path, download=False)


def test_auc_and_hit_rate_on_hand_made_scores():
    # one user, 5 items, 1 dim: score = item embedding (W = 1, no bias)
    rows = np.array([[0.0, 0], [5.0, 0], [1.0, 0], [2.0, 0], [3.0, 0]], dtype=np.float32)
    dense = {"w": np.ones((1, 1), np.float32), "c": np.zeros(1, np.float32)}
    seen, test = [np.array([1, 3])], [np.array([3])]  # item 1 trained, item 3 held out
    auc, hit = auc_hr(np.ones((1, 1)), rows, dense, seen, test, k=1)
    # negatives 0, 2, 4 score 0, 1, 3; the test item scores 2: above two of three
    assert auc == pytest.approx(2 / 3)
    assert hit == 0.0  # item 4 (score 3) ranks first among the candidates
    assert auc_hr(np.ones((1, 1)), rows, dense, seen, test, k=2)[1] == 1.0


def test_local_training_separates_positives_from_negatives(movielens):
    data = movielens_federated(movielens, seed=0)
    user, dim = 10, 8
    idx = data.index_set(user)
    rows, dense = init_item_rows(data.num_items, dim, 0)[idx], init_dense(dim, 0)
    pos = np.searchsorted(idx, data.positives[user])
    neg = np.searchsorted(idx, data.negatives[user])
    result = train_user(rows, dense, init_user_vector(dim, 0, user), pos, neg,
                        RecTrainConfig(lr=0.05, epochs=5), torch.Generator().manual_seed(0))
    logits = (result.user_vector @ result.dense["w"]) @ result.rows[:, :dim].T \
        + result.rows[:, dim]
    assert logits[pos].mean() > logits[neg].mean() + 1.0
    assert result.num_samples == pos.size + neg.size
    assert np.isfinite(result.mean_loss)
