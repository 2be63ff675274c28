"""Synthetic implicit feedback for the submodel task: small, seeded, no download.

Shaped like MovieLens' ``u.data`` (:class:`~fedkit.data.movielens.Interactions`), so the same
split (:func:`~fedkit.data.movielens.movielens_federated`) turns it into a federated task.
Items fall into ``num_groups`` contiguous taste groups; user u draws ``num_per_user`` distinct
items, each from its own group (``u mod num_groups``) with probability ``affinity`` and from a
Zipf(1) popularity law over all items otherwise. Timestamps are the draw order. Every draw
comes from the stream ``(seed, "synthetic-rec", u)``, so a user's history does not depend on
how many users there are.
"""

from __future__ import annotations

import numpy as np

from fedkit.data.movielens import Interactions
from fedkit.seeding import numpy_rng

__all__ = ["synthetic_interactions"]


def synthetic_interactions(num_users: int, num_items: int, *, num_per_user: int = 12,
                           num_groups: int = 4, affinity: float = 0.8,
                           seed: int = 0) -> Interactions:
    """Interactions of ``num_users`` users over ``num_items`` items (module docstring).

    Raises:
        ValueError: On fewer than two items per user, more items per user than half the
            vocabulary (negatives must remain), or ``affinity`` outside [0, 1].

    Example:
        >>> data = synthetic_interactions(5, 40, seed=1)
        >>> data.num_users, data.num_items, data.users.size
        (5, 40, 60)
    """
    if num_users < 1 or not 2 <= num_per_user <= num_items // 2:
        raise ValueError(f"synthetic_interactions: num_users = {num_users}, num_per_user = "
                         f"{num_per_user}, num_items = {num_items}; expected num_users >= 1 "
                         "and 2 <= num_per_user <= num_items // 2")
    if not 0.0 <= affinity <= 1.0 or num_groups < 1:
        raise ValueError(f"affinity = {affinity} must lie in [0, 1] and num_groups = "
                         f"{num_groups} be >= 1")
    popularity = 1.0 / np.arange(1, num_items + 1)
    popularity /= popularity.sum()
    bounds = np.linspace(0, num_items, num_groups + 1).astype(np.int64)
    users, items = [], []
    for user in range(num_users):
        rng = numpy_rng(seed, "synthetic-rec", user)
        group = user % num_groups
        own = np.arange(bounds[group], bounds[group + 1])
        chosen: list[int] = []
        while len(chosen) < num_per_user:
            if own.size and rng.random() < affinity:
                item = int(rng.choice(own))
            else:
                item = int(rng.choice(num_items, p=popularity))
            if item not in chosen:
                chosen.append(item)
        users.extend([user] * num_per_user)
        items.extend(chosen)
    users_a = np.asarray(users, dtype=np.int64)
    items_a = np.asarray(items, dtype=np.int64)
    stamps = np.tile(np.arange(num_per_user, dtype=np.int64), num_users)
    ratings = np.ones_like(users_a)
    for array in (users_a, items_a, ratings, stamps):
        array.setflags(write=False)
    return Interactions(users=users_a, items=items_a, ratings=ratings, timestamps=stamps,
                        num_users=num_users, num_items=num_items)
