"""The Flower messages of the submodel task: phases, arrays, types.

Every training message of the task has type :data:`TRAIN_TYPE` (``train.submodel``) and holds
fedkit's exchange record (:mod:`fedkit.flower.secagg.records`) with a :class:`Phase` as its
``phase``; the secure phases carry the two protocol instances (the private set union and the
submodel upload) exactly as a secure training round does, and the report phase adds ``union``
(U as :func:`~fedkit.privacy.submodel.encode_row_set` bytes). Arrays travel in ArrayRecords:
``model`` (the whole table and dense part), ``submodel`` (``ids`` (plain mode only: a secure
client knows its S''), ``rows``, ``w``, ``c``, and with downloaded negatives
:data:`NEGATIVE_WEIGHTS`), ``index-set`` (``ids``), ``update`` (``ids``, ``rows``, ``counts``,
``dense``). Replies add a MetricRecord ``metrics``. Evaluation uses :data:`EVAL_TYPE`
(``evaluate.submodel``). The message flow with sizes is in ``docs/submodel.md``.
"""

from __future__ import annotations

import enum

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message

from fedkit.flower.secagg import records
from fedkit.privacy.secagg import SecAggProtocolError, Stage

__all__ = [
    "EVAL_TYPE",
    "NEGATIVE_WEIGHTS",
    "PSU_PHASES",
    "TRAIN_TYPE",
    "UPLOAD_PHASES",
    "Phase",
    "arrays",
    "numpy_arrays",
    "read_phase",
]

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
    EVALUATE = "evaluate"


PSU_PHASES = {Stage.ADVERTISE_KEYS: Phase.PSU_KEYS, Stage.SHARE_KEYS: Phase.PSU_SHARES,
              Stage.MASKED_INPUT: Phase.PSU_INPUT, Stage.UNMASK: Phase.PSU_UNMASK}
"""The phase of each stage of the private set union."""
UPLOAD_PHASES = {Stage.ADVERTISE_KEYS: Phase.REPORT, Stage.SHARE_KEYS: Phase.DOWNLOAD,
                 Stage.MASKED_INPUT: Phase.TRAIN, Stage.UNMASK: Phase.UNMASK}
"""The phase of each stage of the submodel upload."""


def read_phase(msg: Message, expected: Phase | None = None) -> tuple[Phase, ConfigRecord]:
    """The phase and exchange record of a request or reply.

    Raises:
        SecAggProtocolError: No record, an unknown phase, or another phase than ``expected``.
    """
    label, record = records.read_phase(msg, None if expected is None else expected.value)
    try:
        return Phase(label), record
    except ValueError:
        raise SecAggProtocolError(f"unknown submodel phase {label!r}") from None


def arrays(**values: np.ndarray) -> ArrayRecord:
    """An ArrayRecord of numpy arrays (copies)."""
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in values.items()})


def numpy_arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
    """The numpy arrays of an ArrayRecord."""
    return {k: a.numpy() for k, a in record.items()}
