"""Submodel-aware secure aggregation: the safe layer.

Each client u uploads updates only for the rows of its public perturbed row set S''_u, with
a private 0/1 "involved" count per row, a dense update and its weight n_u. The server learns,
per row j, the sums of the updates and of the counts over the surviving clients with j in
S''_u, and the weighted dense sum; never one client's update, nor which holders of j truly
used it. It is SecAgg's four stages (:mod:`fedkit.privacy.secagg`) with a per-row layout and
pairwise masks on row j only between clients whose S'' both contain j. A row's sums leave
the protocol only from a crowd of at least ``min_row_holders`` surviving holders (default
:data:`DEFAULT_MIN_ROW_HOLDERS`), enforced by the clients with per-row mask seeds they reveal
only for such rows (issue 18, attack 4; docs/submodel.md, "Rows released only in crowds").
Averaging
(:func:`row_average`): ``W_j += sum_u Delta_uj / sum_u count_uj`` where the count sum is
positive, else unchanged; dense ``sum_u n_u Delta_u / sum_u n_u`` (Niu et al., MobiCom 2020,
secure federated submodel averaging). Order: client clip -> x count (rows) / x weight
(dense) -> quantise -> mask; server scatter -> unmask -> dequantise -> divide. See
docs/submodel.md, "Submodel-aware secure aggregation".

Example:
    >>> import numpy as np
    >>> cfg = SubmodelSecAggConfig(
    ...     num_clients=3, num_rows=4, row_width=2, vector_length=1, threshold=2)
    >>> updates = {
    ...     cid: SubmodelUpdate(np.array([0, 2]), np.ones((2, 2)), np.array([1, cid % 2]),
    ...                         np.ones(1), weight=1.0)
    ...     for cid in range(3)
    ... }
    >>> result, _ = run_submodel_secagg(updates, cfg)
    >>> result.row_counts.tolist(), np.round(result.row_mean[:, 0], 4).tolist()
    ([3, 0, 1, 0], [1.0, 0.0, 1.0, 0.0])

References:
    C. Niu et al., "Secure Federated Submodel Learning", arXiv 1911.02254 (MobiCom 2020:
    "Billion-scale federated learning on mobile clients: a submodel design with tunable
    privacy"); official code ``secure/SFSL/*secure_federated_submodel_averaging.py``.
    K. Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
    Learning", CCS 2017.
"""

from __future__ import annotations

from fedkit.privacy.submodel._client import SubmodelSecAggClient
from fedkit.privacy.submodel._config import SubmodelSecAggConfig
from fedkit.privacy.submodel._crowds import DEFAULT_MIN_ROW_HOLDERS
from fedkit.privacy.submodel._driver import SubmodelUpdate, run_submodel_secagg
from fedkit.privacy.submodel._messages import (
    SUBMODEL_WIRE_VERSION,
    SubmodelAdvertiseKeys,
    SubmodelKeysBroadcast,
    SubmodelUnmaskResponse,
    decode_submodel_message,
)
from fedkit.privacy.submodel._result import (
    SubmodelSecAggReport,
    SubmodelSecAggResult,
    row_average,
)
from fedkit.privacy.submodel._rowsets import decode_row_set, encode_row_set
from fedkit.privacy.submodel._server import SubmodelSecAggServer

__all__ = [
    "DEFAULT_MIN_ROW_HOLDERS",
    "SUBMODEL_WIRE_VERSION",
    "SubmodelAdvertiseKeys",
    "SubmodelKeysBroadcast",
    "SubmodelSecAggClient",
    "SubmodelSecAggConfig",
    "SubmodelSecAggReport",
    "SubmodelSecAggResult",
    "SubmodelSecAggServer",
    "SubmodelUnmaskResponse",
    "SubmodelUpdate",
    "decode_row_set",
    "decode_submodel_message",
    "encode_row_set",
    "row_average",
    "run_submodel_secagg",
]
