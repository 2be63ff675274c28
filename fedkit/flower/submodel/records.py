"""The Flower records of the submodel task: phases, protocol parameters, arrays, sizes.

Every training message of the task has type :data:`TRAIN_TYPE` (``train.submodel``) and holds
the ConfigRecord :data:`SUBMODEL_RECORD`: ``phase`` (a :class:`Phase`), ``server-round``,
``client-id`` (the stable id the client takes in the protocols), ``payload`` (a protocol
message in fedkit's secure-aggregation wire format, or empty) and, in the secure phases, the
round's :class:`~fedkit.privacy.secagg.SecAggConfig` (``SubmodelSecAggConfig`` for the
upload) as ``secagg-*`` fields; the report phase adds ``union`` (U as
:func:`~fedkit.privacy.submodel.encode_row_set` bytes). Arrays travel in
ArrayRecords: ``model`` (the whole table and dense part), ``submodel`` (``ids`` (plain mode
only: a secure client knows its S''), ``rows``, ``w``, ``c``), ``index-set`` (``ids``),
``update`` (``ids``, ``rows``, ``counts``, ``dense``). Replies carry the
same ConfigRecord with the phase and the client's protocol message, and a MetricRecord
``metrics``. Evaluation uses :data:`EVAL_TYPE` (``evaluate.submodel``).

Message sizes are measured as Flower serialises a content (:func:`content_bytes`).
"""

from __future__ import annotations

import dataclasses
import enum

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.common.serde import recorddict_to_proto

from fedkit.privacy.secagg import SecAggConfig, SecAggProtocolError
from fedkit.privacy.submodel import SubmodelSecAggConfig

__all__ = [
    "EVAL_TYPE",
    "NEGATIVE_WEIGHTS",
    "SUBMODEL_RECORD",
    "TRAIN_TYPE",
    "Phase",
    "arrays",
    "config_fields",
    "content_bytes",
    "numpy_arrays",
    "read_config",
    "read_phase",
    "reply_record",
    "request_record",
]

SUBMODEL_RECORD = "fedkit.submodel"
TRAIN_TYPE = "train.submodel"
EVAL_TYPE = "evaluate.submodel"
NEGATIVE_WEIGHTS = "negative-weights"
"""Array of the secure download: each row's loss weight as a ``downloaded`` negative."""


class Phase(enum.Enum):
    """One exchange of a round (docs/submodel.md, "Message flow")."""

    FULL_TRAIN = "full-train"
    PLAIN_REPORT = "plain-report"
    PLAIN_TRAIN = "plain-train"
    PSU_KEYS = "psu-advertise-keys"
    PSU_SHARES = "psu-share-keys"
    PSU_INPUT = "psu-masked-input"
    PSU_UNMASK = "psu-unmask"
    REPORT = "report-perturbed-set"  # union down; S'' up with the upload's keys
    DOWNLOAD = "download-submodel"  # rows of S'' down with the upload's key roster
    TRAIN = "train-masked-update"  # routed shares down; masked update up
    UNMASK = "unmask"


def config_fields(config: SecAggConfig) -> dict:
    """The init fields of a (submodel) SecAgg config as ``secagg-*`` record entries."""
    out = {}
    for f in dataclasses.fields(config):
        if not f.init:
            continue
        value = getattr(config, f.name)
        if f.name == "num_neighbours":
            value = 0 if value is None else value
        if f.name == "scale":
            value = float(config.resolved_scale)
        out[f"secagg-{f.name}"] = value
    return out


def read_config(record: ConfigRecord) -> SecAggConfig:
    """The config written by :func:`config_fields` (submodel config if it has ``num_rows``).

    Raises:
        SecAggProtocolError: A missing or invalid field.
    """
    try:
        values = {k[len("secagg-"):]: v for k, v in record.items() if k.startswith("secagg-")}
        values["num_neighbours"] = int(values["num_neighbours"]) or None
        cls = SubmodelSecAggConfig if "num_rows" in values else SecAggConfig
        return cls(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise SecAggProtocolError(f"malformed submodel protocol parameters: {exc}") from exc


def request_record(phase: Phase, server_round: int, client_id: int, payload: bytes = b"",
                   config: SecAggConfig | None = None, **extra) -> ConfigRecord:
    """The :data:`SUBMODEL_RECORD` of one request."""
    fields = {"phase": phase.value, "server-round": int(server_round),
              "client-id": int(client_id), "payload": bytes(payload), **extra}
    if config is not None:
        fields.update(config_fields(config))
    return ConfigRecord(fields)


def reply_record(phase: Phase, payload: bytes = b"") -> ConfigRecord:
    """The :data:`SUBMODEL_RECORD` of a client's reply."""
    return ConfigRecord({"phase": phase.value, "payload": bytes(payload)})


def read_phase(msg: Message, expected: Phase | None = None) -> tuple[Phase, ConfigRecord]:
    """The phase and record of a request or reply.

    Raises:
        SecAggProtocolError: No record, an unknown phase, or another phase than ``expected``.
    """
    record = msg.content.config_records.get(SUBMODEL_RECORD)
    if record is None:
        raise SecAggProtocolError(f"message has no {SUBMODEL_RECORD!r} record "
                                  f"(records: {sorted(msg.content.keys())})")
    try:
        phase = Phase(record.get("phase"))
    except ValueError:
        raise SecAggProtocolError(f"unknown submodel phase {record.get('phase')!r}") from None
    if expected is not None and phase is not expected:
        raise SecAggProtocolError(f"reply names phase {phase.value!r}, expected "
                                  f"{expected.value!r} (replayed or reordered message)")
    return phase, record


def arrays(**values: np.ndarray) -> ArrayRecord:
    """An ArrayRecord of numpy arrays (copies)."""
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in values.items()})


def numpy_arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    """The numpy arrays of an ArrayRecord."""
    return {k: a.numpy() for k, a in record.items()}


def content_bytes(content: RecordDict) -> int:
    """Bytes of ``content`` as Flower serialises it (protobuf ``RecordDict``)."""
    return int(recorddict_to_proto(content).ByteSize())
