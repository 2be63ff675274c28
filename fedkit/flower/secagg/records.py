"""The Flower record of fedkit's staged exchanges: one format for every protocol message.

Every request of a staged exchange (a secure-aggregation stage of a training round, of the
private set union or of the submodel upload, and the submodel task's other phases) holds the
ConfigRecord :data:`EXCHANGE_RECORD` with:

* ``phase`` -- the exchange's label (e.g. ``masked_input``, ``psu-share-keys``);
* ``server-round`` and ``client-id`` -- the round and the stable id the client takes in the
  protocol;
* ``payload`` -- the server's protocol message in fedkit's versioned wire format
  (:mod:`fedkit.privacy.secagg`), or empty;
* in the request that opens a protocol instance only, its
  :class:`~fedkit.privacy.secagg.SecAggConfig` as ``secagg-<field>`` entries
  (:func:`config_fields`): the client keeps them with its protocol state
  (:mod:`fedkit.flower.secagg.client_state`) for the later stages;
* any fields the exchange adds (e.g. the PSU's encoding, a training round's vector spec).

A reply holds the same record with ``phase`` and the client's protocol message as
``payload``. Sizes are measured as Flower serialises a content (:func:`content_bytes`).
"""

from __future__ import annotations

from typing import Any

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common.serde import recorddict_to_proto

from fedkit.privacy.secagg import SecAggConfig, SecAggError, SecAggProtocolError
from fedkit.privacy.submodel import SubmodelSecAggConfig

__all__ = [
    "CONFIG_PREFIX",
    "EXCHANGE_RECORD",
    "config_fields",
    "content_bytes",
    "read_config",
    "read_phase",
    "reply_payload",
    "reply_record",
    "request_record",
]

EXCHANGE_RECORD = "fedkit.exchange"
CONFIG_PREFIX = "secagg-"


def config_fields(config: SecAggConfig) -> dict[str, Any]:
    """``config`` as ``secagg-*`` record entries (:meth:`SecAggConfig.to_fields`)."""
    return {CONFIG_PREFIX + name: value for name, value in config.to_fields().items()}


def read_config(record: ConfigRecord) -> SecAggConfig:
    """The config written by :func:`config_fields` (the submodel config if it has
    ``num_rows``).

    Raises:
        SecAggProtocolError: A missing or invalid field.
    """
    values = {k[len(CONFIG_PREFIX):]: v for k, v in record.items()
              if k.startswith(CONFIG_PREFIX)}
    cls = SubmodelSecAggConfig if "num_rows" in values else SecAggConfig
    try:
        return cls.from_fields(values)
    except SecAggError as exc:
        raise SecAggProtocolError(f"malformed secure-aggregation parameters: {exc}") from exc


def request_record(phase: str, server_round: int, client_id: int, payload: bytes = b"",
                   config: SecAggConfig | None = None, **extra: Any) -> ConfigRecord:
    """The :data:`EXCHANGE_RECORD` of one request (``config`` only when opening an
    instance)."""
    fields = {"phase": phase, "server-round": int(server_round), "client-id": int(client_id),
              "payload": bytes(payload), **extra}
    if config is not None:
        fields.update(config_fields(config))
    return ConfigRecord(fields)


def reply_record(phase: str, payload: bytes = b"") -> ConfigRecord:
    """The :data:`EXCHANGE_RECORD` of a client's reply."""
    return ConfigRecord({"phase": phase, "payload": bytes(payload)})


def read_phase(msg: Message, expected: str | None = None) -> tuple[str, ConfigRecord]:
    """The phase and record of a request or reply.

    Raises:
        SecAggProtocolError: No record, or another phase than ``expected`` (a replayed or
            reordered message).
    """
    record = msg.content.config_records.get(EXCHANGE_RECORD) if msg.has_content() else None
    if record is None:
        names = sorted(msg.content.keys()) if msg.has_content() else []
        raise SecAggProtocolError(f"message has no {EXCHANGE_RECORD!r} record (records: "
                                  f"{names})")
    phase = record.get("phase")
    if not isinstance(phase, str):
        raise SecAggProtocolError(f"{EXCHANGE_RECORD!r} record has phase {phase!r}, "
                                  "expected a string")
    if expected is not None and phase != expected:
        raise SecAggProtocolError(f"reply names phase {phase!r}, expected {expected!r} "
                                  "(replayed or reordered message)")
    return phase, record


def reply_payload(msg: Message, phase: str) -> bytes:
    """The protocol bytes of a client's reply to ``phase``.

    Raises:
        SecAggProtocolError: No record, another phase, or no bytes payload.
    """
    _, record = read_phase(msg, phase)
    payload = record.get("payload")
    if not isinstance(payload, bytes):
        raise SecAggProtocolError(f"reply to {phase} has no bytes payload")
    return payload


def content_bytes(content: RecordDict) -> int:
    """Bytes of ``content`` as Flower serialises it (protobuf ``RecordDict``)."""
    return int(recorddict_to_proto(content).ByteSize())
