"""The client side of the submodel task: handlers of fedkit's Message-API ClientApp.

:func:`submodel_train` answers every ``train.submodel`` message by its phase
(:class:`~fedkit.flower.submodel.records.Phase`; the flow is in ``docs/submodel.md``): the plain
phases train on the received table or rows (or report S in clear, baseline only); the secure
phases are the stages of the private set union (on a random-valued index vector or Bloom
filter of S) and of the submodel upload (advertise keys with S'' from double randomized
response, keep the downloaded rows of S'', train on S ∩ S'' and mask, unmask), each answered
through :func:`~fedkit.flower.secagg.client_state.client_stage`.
:func:`submodel_evaluate` replies this client's AUC and HR@10 on its held-out items.

The node holds the upload to its own floor on a row's crowd, node-config key
:data:`ROW_FLOOR_KEY` (``secagg-min-row-holders``, default 2): it refuses an upload whose
``min_row_holders`` is lower, so the server cannot turn off the rule that rows leave the
protocol only in crowds (``docs/submodel.md``, "Rows released only in crowds").

What never leaves the node, kept in ``context.state``: the user vector, the permanent RR memo
(across rounds), protocol keys between stages and the downloaded rows until training.
Randomized response and the PSU's random values draw from OS entropy (``secrets``): the
server knows the run's seed, so seeded coins would reveal S.
"""

from __future__ import annotations

import secrets
import time

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict

from fedkit.config import RunConfig
from fedkit.flower.apps.task import client_id_of, node_run_config
from fedkit.flower.secagg.client_state import client_stage, forget_protocol_state
from fedkit.flower.secagg.records import EXCHANGE_RECORD, reply_record
from fedkit.flower.submodel.records import (
    NEGATIVE_WEIGHTS,
    PSU_PHASES,
    UPLOAD_PHASES,
    Phase,
    arrays,
    numpy_arrays,
    read_phase,
)
from fedkit.flower.submodel.task import load_rec_data, local_update, real_set
from fedkit.models.recommender import init_user_vector
from fedkit.privacy.secagg import SecAggConfigError, SecAggProtocolError, Stage
from fedkit.privacy.submodel import (
    DEFAULT_MIN_ROW_HOLDERS,
    SubmodelSecAggClient,
    SubmodelSecAggConfig,
    decode_row_set,
    decode_submodel_message,
)
from fedkit.submodel import PRESETS, PermanentMemo, index_vector, perturb, random_valued_filter
from fedkit.submodel import succinct_set as succinct
from fedkit.training.recsys import auc_hr

__all__ = ["MEMO_KEY", "ROW_FLOOR_KEY", "SUBMODEL_KEY", "USER_KEY", "node_row_floor",
           "psu_vector", "submodel_evaluate", "submodel_train"]

ROW_FLOOR_KEY = "secagg-min-row-holders"
USER_KEY = "fedkit.submodel.user"
MEMO_KEY = "fedkit.submodel.memo"
SUBMODEL_KEY = "fedkit.submodel.download"
_STAGE_OF = {**{phase: stage for stage, phase in PSU_PHASES.items()},
             **{phase: stage for stage, phase in UPLOAD_PHASES.items()}}


def node_row_floor(node_config) -> int:
    """This node's own floor on a row's crowd: ``secagg-min-row-holders``, default 2.

    Raises:
        SecAggConfigError: A value that is not an integer >= 1 (named).
    """
    raw = node_config.get(ROW_FLOOR_KEY, DEFAULT_MIN_ROW_HOLDERS)
    try:
        if isinstance(raw, bool) or float(raw) != int(raw) or int(raw) < 1:
            raise ValueError("not an integer >= 1")
    except (TypeError, ValueError) as exc:
        raise SecAggConfigError(f"node config {ROW_FLOOR_KEY} = {raw!r} is invalid ({exc}); "
                                "fix the node's --node-config") from exc
    return int(raw)


def _os_rng() -> np.random.Generator:
    return np.random.default_rng(secrets.randbits(128))


def _user_vector(context: Context, cfg: RunConfig, client_id: int) -> np.ndarray:
    record = context.state.array_records.get(USER_KEY)
    if record is None:
        return init_user_vector(cfg.embedding_dim, cfg.seed, client_id)
    return record["vector"].numpy()


def _memo(context: Context) -> PermanentMemo:
    record = context.state.array_records.get(MEMO_KEY)
    return PermanentMemo() if record is None else PermanentMemo.from_state_dict(
        numpy_arrays(record))


def _forget(context: Context, *keys: str) -> None:
    for key in keys:
        if key in context.state:
            del context.state[key]


