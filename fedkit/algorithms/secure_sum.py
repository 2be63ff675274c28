"""What a strategy exchanges with secure aggregation: the vector spec and the unmasked sum.

Under secure aggregation (:mod:`fedkit.flower.secagg.workflow`) the server never sees a
client's update, only ``sum_u w_u v_u`` and ``sum_u w_u`` over the clients whose masked input
arrived. A strategy that can work from that (FedAvg; FedLaAvg in client-delta mode, whose
server needs only the sum of the selected clients' ΔG_i) says how clients form ``v_u``
(:class:`VectorSpec`) and folds the :class:`SecureSum`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

__all__ = ["SECURE_SUM_KEY", "SecureSum", "VectorSpec", "read_secure_sum",
           "secure_sum_content"]

SECURE_SUM_KEY = "fedkit.secure-sum"
"""Record name of a :class:`SecureSum` carried as a reply (:func:`secure_sum_content`)."""

_WEIGHTINGS = ("num-examples", "uniform")


@dataclasses.dataclass(frozen=True)
class VectorSpec:
    """How a client turns its train reply into the vector it masks.

    ``v = (flatten(reply arrays) - (flatten(received arrays) if offset else 0)) * prescale``;
    its weight is the reply's ``num-examples`` metric, or 1 for ``weighting="uniform"``. The
    server divides the unmasked sum by ``prescale`` again. ``offset`` turns a local model
    into an update (small values, so the clipping range can be tight); ``prescale`` brings
    FedLaAvg's ΔG_i to the scale of a model update (prescale = the round's learning rate).
    With ``count_clipped`` the client appends ``clip * c / m`` to ``v`` (c of its m values lie
    outside the clipping range; the element itself never does), so the unmasked sum also
    yields the weighted mean fraction of clipped values, and no client's own count is revealed.
    """

    offset: bool = True
    prescale: float = 1.0
    weighting: str = "num-examples"
    count_clipped: bool = False

    def __post_init__(self) -> None:
        if not self.prescale > 0:
            raise ValueError(f"VectorSpec.prescale = {self.prescale!r}, expected > 0")
        if self.weighting not in _WEIGHTINGS:
            raise ValueError(
                f"VectorSpec.weighting = {self.weighting!r}, expected one of {list(_WEIGHTINGS)}"
            )


@dataclasses.dataclass(frozen=True)
class SecureSum:
    """The outcome of one securely aggregated round.

    Attributes:
        weighted_sum: ``sum_u w_u v_u / prescale`` (float64), None when the round aborted.
        total_weight: ``sum_u w_u``.
        contributors: Client ids whose input is in the sum, sorted.
        trained: Client ids that received the round's model (they may have trained and
            updated local state even if their input never arrived), sorted.
        failed: Client id -> why it is not in the sum (stage and reason).
        state_lost: Client ids that replied FedLaAvg's ``state-lost`` instead of an input.
        aborted: The reason the round aborted (too few clients at some stage), else None.
        stage_seconds: Server wall time per stage: building and sending the requests,
            waiting for the replies, and the server's own work on them (abort: without it).
        bytes_up: Per stage, protocol bytes received from all clients.
        bytes_down: Per stage, protocol bytes sent to all clients (model excluded).
        clipped_fraction: The contributors' weighted mean fraction of values that the
            clipping range cut (``VectorSpec.count_clipped``), else None.
    """

    weighted_sum: np.ndarray | None
    total_weight: float
    contributors: tuple[int, ...]
    trained: tuple[int, ...]
    failed: dict[int, str]
    state_lost: tuple[int, ...]
    aborted: str | None
    stage_seconds: dict[str, float]
    bytes_up: dict[str, int]
    bytes_down: dict[str, int]
    clipped_fraction: float | None = None


def secure_sum_content(outcome: SecureSum) -> RecordDict:
    """``outcome`` as the content of one reply: how a grid that runs secure aggregation
    (:class:`fedkit.flower.secagg.grid.SecureAggregationGrid`) hands the round's unmasked sum
    to a fedkit strategy (:func:`read_secure_sum`)."""
    fields = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome)
              if f.name != "weighted_sum"}
    fields["failed"] = {str(k): v for k, v in outcome.failed.items()}
    content = RecordDict({SECURE_SUM_KEY: ConfigRecord({"outcome": json.dumps(fields)})})
    if outcome.weighted_sum is not None:
        content[f"{SECURE_SUM_KEY}.sum"] = ArrayRecord(
            {"sum": Array(np.asarray(outcome.weighted_sum, np.float64))})
    return content


def read_secure_sum(replies: Iterable[Message]) -> SecureSum | None:
    """The :class:`SecureSum` among ``replies`` (see :func:`secure_sum_content`), else None."""
    for reply in replies:
        if not reply.has_content() or SECURE_SUM_KEY not in reply.content.config_records:
            continue
        fields = json.loads(str(reply.content.config_records[SECURE_SUM_KEY]["outcome"]))
        fields["failed"] = {int(k): v for k, v in fields["failed"].items()}
        for name in ("contributors", "trained", "state_lost"):
            fields[name] = tuple(fields[name])
        total = reply.content.array_records.get(f"{SECURE_SUM_KEY}.sum")
        return SecureSum(weighted_sum=None if total is None else total["sum"].numpy(), **fields)
    return None
