"""The client side of secure aggregation on Flower: a mod around any Message-API ClientApp.

:func:`secagg_mod` intercepts ``train`` messages that carry a secure-aggregation stage (the
exchange record of :mod:`fedkit.flower.secagg.records` with a stage as its phase) and answers
that stage through :func:`~fedkit.flower.secagg.client_state.client_stage`; every other
message passes through. Only in the masked-input stage does it call the wrapped train
handler, with the round's ordinary train content; it turns the reply into the vector to mask
(:class:`~fedkit.algorithms.secure_sum.VectorSpec`, sent as the record's ``offset``,
``prescale`` and ``weighting``), masks it and replies with the protocol message alone: the
server sees neither the model nor the metrics in clear.

A reply of the wrapped handler without arrays (e.g. fedkit's FedLaAvg ``state-lost``) is passed
on as is: the client drops out of the protocol and the server recovers its masks.

Use it as ``ClientApp(mods=[secagg_mod])`` or ``@app.train(mods=[secagg_mod])``; with
``fedlaavg_mod``, ``secagg_mod`` comes first (outside: clip -> mask). See ``docs/secagg.md``
("On Flower") and ``docs/flower.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fedkit.algorithms.arrays import flatten
from fedkit.algorithms.replies import ARRAYS_KEY, METRICS_KEY
from fedkit.algorithms.secure_sum import VectorSpec
from fedkit.flower.secagg.client_state import client_stage, forget_protocol_state
from fedkit.flower.secagg.records import EXCHANGE_RECORD, reply_record
from fedkit.privacy.secagg import SecAggConfig, SecAggProtocolError, Stage

__all__ = ["is_secure_stage", "masked_input_content", "secagg_mod", "secure_vector",
           "vector_spec_fields"]

logger = logging.getLogger(__name__)

_STAGES = {stage.value: stage for stage in Stage}


def is_secure_stage(msg: Message, stage: Stage | None = None) -> bool:
    """Whether ``msg`` is a secure-aggregation stage message (of ``stage``, if given)."""
    if msg.metadata.message_type != "train" or not msg.has_content():
        return False
    record = msg.content.config_records.get(EXCHANGE_RECORD)
    if record is None or record.get("phase") not in _STAGES:
        return False
    return stage is None or record.get("phase") == stage.value


def vector_spec_fields(spec: VectorSpec) -> dict:
    """``spec`` as entries of the masked-input request record."""
    return {"offset": spec.offset, "prescale": float(spec.prescale), "weighting": spec.weighting,
            "count-clipped": spec.count_clipped}


def _vector_spec(record: ConfigRecord) -> VectorSpec:
    try:
        return VectorSpec(offset=bool(record["offset"]), prescale=float(record["prescale"]),
                          weighting=str(record["weighting"]),
                          count_clipped=bool(record.get("count-clipped", False)))
    except (KeyError, TypeError, ValueError) as exc:
        raise SecAggProtocolError(f"masked-input request without a valid vector spec: {exc}"
                                  ) from exc


def secure_vector(spec: VectorSpec, config: SecAggConfig, client_id: int,
                  sent: ArrayRecord | None, reply: RecordDict) -> tuple[np.ndarray, float]:
    """The vector a client masks and its weight, from its train reply (see VectorSpec).

    With ``spec.count_clipped`` the vector ends with ``clip * c / m``: c of its m values lie
    outside ``[-config.clip, config.clip]`` or on its bound (a value a client clipped itself
    before, as FedLaAvg's client-delta mode does, sits on the bound).

    Raises:
        SecAggProtocolError: Wrong length, a missing ``num-examples`` metric, a weight above
            ``config.max_weight``, or an offset requested without received arrays.
    """
    vector = flatten(reply[ARRAYS_KEY])
    if spec.offset:
        if sent is None:
            raise SecAggProtocolError("the server asked for an update against the received "
                                      "arrays, but the message carried none")
        base = flatten(sent)
        if base.shape != vector.shape:
            raise SecAggProtocolError(
                f"reply has {vector.size} values, the received arrays {base.size}")
        vector -= base
    vector *= spec.prescale
    if spec.count_clipped:
        if vector.size + 1 != config.vector_length:
            raise SecAggProtocolError(f"reply has {vector.size} values, expected "
                                      f"{config.vector_length - 1} (and the clip count)")
        clipped = np.count_nonzero(np.abs(vector) >= config.clip * (1 - 1e-9))
        vector = np.append(vector, config.clip * clipped / vector.size)
    if spec.weighting == "uniform":
        return vector, 1.0
    metrics = reply.metric_records.get(METRICS_KEY)
    if metrics is None or "num-examples" not in metrics:
        raise SecAggProtocolError("weighting 'num-examples' needs the train reply's "
                                  f"{METRICS_KEY!r} record with 'num-examples'")
    weight = float(metrics["num-examples"])
    if weight > config.max_weight:
        raise SecAggProtocolError(
            f"client {client_id}: num-examples = {weight:g} exceeds the secure aggregation's "
            f"max_weight = {config.max_weight:g} (raise secagg_max_weight)")
    return vector, weight


def masked_input_content(msg: Message, context: Context, reply: RecordDict) -> RecordDict:
    """The masked-input stage reply, given the wrapped handler's train reply content.

    ``msg`` is the stage message (its train content is what the handler trained from). A
    reply without arrays is returned unchanged and the client leaves the protocol.
    """
    record = msg.content.config_records[EXCHANGE_RECORD]
    if ARRAYS_KEY not in reply.array_records:
        forget_protocol_state(context)
        logger.info("client %s leaves secure aggregation round %s: its train reply has no "
                    "arrays", record.get("client-id"), record.get("server-round"))
        return reply
    sent = msg.content.array_records.get(ARRAYS_KEY)

    def masked(client, shares):
        spec = _vector_spec(record)
        vector, weight = secure_vector(spec, client.config, client.client_id, sent, reply)
        return client.masked_input(shares, vector, weight)

    payload = client_stage(context, Stage.MASKED_INPUT, record, masked_fn=masked)
    return RecordDict({EXCHANGE_RECORD: reply_record(Stage.MASKED_INPUT.value, payload)})


def _train_message(msg: Message) -> Message:
    """The stage message as an ordinary train message (without the exchange record)."""
    msg.content = RecordDict({k: v for k, v in msg.content.items() if k != EXCHANGE_RECORD})
    return msg


def secagg_mod(msg: Message, context: Context,
               call_next: Callable[[Message, Context], Message]) -> Message:
    """Flower mod: answer secure-aggregation stages; pass every other message through."""
    if not is_secure_stage(msg):
        return call_next(msg, context)
    record = msg.content.config_records[EXCHANGE_RECORD]
    stage = _STAGES[record["phase"]]
    if stage is Stage.MASKED_INPUT:
        original = RecordDict(dict(msg.content.items()))
        train_reply = call_next(_train_message(msg), context)
        if train_reply.has_error():
            forget_protocol_state(context)
            return train_reply
        msg.content = original
        return Message(masked_input_content(msg, context, train_reply.content), reply_to=msg)
    payload = client_stage(context, stage, record)
    return Message(RecordDict({EXCHANGE_RECORD: reply_record(stage.value, payload)}),
                   reply_to=msg)