def _dense(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"w": values["w"], "c": values["c"]}


def _reply(msg: Message, phase: Phase, payload: bytes = b"", metrics: dict | None = None,
           **records) -> Message:
    content = RecordDict({EXCHANGE_RECORD: reply_record(phase.value, payload), **records})
    if metrics:
        content["metrics"] = MetricRecord(metrics)
    return Message(content, reply_to=msg)


def submodel_train(msg: Message, context: Context) -> Message:
    """Answer one ``train.submodel`` message (module docstring); protocol state on failure
    is dropped, so a later round starts clean."""
    cfg = node_run_config(context)
    client_id = client_id_of(context, cfg.num_clients)
    phase, record = read_phase(msg)
    try:
        return _HANDLERS[phase](msg, context, cfg, client_id, record)
    except Exception:
        forget_protocol_state(context)
        _forget(context, SUBMODEL_KEY)
        raise


def _train_reply(msg, context, cfg, client_id, record, phase: Phase, ids, rows, dense,
                 lr_round: int) -> Message:
    data = load_rec_data(cfg)
    start = time.perf_counter()
    update = local_update(cfg, data, client_id, lr_round, ids, rows, dense,
                          _user_vector(context, cfg, client_id))
    seconds = time.perf_counter() - start
    context.state[USER_KEY] = arrays(vector=update.user_vector)
    metrics = {"num-examples": update.num_samples, "train-seconds": seconds}
    if update.num_samples:
        metrics["train-loss"] = update.mean_loss
    out = arrays(ids=np.asarray(ids, np.int64), rows=update.row_values,
                 counts=update.row_counts, dense=update.dense)
    return _reply(msg, phase, metrics=metrics, update=out)


def _full_train(msg, context, cfg, client_id, record) -> Message:
    model = numpy_arrays(msg.content["model"])
    ids = np.arange(model["items"].shape[0])
    return _train_reply(msg, context, cfg, client_id, record, Phase.FULL_TRAIN, ids,
                        model["items"], _dense(model), int(record["server-round"]))


def _plain_report(msg, context, cfg, client_id, record) -> Message:
    real = real_set(cfg, load_rec_data(cfg), client_id)
    return _reply(msg, Phase.PLAIN_REPORT, **{"index-set": arrays(ids=real)})


def _plain_train(msg, context, cfg, client_id, record) -> Message:
    sub = numpy_arrays(msg.content["submodel"])
    return _train_reply(msg, context, cfg, client_id, record, Phase.PLAIN_TRAIN, sub["ids"],
                        sub["rows"], _dense(sub), int(record["server-round"]))


def psu_vector(real: np.ndarray, record: ConfigRecord, rng: np.random.Generator) -> np.ndarray:
    """The PSU ring input: the encoding named in ``record`` of the real set, then a 1.

    ``psu-encoding`` = ``index`` (length ``num_items``) or ``bloom`` (``psu-bits`` positions,
    ``psu-hashes`` hashes); the trailing 1 makes the sum's last element count contributors.
    """
    kind = record["psu-encoding"]
    if kind == "index":
        encoded = index_vector(real, int(record["psu-length"]), rng)
    elif kind == "bloom":
        encoded = random_valued_filter(real, int(record["psu-length"]),
                                       int(record["psu-hashes"]), rng)
    else:
        raise SecAggProtocolError(f"psu-encoding = {kind!r}, expected 'index' or 'bloom'")
    return np.concatenate([encoded, np.ones(1, np.uint32)])


def _psu(msg, context, cfg, client_id, record) -> Message:
    """A stage of the private set union (plain SecAgg on the ring input of S)."""
    phase = Phase(record["phase"])

    def masked(client, shares):
        vector = psu_vector(real_set(cfg, load_rec_data(cfg), client_id), record, _os_rng())
        return client.masked_ring_input(shares, vector)

    return _reply(msg, phase, client_stage(context, _STAGE_OF[phase], record, masked_fn=masked))


def _upload_stage(context, stage: Stage, record, **hooks) -> bytes:
    return client_stage(context, stage, record, cls=SubmodelSecAggClient,
                        decode_fn=decode_submodel_message, **hooks)


