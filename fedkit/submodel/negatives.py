r"""Loss weights that undo the sampling bias of negatives drawn among the downloaded rows.

With ``submodel_negatives = "downloaded"`` a client's negatives are its randomized-response
fakes ``S'' \ S``, drawn from the round's union U, so item j is offered at a rate proportional
to ``pi_j = P(j in U)``. The Horvitz-Thompson correction weights negative j's loss by
``w_j = min(cap, mean_i(pi_i) / pi_j)``, which makes every item's expected weighted use as a
negative equal (as uniform sampling would) and keeps the mean weight near 1; the cap bounds the
variance rare items add. ``pi`` is estimated from the decoded unions by Laplace's rule,
``pi_hat_j = (m_j + 1) / (R + 2)``. The weights depend on no client's own data. See
docs/submodel.md, "Negatives drawn among the downloaded rows".

References:
    D. G. Horvitz and D. J. Thompson, "A generalization of sampling without replacement from
    a finite universe", JASA 47 (1952) (inverse inclusion-probability weighting);
    Y. Bengio and J.-S. Senecal, "Adaptive importance sampling to accelerate training of a
    neural probabilistic language model", IEEE TNN 19 (2008) (importance-weighted negatives).
"""

from __future__ import annotations

import numpy as np

__all__ = ["UnionFrequency"]


class UnionFrequency:
    """The server's count of how often each item was in the decoded union.

    Args:
        num_items: Size of the catalogue (ids ``0 .. num_items - 1``).

    Example:
        >>> freq = UnionFrequency(4)
        >>> freq.observe(np.array([0, 1])); freq.observe(np.array([0]))
        >>> freq.inclusion().tolist()  # (m + 1) / (R + 2) with R = 2
        [0.75, 0.5, 0.25, 0.25]
        >>> [round(w, 4) for w in freq.negative_weights(np.array([0, 2]), cap=10.0).tolist()]
        [0.5833, 1.75]
    """

    def __init__(self, num_items: int) -> None:
        if isinstance(num_items, bool) or not isinstance(num_items, int) or num_items < 1:
            raise ValueError(f"UnionFrequency: num_items = {num_items!r}, expected an "
                             "integer >= 1")
        self.num_items = num_items
        self.counts = np.zeros(num_items, dtype=np.int64)
        self.rounds = 0

    def observe(self, union: np.ndarray) -> None:
        """Count one decoded union (distinct item ids in ``[0, num_items)``)."""
        ids = np.asarray(union)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "ui"):
            raise ValueError(f"UnionFrequency.observe: the union must be a 1-D integer array, "
                             f"got shape {ids.shape} dtype {ids.dtype}")
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.num_items):
            raise ValueError(f"UnionFrequency.observe: union ids span [{int(ids.min())}, "
                             f"{int(ids.max())}], expected ids in [0, {self.num_items})")
        if np.unique(ids).size != ids.size:
            raise ValueError("UnionFrequency.observe: the union has repeated ids")
        self.counts[ids] += 1
        self.rounds += 1

    def inclusion(self) -> np.ndarray:
        """``pi_hat_j = (m_j + 1) / (R + 2)`` for every item (float64)."""
        return (self.counts + 1.0) / (self.rounds + 2.0)

    def negative_weights(self, ids: np.ndarray, cap: float) -> np.ndarray:
        """Loss weights ``min(cap, mean(pi_hat) / pi_hat_j)`` of items ``ids`` (float32).

        Args:
            ids: Item ids (e.g. a client's downloaded rows S'').
            cap: Largest weight, >= 1.

        Raises:
            ValueError: If ``cap`` < 1 or an id is outside the catalogue.
        """
        if not cap >= 1.0:
            raise ValueError(f"UnionFrequency.negative_weights: cap = {cap!r}, expected >= 1")
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.num_items):
            raise ValueError(f"UnionFrequency.negative_weights: ids span [{int(ids.min())}, "
                             f"{int(ids.max())}], expected ids in [0, {self.num_items})")
        pi = self.inclusion()
        return np.minimum(cap, pi.mean() / pi[ids]).astype(np.float32)
