"""Validation of train replies: the single boundary between clients and server arithmetic.

A reply is folded into the server state only if it passes every check here: not an error
reply; answers a message of this round, from the node it was sent to, once; exactly one
ArrayRecord ``arrays`` with the global model's names, shapes and dtypes and finite values;
a MetricRecord ``metrics`` with an integer ``num-examples`` > 0. Otherwise it becomes a
:class:`Rejection` whose reason names the client, the field, the bad value and what was
expected, and the round continues without it. A reply with ``state-lost = 1`` (client-delta
state behind the server's version) is rejected with ``state_lost=True`` so the strategy can
schedule its recovery. A rejection for breaking the message contract (no train handler,
wrong ArrayRecord, arrays of other names, shapes or dtypes, no ``metrics`` or no weight)
carries its :class:`~fedkit.algorithms.contract.Mismatch`, so the strategy can tell a
ClientApp that cannot take part from a client that failed this once. See docs/design.md,
"Replies", and :mod:`fedkit.algorithms.contract`.

Evaluate replies (:func:`validate_evaluate_replies`) pass the same origin checks and need a
MetricRecord ``metrics`` with a positive weight.

The ArrayRecord and weight names are the strategy's ``arrayrecord_key`` and
``weighted_by_key`` (defaults ``arrays`` and ``num-examples``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict

from fedkit.algorithms.arrays import from_flower_array
from fedkit.algorithms.contract import Mismatch

__all__ = [
    "ARRAYS_KEY",
    "METRICS_KEY",
    "STATE_LOST_KEY",
    "Rejection",
    "TrainReply",
    "validate_evaluate_replies",
    "validate_train_replies",
]

logger = logging.getLogger(__name__)

ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"
STATE_LOST_KEY = "state-lost"
WEIGHT_KEY = "num-examples"
_NO_HANDLER = "No {} function registered with name"  # Flower's ClientApp, any runtime


@dataclasses.dataclass(frozen=True)
class TrainReply:
    """A validated train reply.

    Attributes:
        client_id: Stable id of the client that sent it.
        arrays: The client's arrays in the global model's key order.
        num_examples: Local examples used (the FedAvg weight): the reply's
            ``weighted_by_key`` metric.
        metrics: All scalar metrics of the reply.
        content: The reply's content as received (for ``train_metrics_aggr_fn``).
    """

    client_id: int
    arrays: tuple[np.ndarray, ...]
    num_examples: int
    metrics: Mapping[str, float | int]
    content: RecordDict | None = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class Rejection:
    """A reply that was not folded into the server state, and why.

    ``mismatch`` is set when the reply broke the message contract
    (:mod:`fedkit.algorithms.contract`).
    """

    client_id: int | None
    node_id: int
    reason: str
    state_lost: bool = False
    mismatch: Mismatch | None = None


@dataclasses.dataclass(frozen=True)
class _Problem:
    reason: str
    mismatch: Mismatch | None = None


def _check_arrays(record: ArrayRecord, reference: ArrayRecord
                  ) -> tuple[np.ndarray, ...] | _Problem:
    if list(record.keys()) != list(reference.keys()):
        missing = sorted(set(reference) - set(record))
        extra = sorted(set(record) - set(reference))
        return _Problem(f"array names differ from the global model's (missing {missing}, "
                        f"unexpected {extra})", Mismatch.ARRAY_NAMES)
    arrays = []
    for name, ref in reference.items():
        got = record[name]
        if tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype:
            mismatch = (Mismatch.ARRAY_SHAPES if tuple(got.shape) != tuple(ref.shape)
                        else Mismatch.ARRAY_DTYPES)
            return _Problem(
                f"array {name!r} has shape {tuple(got.shape)} and dtype {got.dtype}, "
                f"expected shape {tuple(ref.shape)} and dtype {ref.dtype}", mismatch
            )
        value = from_flower_array(got)
        if not np.all(np.isfinite(value)):
            bad = int(value.size - np.count_nonzero(np.isfinite(value)))
            return _Problem(f"array {name!r} holds {bad} NaN or Inf value(s), expected finite "
                            "values")
        arrays.append(value)
    return tuple(arrays)


def _check_weight(metrics: MetricRecord | None, weight_key: str) -> int | _Problem:
    if not isinstance(metrics, MetricRecord):
        return _Problem(f"reply has no MetricRecord {METRICS_KEY!r}", Mismatch.NO_METRICS)
    weight = metrics.get(weight_key)
    if isinstance(weight, float) and weight.is_integer():
        weight = int(weight)
    if not isinstance(weight, int) or isinstance(weight, bool) or weight <= 0:
        # A missing or non-integer weight breaks the contract; 0 examples is the client's state.
        mismatch = None if isinstance(weight, int) and not isinstance(weight, bool) \
            else Mismatch.NO_WEIGHT
        return _Problem(f"metric {weight_key!r} = {weight!r}, expected an integer > 0", mismatch)
    return weight


def _check_content(msg: Message, reference: ArrayRecord, arrays_key: str,
                   weight_key: str) -> TrainReply | _Problem:
    content = msg.content
    array_records = content.array_records
    if list(array_records.keys()) != [arrays_key]:
        return _Problem(f"reply holds ArrayRecords {list(array_records.keys())}, expected "
                        f"exactly [{arrays_key!r}]", Mismatch.ARRAY_RECORDS)
    metrics = content.metric_records.get(METRICS_KEY)
    num_examples = _check_weight(metrics, weight_key)
    if isinstance(num_examples, _Problem):
        return num_examples
    arrays = _check_arrays(array_records[arrays_key], reference)
    if isinstance(arrays, _Problem):
        return arrays
    scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    return TrainReply(client_id=-1, arrays=arrays, num_examples=num_examples, metrics=scalars,
                      content=content)


def _error_mismatch(msg: Message, message_type: str) -> Mismatch | None:
    if _NO_HANDLER.format(message_type) in msg.error.reason:
        return (Mismatch.NO_TRAIN_HANDLER if message_type == "train"
                else Mismatch.NO_EVALUATE_HANDLER)
    return None


def _origin(msg: Message, sent: Mapping[str, tuple[int, int]]
            ) -> tuple[int, int | None, str | None]:
    """(node id, client id, reason to reject or None) of a reply by where it came from."""
    node_id = msg.metadata.src_node_id
    target = sent.get(msg.metadata.reply_to_message_id)
    if target is None:
        return node_id, None, "it answers no message sent this round (unknown or replayed)"
    sent_node, client_id = target
    if node_id != sent_node:
        return node_id, client_id, f"it came from node {node_id}, expected node {sent_node}"
    if msg.has_error():
        return node_id, client_id, f"error reply (code {msg.error.code}): {msg.error.reason}"
    return node_id, client_id, None


def validate_train_replies(
    replies: Iterable[Message],
    *,
    sent: Mapping[str, tuple[int, int]],
    reference: ArrayRecord,
    arrayrecord_key: str = ARRAYS_KEY,
    weighted_by_key: str = WEIGHT_KEY,
) -> tuple[list[TrainReply], list[Rejection]]:
    """Split the replies of one round into accepted and rejected ones.

    Args:
        replies: The replies the grid returned.
        sent: For every instruction message id of this round, ``(node_id, client_id)`` of
            the node it was sent to.
        reference: The global arrays sent this round (names, shapes and dtypes to match).
        arrayrecord_key: The name of the one ArrayRecord a reply holds.
        weighted_by_key: The metric holding a reply's weight (an integer > 0).

    Returns:
        ``(accepted, rejected)``; accepted replies are ordered by client id so aggregation is
        independent of arrival order. Every rejection is logged at WARNING level.
    """
    accepted: dict[int, TrainReply] = {}
    rejected: list[Rejection] = []

    def reject(client_id: int | None, node_id: int, reason: str, state_lost: bool = False,
               mismatch: Mismatch | None = None) -> None:
        who = f"client {client_id}" if client_id is not None else f"node {node_id}"
        logger.warning("reply from %s rejected: %s; the round continues without it", who, reason)
        rejected.append(Rejection(client_id, node_id, reason, state_lost, mismatch))

    for msg in replies:
        node_id, client_id, problem = _origin(msg, sent)
        if problem is not None:
            mismatch = _error_mismatch(msg, "train") if msg.has_error() else None
            reject(client_id, node_id, problem, mismatch=mismatch)
            continue
        if client_id in accepted:
            reject(client_id, node_id, "duplicate reply within the round")
            continue
        metrics = msg.content.metric_records.get(METRICS_KEY)
        if metrics is not None and metrics.get(STATE_LOST_KEY) == 1:
            reject(client_id, node_id, "the client's stored state does not match the server's "
                   "version (lost or out of date); it is sent a recovery model when next selected",
                   state_lost=True)
            continue
        checked = _check_content(msg, reference, arrayrecord_key, weighted_by_key)
        if isinstance(checked, _Problem):
            reject(client_id, node_id, checked.reason, mismatch=checked.mismatch)
            continue
        accepted[client_id] = dataclasses.replace(checked, client_id=client_id)
    return [accepted[c] for c in sorted(accepted)], rejected


def validate_evaluate_replies(
    replies: Iterable[Message],
    *,
    sent: Mapping[str, tuple[int, int]],
    weighted_by_key: str = WEIGHT_KEY,
) -> tuple[list[tuple[int, RecordDict]], list[Rejection]]:
    """Split the replies of one federated evaluation into accepted and rejected ones.

    An accepted reply answers an evaluate message of this round from the node it was sent to,
    once, and holds a MetricRecord ``metrics`` with ``weighted_by_key`` an integer > 0.
    Rejections are logged at WARNING level, except error replies of a ClientApp without an
    ``evaluate`` handler (the caller says that once).

    Returns:
        ``(accepted, rejected)``: accepted ``(client_id, content)`` pairs ordered by client id.
    """
    accepted: dict[int, RecordDict] = {}
    rejected: list[Rejection] = []
    for msg in replies:
        node_id, client_id, problem = _origin(msg, sent)
        mismatch = _error_mismatch(msg, "evaluate") if msg.has_error() else None
        if problem is None and client_id in accepted:
            problem = "duplicate reply within the round"
        if problem is None:
            weight = _check_weight(msg.content.metric_records.get(METRICS_KEY), weighted_by_key)
            if isinstance(weight, _Problem):
                problem, mismatch = weight.reason, weight.mismatch
        if problem is not None:
            who = f"client {client_id}" if client_id is not None else f"node {node_id}"
            if mismatch is not Mismatch.NO_EVALUATE_HANDLER:
                logger.warning("evaluate reply from %s rejected: %s", who, problem)
            rejected.append(Rejection(client_id, node_id, problem, mismatch=mismatch))
            continue
        accepted[client_id] = msg.content
    return [(c, accepted[c]) for c in sorted(accepted)], rejected