def _report(msg, context, cfg, client_id, record) -> Message:
    """Advertise the upload's keys with S'' from double randomized response over U."""
    union = decode_row_set(record["union"], "the union U")

    def open_upload(config: SubmodelSecAggConfig, protocol_id: int) -> SubmodelSecAggClient:
        if union.size > config.num_rows:
            raise SecAggProtocolError(f"client {client_id}: the union has {union.size} rows "
                                      f"but the upload's row space only {config.num_rows}")
        real = real_set(cfg, load_rec_data(cfg), client_id)
        perturbed, memo = perturb(real, union, _memo(context), PRESETS[cfg.submodel_preset],
                                  _os_rng())
        context.state[MEMO_KEY] = arrays(**memo.state_dict())
        context.state[SUBMODEL_KEY] = arrays(ids=np.asarray(perturbed, np.int64))
        # the upload's row i is union item U[i]; S'' is a subset of U
        return SubmodelSecAggClient(config, protocol_id, np.searchsorted(union, perturbed),
                                    min_row_holders=node_row_floor(context.node_config))

    payload = _upload_stage(context, Stage.ADVERTISE_KEYS, record, open_fn=open_upload)
    return _reply(msg, Phase.REPORT, payload)


def _download(msg, context, cfg, client_id, record) -> Message:
    """Keep the rows of S'' (they come without ids, in the order of S'') and share keys."""
    stored = context.state.array_records.get(SUBMODEL_KEY)
    if stored is None:
        raise SecAggProtocolError(f"client {client_id}: download arrived but it holds no "
                                  "perturbed set (it missed the report phase)")
    ids = numpy_arrays(stored)["ids"]
    sub = numpy_arrays(msg.content["submodel"])
    if sub["rows"].ndim != 2 or sub["rows"].shape[0] != ids.size:
        raise SecAggProtocolError(f"client {client_id}: downloaded {sub['rows'].shape} rows, "
                                  f"expected one per id of its perturbed set ({ids.size})")
    weights = sub.get(NEGATIVE_WEIGHTS)
    if weights is not None and (weights.shape != (ids.size,) or not np.all(
            np.isfinite(weights) & (weights >= 0))):
        raise SecAggProtocolError(f"client {client_id}: downloaded negative weights of shape "
                                  f"{weights.shape}, expected {ids.size} finite weights >= 0")
    payload = _upload_stage(context, Stage.SHARE_KEYS, record)
    context.state[SUBMODEL_KEY] = arrays(ids=ids, **sub)
    return _reply(msg, Phase.DOWNLOAD, payload)


def _train_masked(msg, context, cfg, client_id, record) -> Message:
    """Train on S ∩ S'' from the downloaded rows; mask rows, counts and dense update."""
    stored = context.state.array_records.get(SUBMODEL_KEY)
    if stored is None:
        raise SecAggProtocolError(f"client {client_id}: no downloaded submodel to train")
    sub = numpy_arrays(stored)
    data = load_rec_data(cfg)
    seconds = []

    def masked(client, shares):
        start = time.perf_counter()
        update = local_update(cfg, data, client_id, int(record["server-round"]), sub["ids"],
                              sub["rows"], _dense(sub), _user_vector(context, cfg, client_id),
                              trainable=succinct(real_set(cfg, data, client_id), sub["ids"]),
                              row_weights=sub.get(NEGATIVE_WEIGHTS))
        seconds.append(time.perf_counter() - start)
        out = client.masked_input(shares, update.dense, float(update.num_samples),
                                  row_values=update.row_values, row_counts=update.row_counts)
        context.state[USER_KEY] = arrays(vector=update.user_vector)
        return out

    payload = _upload_stage(context, Stage.MASKED_INPUT, record, masked_fn=masked)
    _forget(context, SUBMODEL_KEY)
    return _reply(msg, Phase.TRAIN, payload, metrics={"train-seconds": seconds[0]})


def _unmask(msg, context, cfg, client_id, record) -> Message:
    return _reply(msg, Phase.UNMASK, _upload_stage(context, Stage.UNMASK, record))


_HANDLERS = {
    Phase.FULL_TRAIN: _full_train,
    Phase.PLAIN_REPORT: _plain_report,
    Phase.PLAIN_TRAIN: _plain_train,
    **dict.fromkeys(PSU_PHASES.values(), _psu),
    Phase.REPORT: _report,
    Phase.DOWNLOAD: _download,
    Phase.TRAIN: _train_masked,
    Phase.UNMASK: _unmask,
}


def submodel_evaluate(msg: Message, context: Context) -> Message:
    """Reply this client's AUC and HR@10 of the received global model on its test items."""
    cfg = node_run_config(context)
    client_id = client_id_of(context, cfg.num_clients)
    data = load_rec_data(cfg)
    model = numpy_arrays(msg.content["model"])
    user = _user_vector(context, cfg, client_id)[None, :]
    auc, hr = auc_hr(user, model["items"], _dense(model), [data.seen(client_id)],
                     [data.test[client_id]])
    return Message(RecordDict({"metrics": MetricRecord({"auc": auc, "hr10": hr})}),
                   reply_to=msg)
