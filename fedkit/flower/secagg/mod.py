"""The client side of secure aggregation on Flower: a mod around any Message-API ClientApp.

:func:`secagg_mod` intercepts ``train`` messages that carry a secure-aggregation stage
(:mod:`fedkit.flower.secagg.records`) and runs that stage of
:class:`~fedkit.privacy.secagg.SecAggClient`; every other message passes through. Only in the
masked-input stage does it call the wrapped train handler, with the round's ordinary train
content; it turns the reply into the vector to mask
(:class:`~fedkit.algorithms.secure_sum.VectorSpec`), masks it and replies with the protocol
message alone: the server sees neither the model nor the metrics in clear. Between stages the
client's keys and shares live in the node's ``context.state`` (a Flower node keeps it across
messages), and are deleted after the unmask stage or when a stage fails.

A reply of the wrapped handler without arrays (e.g. fedkit's FedLaAvg ``state-lost``) is passed
on as is: the client drops out of the protocol and the server recovers its masks.

Use it as ``ClientApp(mods=[secagg_mod])`` or ``@app.train(mods=[secagg_mod])``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fedkit.algorithms.arrays import flatten
from fedkit.algorithms.replies import ARRAYS_KEY, METRICS_KEY
from fedkit.flower.secagg.records import (
    SECAGG_RECORD,
    StageRequest,
    read_request,
    reply_content,
)
from fedkit.privacy.secagg import SecAggClient, SecAggProtocolError, Stage, decode_message

__all__ = ["secagg_mod", "is_secure_stage", "masked_input_content", "secure_vector"]

logger = logging.getLogger(__name__)

_STATE_KEY = "fedkit.secagg.client"


def is_secure_stage(msg: Message, stage: Stage | None = None) -> bool:
    """Whether ``msg`` is a secure-aggregation stage message (of ``stage``, if given)."""
    if msg.metadata.message_type != "train" or not msg.has_content():
        return False
    record = msg.content.config_records.get(SECAGG_RECORD)
    if record is None:
        return False
    return stage is None or record.get("stage") == stage.value


def _save(context: Context, client: SecAggClient) -> None:
    context.state[_STATE_KEY] = ConfigRecord({"state": client.to_state()})


def _forget(context: Context) -> None:
    if _STATE_KEY in context.state.config_records:
        del context.state[_STATE_KEY]


def _restore(context: Context, request: StageRequest) -> SecAggClient:
    record = context.state.config_records.get(_STATE_KEY)
    if record is None:
        raise SecAggProtocolError(
            f"client {request.client_id}: stage {request.stage.value} of round "
            f"{request.config.round_id} arrived but this node holds no secure-aggregation "
            "state (it missed the earlier stages or restarted)"
        )
    return SecAggClient.from_state(request.config, record["state"])


def secure_vector(request: StageRequest, sent: ArrayRecord | None, reply: RecordDict
                  ) -> tuple[np.ndarray, float]:
    """The vector a client masks and its weight, from its train reply (see VectorSpec).

    Raises:
        SecAggProtocolError: Wrong length, a missing ``num-examples`` metric, or an offset
            requested without received arrays.
    """
    spec = request.spec
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
    if spec.weighting == "uniform":
        return vector, 1.0
    metrics = reply.metric_records.get(METRICS_KEY)
    if metrics is None or "num-examples" not in metrics:
        raise SecAggProtocolError("weighting 'num-examples' needs the train reply's "
                                  f"{METRICS_KEY!r} record with 'num-examples'")
    weight = float(metrics["num-examples"])
    if weight > request.config.max_weight:
        raise SecAggProtocolError(
            f"client {request.client_id}: num-examples = {weight:g} exceeds the secure "
            f"aggregation's max_weight = {request.config.max_weight:g} (raise secagg_max_weight)"
        )
    return vector, weight


def masked_input_content(msg: Message, context: Context, reply: RecordDict) -> RecordDict:
    """The masked-input stage reply, given the wrapped handler's train reply content.

    ``msg`` is the stage message (its train content is what the handler trained from). A
    reply without arrays is returned unchanged and the client leaves the protocol.
    """
    request = read_request(msg.content.config_records[SECAGG_RECORD])
    client = _restore(context, request)
    _forget(context)
    if ARRAYS_KEY not in reply.array_records:
        logger.info("client %s leaves secure aggregation round %s: its train reply has no "
                    "arrays", request.client_id, request.config.round_id)
        return reply
    sent = msg.content.array_records.get(ARRAYS_KEY)
    vector, weight = secure_vector(request, sent, reply)
    shares = decode_message(request.payload)
    out = client.masked_input(shares, vector, weight)
    _save(context, client)
    return reply_content(Stage.MASKED_INPUT, out.to_bytes())


def _train_message(msg: Message) -> Message:
    """The stage message as an ordinary train message (without the secure record)."""
    msg.content = RecordDict({k: v for k, v in msg.content.items() if k != SECAGG_RECORD})
    return msg


def secagg_mod(msg: Message, context: Context,
               call_next: Callable[[Message, Context], Message]) -> Message:
    """Flower mod: run secure-aggregation stages; pass every other message through."""
    if not is_secure_stage(msg):
        return call_next(msg, context)
    request = read_request(msg.content.config_records[SECAGG_RECORD])
    try:
        if request.stage is Stage.ADVERTISE_KEYS:
            client = SecAggClient(request.config, request.client_id)
            out = client.advertise_keys()
        elif request.stage is Stage.MASKED_INPUT:
            original = RecordDict(dict(msg.content.items()))
            train_reply = call_next(_train_message(msg), context)
            if train_reply.has_error():
                _forget(context)
                return train_reply
            msg.content = original
            return Message(masked_input_content(msg, context, train_reply.content),
                           reply_to=msg)
        else:
            client = _restore(context, request)
            out = (client.share_keys(decode_message(request.payload))
                   if request.stage is Stage.SHARE_KEYS
                   else client.unmask(decode_message(request.payload)))
    except Exception:
        _forget(context)
        raise
    if client.stage is None:
        _forget(context)
    else:
        _save(context, client)
    return Message(reply_content(request.stage, out.to_bytes()), reply_to=msg)
