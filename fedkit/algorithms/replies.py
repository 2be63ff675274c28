"""Validation of train replies: the single boundary between clients and server arithmetic.

A reply is folded into the server state only if it passes every check here: not an error
reply; answers a message of this round, from the node it was sent to, once; exactly one
ArrayRecord ``arrays`` with the global model's names, shapes and dtypes and finite values;
a MetricRecord ``metrics`` with an integer ``num-examples`` > 0. Otherwise it becomes a
:class:`Rejection` whose reason names the client, the field, the bad value and what was
expected, and the round continues without it. A reply with ``state-lost = 1`` (client-delta
state behind the server's version) is rejected with ``state_lost=True`` so the strategy can
schedule its recovery. See docs/design.md, "Replies".
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord

from fedkit.algorithms.arrays import from_flower_array

__all__ = [
    "ARRAYS_KEY",
    "METRICS_KEY",
    "STATE_LOST_KEY",
    "Rejection",
    "TrainReply",
    "validate_train_replies",
]

logger = logging.getLogger(__name__)

ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"
STATE_LOST_KEY = "state-lost"


@dataclasses.dataclass(frozen=True)
class TrainReply:
    """A validated train reply.

    Attributes:
        client_id: Stable id of the client that sent it.
        arrays: The client's arrays in the global model's key order.
        num_examples: Local examples used (the FedAvg weight).
        metrics: All scalar metrics of the reply.
    """

    client_id: int
    arrays: tuple[np.ndarray, ...]
    num_examples: int
    metrics: Mapping[str, float | int]


@dataclasses.dataclass(frozen=True)
class Rejection:
    """A reply that was not folded into the server state, and why."""

    client_id: int | None
    node_id: int
    reason: str
    state_lost: bool = False


def _check_arrays(record: ArrayRecord, reference: ArrayRecord) -> tuple[np.ndarray, ...] | str:
    if list(record.keys()) != list(reference.keys()):
        missing = sorted(set(reference) - set(record))
        extra = sorted(set(record) - set(reference))
        return f"array names differ from the global model's (missing {missing}, unexpected {extra})"
    arrays = []
    for name, ref in reference.items():
        got = record[name]
        if tuple(got.shape) != tuple(ref.shape) or got.dtype != ref.dtype:
            return (
                f"array {name!r} has shape {tuple(got.shape)} and dtype {got.dtype}, "
                f"expected shape {tuple(ref.shape)} and dtype {ref.dtype}"
            )
        value = from_flower_array(got)
        if not np.all(np.isfinite(value)):
            bad = int(value.size - np.count_nonzero(np.isfinite(value)))
            return f"array {name!r} holds {bad} NaN or Inf value(s), expected finite values"
        arrays.append(value)
    return tuple(arrays)


def _check_content(msg: Message, reference: ArrayRecord) -> TrainReply | str:
    content = msg.content
    array_records = content.array_records
    if list(array_records.keys()) != [ARRAYS_KEY]:
        return f"reply holds ArrayRecords {list(array_records.keys())}, expected exactly ['arrays']"
    metrics = content.metric_records.get(METRICS_KEY)
    if not isinstance(metrics, MetricRecord):
        return "reply has no MetricRecord 'metrics'"
    num_examples = metrics.get("num-examples")
    if isinstance(num_examples, float) and num_examples.is_integer():
        num_examples = int(num_examples)
    if not isinstance(num_examples, int) or num_examples <= 0:
        return f"metric 'num-examples' = {num_examples!r}, expected an integer > 0"
    arrays = _check_arrays(array_records[ARRAYS_KEY], reference)
    if isinstance(arrays, str):
        return arrays
    scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    return TrainReply(client_id=-1, arrays=arrays, num_examples=num_examples, metrics=scalars)


def validate_train_replies(
    replies: Iterable[Message],
    *,
    sent: Mapping[str, tuple[int, int]],
    reference: ArrayRecord,
) -> tuple[list[TrainReply], list[Rejection]]:
    """Split the replies of one round into accepted and rejected ones.

    Args:
        replies: The replies the grid returned.
        sent: For every instruction message id of this round, ``(node_id, client_id)`` of
            the node it was sent to.
        reference: The global arrays sent this round (names, shapes and dtypes to match).

    Returns:
        ``(accepted, rejected)``; accepted replies are ordered by client id so aggregation is
        independent of arrival order. Every rejection is logged at WARNING level.
    """
    accepted: dict[int, TrainReply] = {}
    rejected: list[Rejection] = []

    def reject(client_id: int | None, node_id: int, reason: str, state_lost: bool = False) -> None:
        who = f"client {client_id}" if client_id is not None else f"node {node_id}"
        logger.warning("reply from %s rejected: %s; the round continues without it", who, reason)
        rejected.append(Rejection(client_id, node_id, reason, state_lost))

    for msg in replies:
        node_id = msg.metadata.src_node_id
        target = sent.get(msg.metadata.reply_to_message_id)
        if target is None:
            reject(None, node_id, "it answers no message sent this round (unknown or replayed)")
            continue
        sent_node, client_id = target
        if node_id != sent_node:
            reject(client_id, node_id, f"it came from node {node_id}, expected node {sent_node}")
            continue
        if msg.has_error():
            reject(client_id, node_id, f"error reply (code {msg.error.code}): {msg.error.reason}")
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
        checked = _check_content(msg, reference)
        if isinstance(checked, str):
            reject(client_id, node_id, checked)
            continue
        accepted[client_id] = dataclasses.replace(checked, client_id=client_id)
    return [accepted[c] for c in sorted(accepted)], rejected
