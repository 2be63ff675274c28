"""The Flower records that carry fedkit's secure aggregation between server and clients.

A secure-aggregation stage travels as a ``train`` message whose content holds the ConfigRecord
:data:`SECAGG_RECORD`: the stage name, the round's :class:`~fedkit.privacy.secagg.SecAggConfig`
fields, the id the client takes in the protocol, how to turn its train reply into the vector it
masks (:class:`~fedkit.algorithms.secure_sum.VectorSpec`, masked-input stage only) and the
stage's protocol message as bytes (its own versioned wire format,
:mod:`fedkit.privacy.secagg`). Replies carry the same record with the stage and the client's
protocol message. The masked-input stage message also holds the round's ordinary train content
(model, config), which the client-side mod hands to the wrapped ClientApp.
"""

from __future__ import annotations

import dataclasses

from flwr.app import ConfigRecord, Message, RecordDict

from fedkit.algorithms.secure_sum import VectorSpec
from fedkit.privacy.secagg import SecAggConfig, SecAggProtocolError, Stage

__all__ = [
    "SECAGG_RECORD",
    "StageRequest",
    "read_reply",
    "read_request",
    "reply_content",
    "request_record",
]

SECAGG_RECORD = "fedkit.secagg"


@dataclasses.dataclass(frozen=True)
class StageRequest:
    """A parsed stage message: what the client-side mod needs."""

    stage: Stage
    config: SecAggConfig
    client_id: int
    payload: bytes
    spec: VectorSpec


def request_record(stage: Stage, config: SecAggConfig, client_id: int, payload: bytes = b"",
                   spec: VectorSpec | None = None) -> ConfigRecord:
    """The :data:`SECAGG_RECORD` of one stage message to one client."""
    spec = spec or VectorSpec()
    return ConfigRecord({
        "stage": stage.value,
        "client-id": int(client_id),
        "payload": bytes(payload),
        "num-clients": config.num_clients,
        "vector-length": config.vector_length,
        "threshold": config.threshold,
        "num-neighbours": 0 if config.num_neighbours is None else config.num_neighbours,
        "clip": float(config.clip),
        "bits": config.bits,
        "scale": float(config.resolved_scale),
        "max-weight": float(config.max_weight),
        "round-id": config.round_id,
        "run-id": config.run_id,
        "offset": spec.offset,
        "prescale": float(spec.prescale),
        "weighting": spec.weighting,
    })


def read_request(record: ConfigRecord) -> StageRequest:
    """Parse a :data:`SECAGG_RECORD`.

    Raises:
        SecAggProtocolError: A missing field, an unknown stage or invalid parameters.
    """
    try:
        stage = Stage(record["stage"])
        neighbours = int(record["num-neighbours"])
        config = SecAggConfig(
            num_clients=int(record["num-clients"]),
            vector_length=int(record["vector-length"]),
            threshold=int(record["threshold"]),
            num_neighbours=neighbours or None,
            clip=float(record["clip"]),
            bits=int(record["bits"]),
            scale=float(record["scale"]),
            max_weight=float(record["max-weight"]),
            round_id=int(record["round-id"]),
            run_id=int(record["run-id"]),
        )
        spec = VectorSpec(offset=bool(record["offset"]), prescale=float(record["prescale"]),
                          weighting=str(record["weighting"]))
        return StageRequest(stage, config, int(record["client-id"]), bytes(record["payload"]),
                            spec)
    except (KeyError, ValueError, TypeError) as exc:
        raise SecAggProtocolError(f"malformed secure-aggregation stage record: {exc}") from exc


def reply_content(stage: Stage, payload: bytes) -> RecordDict:
    """A client's reply to one stage."""
    return RecordDict({SECAGG_RECORD: ConfigRecord({"stage": stage.value,
                                                    "payload": bytes(payload)})})


def read_reply(msg: Message, stage: Stage) -> bytes:
    """The protocol bytes of a client's reply to ``stage``.

    Raises:
        SecAggProtocolError: No secure-aggregation record, another stage, or no payload.
    """
    records = msg.content.config_records
    if SECAGG_RECORD not in records:
        raise SecAggProtocolError(
            f"reply to stage {stage.value} has no {SECAGG_RECORD!r} record "
            f"(records: {sorted(msg.content.keys())})"
        )
    record = records[SECAGG_RECORD]
    if record.get("stage") != stage.value:
        raise SecAggProtocolError(
            f"reply names stage {record.get('stage')!r}, expected {stage.value!r} "
            "(replayed or reordered stage message)"
        )
    payload = record.get("payload")
    if not isinstance(payload, bytes):
        raise SecAggProtocolError(f"reply to stage {stage.value} has no bytes payload")
    return payload
