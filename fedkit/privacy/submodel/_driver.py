"""An in-process driver for one submodel-aware secure-aggregation round."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fedkit.privacy.secagg import Stage
from fedkit.privacy.secagg.extend import TamperFn, drive_round
from fedkit.privacy.submodel._client import SubmodelSecAggClient
from fedkit.privacy.submodel._config import SubmodelSecAggConfig
from fedkit.privacy.submodel._messages import decode_submodel_message
from fedkit.privacy.submodel._result import SubmodelSecAggReport, SubmodelSecAggResult
from fedkit.privacy.submodel._server import SubmodelSecAggServer

__all__ = ["SubmodelUpdate", "run_submodel_secagg"]


@dataclass(frozen=True)
class SubmodelUpdate:
    """One client's input to a submodel-aware round (validated by its client).

    Attributes:
        rows: S''_u, its public perturbed row set (strictly increasing ids).
        row_values: ``[len(rows), row_width]`` row updates, in the order of ``rows``.
        row_counts: ``[len(rows)]`` 0/1 flags: 1 iff the client truly used the row.
        dense: ``[vector_length]`` dense update.
        weight: n_u in ``[0, max_weight]`` (the dense part's weight).
    """

    rows: np.ndarray
    row_values: np.ndarray
    row_counts: np.ndarray
    dense: np.ndarray
    weight: float = 1.0


def run_submodel_secagg(
    updates: Mapping[int, SubmodelUpdate],
    config: SubmodelSecAggConfig,
    dropouts: Mapping[Stage, set[int]] | None = None,
    *,
    rng: np.random.Generator | None = None,
    tamper_fn: TamperFn | None = None,
) -> tuple[SubmodelSecAggResult, SubmodelSecAggReport]:
    """Run one submodel-aware round in this process, every message through its wire format.

    Dropouts, rejections and ``tamper_fn`` work as in :func:`fedkit.privacy.secagg.run_secagg`
    (a rejected message or failed client check counts as a dropout at that stage). Every
    party runs in this process under ``config``, so each client holds itself to
    ``config.min_row_holders``: a row reaches the sums only from a crowd of at least that many
    surviving holders (``result.rows_withheld`` counts the others).

    Args:
        updates: Per client id, its :class:`SubmodelUpdate`.
        config: The round's configuration.
        dropouts: ``{stage: ids that drop before sending that stage's message}``.
        rng: Root of the clients' stochastic-rounding generators (not secret): client
            ``sorted(ids)[i]`` rounds with ``rng.spawn(n)[i]``, as in ``run_secagg``.
        tamper_fn: Test seam ``(stage, "up" | "down", client id, bytes) -> bytes``.

    Returns:
        ``(result, report)``; ``result.row_mean`` and ``result.dense_mean`` are the averages.

    Raises:
        SecAggAbort: Too few clients or shares at some stage.
        SecAggConfigError: An invalid row set in ``updates``.

    Example:
        >>> cfg = SubmodelSecAggConfig(
        ...     num_clients=3, num_rows=5, row_width=1, vector_length=1, threshold=2)
        >>> one = lambda rows, counts: SubmodelUpdate(
        ...     np.array(rows), np.full((len(rows), 1), 0.5), np.array(counts), np.ones(1))
        >>> result, _ = run_submodel_secagg(
        ...     {0: one([1, 3], [1, 0]), 1: one([1], [1]), 2: one([3, 4], [1, 1])}, cfg)
        >>> result.row_counts.tolist(), np.round(result.row_sums[:, 0], 4).tolist()
        ([0, 2, 0, 1, 0], [0.0, 1.0, 0.0, 0.5, 0.0])
        >>> result.rows_withheld  # row 4: client 2 alone holds it (floor 2)
        1
    """
    root = rng if rng is not None else np.random.default_rng()
    ids = sorted(updates)
    clients = {
        cid: SubmodelSecAggClient(
            config, cid, updates[cid].rows, rng=child, min_row_holders=config.min_row_holders
        )
        for cid, child in zip(ids, root.spawn(len(ids)), strict=True)
    }

    def submit(cid: int, shares):
        update = updates[cid]
        return clients[cid].masked_input(
            shares,
            update.dense,
            update.weight,
            row_values=update.row_values,
            row_counts=update.row_counts,
        )

    report = drive_round(
        clients,
        SubmodelSecAggServer(config, client_ids=ids),
        submit,
        dropouts,
        tamper_fn=tamper_fn,
        decode_fn=decode_submodel_message,
        report_cls=SubmodelSecAggReport,
    )
    return report.result, report
