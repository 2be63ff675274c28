"""The message contract between a fedkit strategy and a ClientApp, and what breaking it does.

A fedkit strategy expects three things of every ClientApp (docs/flower.md, "Strategies"):

1. an answer to ``query.client_id`` with the node's stable client id
   (``fedkit.flower.mods.client_id_mod``);
2. a train reply with exactly one ArrayRecord (``arrayrecord_key``, default ``arrays``) holding
   the arrays the strategy asked for -- the trained model, or, in FedLaAvg's client-delta mode,
   the float64 gradient delta ΔG_i (``fedkit.flower.mods.fedlaavg_mod``);
3. a MetricRecord ``metrics`` in that reply with the weight ``weighted_by_key`` (default
   ``num-examples``), an integer > 0.

A reply that breaks it is rejected (:mod:`fedkit.algorithms.replies`) with a
:class:`Mismatch`, which says which part is broken. One broken reply is the client's problem
and the round continues without it; but when *every* reply of a round is rejected for a
:class:`Mismatch` (no reply accepted, none rejected for another reason), the ClientApp does
not implement the contract and no later round can do better: the strategy raises
:class:`ContractError`, naming the missing piece and the fix, and the run fails (Flower
records the ServerApp as failed; ``fedkit simulate`` exits non-zero). A round without accepted
replies for other reasons -- every selected client offline, failing, or out of sync -- stays a
logged round that keeps the model.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "CLIENT_ID_MOD",
    "FEDLAAVG_MOD",
    "ContractError",
    "Mismatch",
    "contract_error",
    "mismatch_fix",
]

CLIENT_ID_MOD = "fedkit.flower.mods.client_id_mod"
FEDLAAVG_MOD = "fedkit.flower.mods.fedlaavg_mod"


class ContractError(RuntimeError):
    """Every client of a round broke the message contract of the strategy: the run stops."""


class Mismatch(enum.Enum):
    """Which part of the contract a rejected reply broke."""

    NO_QUERY_HANDLER = "no-query-handler"
    """The ClientApp has no ``query.client_id`` handler."""
    BAD_CLIENT_ID = "bad-client-id"
    """The ``query.client_id`` answer holds no valid client id."""
    NO_TRAIN_HANDLER = "no-train-handler"
    """The ClientApp has no ``train`` handler."""
    NO_EVALUATE_HANDLER = "no-evaluate-handler"
    """The ClientApp has no ``evaluate`` handler (federated evaluation is then skipped with
    a warning, never fatal: evaluation is optional)."""
    ARRAY_RECORDS = "array-records"
    """The reply does not hold exactly one ArrayRecord under ``arrayrecord_key``."""
    ARRAY_NAMES = "array-names"
    """The reply's arrays are not named like the global model's."""
    ARRAY_SHAPES = "array-shapes"
    """An array has another shape than the global model's."""
    ARRAY_DTYPES = "array-dtypes"
    """An array has another dtype than expected (FedLaAvg client-delta: float64)."""
    NO_METRICS = "no-metrics"
    """The reply has no MetricRecord ``metrics``."""
    NO_WEIGHT = "no-weight"
    """The reply's ``metrics`` lack the weight ``weighted_by_key`` (or it is not a number)."""


