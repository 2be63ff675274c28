"""MovieLens-100k as a federated implicit-feedback recommendation task.

Each of the 943 users is a client. Every rating counts as an interaction (implicit
feedback). A user's interactions are ordered by time (ties by item id) and the latest
``test_fraction`` of them (at least one) are held out as its test positives; the rest are its
training positives. Each client also draws, once and seeded by ``(seed, "movielens-negatives",
user)``, ``negatives_per_positive`` training negatives per positive among the items it never
interacted with. The client's private **index set** -- the embedding rows its data touches
-- is the union of its training positives and negatives.

The loader reads ``u.data`` (tab-separated ``user item rating timestamp``, 1-based ids) from
``data_dir`` itself or from ``data_dir/ml-100k/``; when neither exists and ``download`` is
allowed it fetches ``ml-100k.zip`` from GroupLens into ``data_dir/ml-100k/``.

References:
    F. M. Harper and J. A. Konstan, "The MovieLens Datasets: History and Context", ACM TiiS
    2015 (the data set); X. He et al., "Neural Collaborative Filtering", WWW 2017 (time-based
    leave-out evaluation with sampled negatives on this data).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import os
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from fedkit.data.cifar10 import DatasetNotFoundError, default_data_dir
from fedkit.seeding import numpy_rng

__all__ = [
    "MOVIELENS_URL",
    "Interactions",
    "RecData",
    "load_movielens",
    "movielens_federated",
]

logger = logging.getLogger(__name__)

MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"


@dataclasses.dataclass(frozen=True)
class Interactions:
    """Raw interactions with 0-based ids: one entry per rating."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    num_users: int
    num_items: int


@dataclasses.dataclass(frozen=True)
class RecData:
    """The federated task: per user (client) its training and test items.

    Attributes:
        num_users: Number of clients.
        num_items: Vocabulary size (rows of the item-embedding table).
        positives: Per user, its training positives (sorted item ids).
        negatives: Per user, its sampled training negatives (sorted, disjoint from every item
            the user interacted with).
        test: Per user, its held-out latest positives (sorted).
    """

    num_users: int
    num_items: int
    positives: tuple[np.ndarray, ...]
    negatives: tuple[np.ndarray, ...]
    test: tuple[np.ndarray, ...]

    def index_set(self, user: int) -> np.ndarray:
        """The embedding rows user ``user``'s training data touches (sorted item ids)."""
        return np.union1d(self.positives[user], self.negatives[user])

    def seen(self, user: int) -> np.ndarray:
        """Every item user ``user`` interacted with (train and test positives)."""
        return np.union1d(self.positives[user], self.test[user])


def _find_u_data(folder: Path) -> Path | None:
    for candidate in (folder / "u.data", folder / "ml-100k" / "u.data"):
        if candidate.is_file():
            return candidate
    return None


def _download(folder: Path) -> Path:
    target = folder / "ml-100k"
    logger.info("downloading MovieLens-100k from %s into %s", MOVIELENS_URL, target)
    with urllib.request.urlopen(MOVIELENS_URL, timeout=60) as response:  # noqa: S310
        payload = response.read()
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        (target / "u.data").write_bytes(archive.read("ml-100k/u.data"))
    return target / "u.data"


@functools.lru_cache(maxsize=4)
def _read(path: str) -> Interactions:
    raw = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    if raw.shape[1] != 4 or raw.shape[0] == 0:
        raise ValueError(f"{path}: expected rows 'user<TAB>item<TAB>rating<TAB>timestamp', "
                         f"got shape {raw.shape}")
    users, items = raw[:, 0] - 1, raw[:, 1] - 1
    if users.min() < 0 or items.min() < 0:
        raise ValueError(f"{path}: user and item ids must be 1-based positive integers")
    for array in (users, items, raw[:, 2], raw[:, 3]):
        array.setflags(write=False)
    return Interactions(users=users, items=items, ratings=raw[:, 2], timestamps=raw[:, 3],
                        num_users=int(users.max()) + 1, num_items=int(items.max()) + 1)


def load_movielens(data_dir: str | os.PathLike[str] | None = None, *,
                   download: bool = True) -> Interactions:
    """Read MovieLens-100k's ``u.data`` (see the module docstring for where it is looked for).

    Raises:
        DatasetNotFoundError: If ``u.data`` is absent and could not be downloaded; the
            message names the folder, ``$FEDKIT_DATA`` and the offline copy to point at.
    """
    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    path = _find_u_data(folder)
    if path is None and download:
        try:
            path = _download(folder)
        except OSError as exc:
            logger.warning("MovieLens-100k download failed: %s", exc)
    if path is None:
        raise DatasetNotFoundError(
            f"MovieLens-100k not found: no u.data in {folder} or {folder / 'ml-100k'}, and "
            f"{'the download failed' if download else 'downloading is disabled'}. Point "
            "data_dir (or $FEDKIT_DATA) at a folder holding u.data, e.g. the offline copy "
            "shared/data/movielens-100k/"
        )
    return _read(str(path))


def movielens_federated(interactions: Interactions, *, test_fraction: float = 0.1,
                        negatives_per_positive: int = 4, seed: int = 0) -> RecData:
    """Split per user by time and draw each user's training negatives (module docstring).

    Raises:
        ValueError: On ``test_fraction`` outside (0, 1) or a negative sample count, or a user
            with fewer than two interactions (one to train on, one to test).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction = {test_fraction}, expected a fraction in (0, 1)")
    if negatives_per_positive < 0:
        raise ValueError(f"negatives_per_positive = {negatives_per_positive}, expected >= 0")
    order = np.lexsort((interactions.items, interactions.timestamps, interactions.users))
    users, items = interactions.users[order], interactions.items[order]
    bounds = np.searchsorted(users, np.arange(interactions.num_users + 1))
    positives, negatives, test = [], [], []
    everything = np.arange(interactions.num_items)
    for user in range(interactions.num_users):
        history = items[bounds[user]:bounds[user + 1]]
        history = history[np.sort(np.unique(history, return_index=True)[1])]  # first rating
        if history.size < 2:
            raise ValueError(f"user {user + 1} has {history.size} distinct items, expected >= 2")
        held = max(1, int(round(test_fraction * history.size)))
        train, later = history[:-held], history[-held:]
        unseen = np.setdiff1d(everything, history, assume_unique=False)
        count = min(unseen.size, negatives_per_positive * train.size)
        rng = numpy_rng(seed, "movielens-negatives", user)
        positives.append(np.sort(train))
        negatives.append(np.sort(rng.choice(unseen, size=count, replace=False)))
        test.append(np.sort(later))
    for array in (*positives, *negatives, *test):
        array.setflags(write=False)
    return RecData(num_users=interactions.num_users, num_items=interactions.num_items,
                   positives=tuple(positives), negatives=tuple(negatives), test=tuple(test))