def mismatch_fix(mismatch: Mismatch, *, delta_expected: bool = False,
                 weighted_by_key: str = "num-examples", arrayrecord_key: str = "arrays",
                 num_clients: int | None = None) -> str:
    """What is missing, and how to fix it, for one kind of mismatch.

    Args:
        mismatch: The broken part.
        delta_expected: The strategy asked for FedLaAvg's ΔG_i (client-delta mode).
        weighted_by_key: The weight metric the strategy reads.
        arrayrecord_key: The ArrayRecord name the strategy reads.
        num_clients: N when the strategy knows it (client ids are 0..N-1).

    Returns:
        One sentence naming the missing piece and the fix.
    """
    if mismatch is Mismatch.NO_QUERY_HANDLER:
        return (f"the ClientApp has no handler for 'query.client_id', the message by which "
                f"fedkit strategies learn each node's stable client id; add {CLIENT_ID_MOD} "
                f"to your ClientApp's mods by registering its query handler: "
                f"register_client_id_query(app) from fedkit.flower.mods (Flower runs mods "
                f"only around registered handlers)")
    if mismatch is Mismatch.BAD_CLIENT_ID:
        valid = f"in [0, {num_clients})" if num_clients is not None else ">= 0"
        return (f"the nodes' 'query.client_id' answers hold no valid client id (an integer "
                f"{valid} as 'client-id' in the ConfigRecord 'client'); add {CLIENT_ID_MOD} "
                "to your ClientApp's mods and give every node its own id (node config "
                "'client-id', or 'partition-id' in simulation)"
                + (", or pass the federation's size as num_clients" if num_clients else ""))
    if mismatch is Mismatch.NO_TRAIN_HANDLER:
        return "the ClientApp has no 'train' handler; register one with @app.train()"
    if mismatch is Mismatch.NO_EVALUATE_HANDLER:
        return ("the ClientApp has no 'evaluate' handler; register one with @app.evaluate(), "
                "or construct the strategy with fraction_evaluate=0.0")
    if mismatch is Mismatch.ARRAY_DTYPES and delta_expected:
        return (f"FedLaAvg's client-delta mode expects the gradient delta ΔG_i as float64 "
                f"arrays, and the replies hold model arrays instead; add {FEDLAAVG_MOD} to "
                "your ClientApp's mods (it turns the trained model into FedLaAvg's ΔG_i), or "
                "construct FedLaAvg(mode='server-table'), whose clients reply with their model")
    if mismatch is Mismatch.ARRAY_DTYPES:
        return ("the replies' arrays must keep the dtypes of the arrays the client received; "
                "convert the trained model back (e.g. to float32) before replying")
    if mismatch in (Mismatch.ARRAY_NAMES, Mismatch.ARRAY_SHAPES):
        return ("the replies' arrays must have the global model's names and shapes: the "
                "ClientApp must train and return the architecture of the server's "
                "initial_arrays")
    if mismatch is Mismatch.ARRAY_RECORDS:
        return (f"a train reply holds exactly one ArrayRecord, named {arrayrecord_key!r} "
                "(the strategy's arrayrecord_key): RecordDict({"
                f"{arrayrecord_key!r}: ArrayRecord(...), 'metrics': MetricRecord(...)}})")
    if mismatch is Mismatch.NO_METRICS:
        return (f"a train reply holds a MetricRecord named 'metrics' with {weighted_by_key!r} "
                f"(the number of local training examples): RecordDict({{{arrayrecord_key!r}: "
                f"..., 'metrics': MetricRecord({{{weighted_by_key!r}: len(trainset), ...}})}})")
    return (f"the reply's MetricRecord 'metrics' needs {weighted_by_key!r}, an integer > 0 "
            "(the number of local training examples; the strategy's weighted_by_key weighs "
            f"the replies by it): MetricRecord({{{weighted_by_key!r}: len(trainset), ...}})")


def contract_error(subject: str, server_round: int | None, mismatches: Sequence[Mismatch],
                   first_reason: str, **fix_args) -> ContractError:
    """The :class:`ContractError` for a round whose every reply broke the contract.

    Args:
        subject: Whose contract, e.g. ``"FedLaAvg"``.
        server_round: The round (None: not known to the caller).
        mismatches: One per rejected reply.
        first_reason: The first rejection's logged reason (names the client and the field).
        **fix_args: Passed to :func:`mismatch_fix`.
    """
    counts = Counter(mismatches)
    fixes = "; ".join(mismatch_fix(m, **fix_args) for m in counts)
    when = f"round {server_round}: " if server_round is not None else ""
    return ContractError(
        f"{when}every reply broke the message contract of {subject} ({len(mismatches)} of "
        f"{len(mismatches)}), so no client can take part: {fixes}. First rejection: "
        f"{first_reason}. See docs/flower.md, 'Strategies'."
    )
