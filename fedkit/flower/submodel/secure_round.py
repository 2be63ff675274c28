"""The secure round of the submodel task: private set union, randomized response, upload.

Two secure-aggregation instances, each the four stages of
:func:`fedkit.privacy.secagg.run_stages` over the round's one
:class:`~fedkit.flower.secagg.exchange.Exchange` (eight round trips; Niu et al., MobiCom
2020, §5; the flow with sizes is in ``docs/submodel.md``):

* **private set union** (round id ``2r``): each client masks a random-valued index vector or
  Bloom filter of its real set S (:func:`psu_encoding`); the server decodes the union U from
  the exact ring sum.
* **upload** (round id ``2r + 1``, :class:`~fedkit.privacy.submodel.SubmodelSecAggServer`,
  row space = U): advertise-keys carries U down and each client's perturbed set S'' (double
  randomized response) up; share-keys carries the rows of S''_u (and, with ``downloaded``
  negatives, their loss weights) down; masked-input returns the masked row updates, 0/1
  counts and dense update; unmask as SecAgg, plus the seeds of the row masks of the rows
  whose crowd met ``submodel_min_row_holders`` (rows of smaller crowds are withheld: not
  updated this round, counted in the round log). The upload's cohort is the union's
  survivors.

Below the threshold at any stage the round aborts (:attr:`SecureRoundResult.aborted` names
why) and the caller keeps the model.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
from flwr.app import Message, RecordDict

from fedkit.config import RunConfig
from fedkit.flower.secagg.exchange import Exchange, FlowerStages, StageHooks
from fedkit.flower.secagg.records import content_bytes
from fedkit.flower.secagg.workflow import SecureAggregationSettings
from fedkit.flower.submodel.records import (
    NEGATIVE_WEIGHTS,
    PSU_PHASES,
    TRAIN_TYPE,
    UPLOAD_PHASES,
    arrays,
)
from fedkit.privacy.graph import neighbourhood_size
from fedkit.privacy.secagg import SecAggAbort, SecAggServer, Stage, run_stages
from fedkit.privacy.submodel import (
    SubmodelSecAggConfig,
    SubmodelSecAggResult,
    SubmodelSecAggServer,
    decode_submodel_message,
    encode_row_set,
)
from fedkit.submodel import (
    UnionFrequency,
    bloom_size,
    decode_index_vector,
    decode_union,
)

__all__ = ["SecureRoundResult", "psu_encoding", "run_secure_round"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SecureRoundResult:
    """What one secure round produced (sums None when aborted).

    Attributes:
        row_sums, row_counts, dense_sum, total_weight: The unmasked sums
            (:class:`~fedkit.privacy.submodel.SubmodelSecAggResult`).
        survivors: Clients whose update is in the sums.
        reporters: Clients whose perturbed set S'' the server received.
        perturbed_sizes: |S''_u| per reporter.
        submodel_bytes: Mean serialised size of the downloaded submodel alone (rows of
            S''_u and the dense part, without the protocol message it travels with).
        union_size: |U| (0 if the PSU aborted).
        rows_withheld: Rows some survivor held that the floor withheld entirely this round.
        row_slots_withheld: Survivor blocks (one client's update of one row) withheld.
        min_row_holders: The floor F the upload ran with (the configured one, capped at
            the neighbourhood size).
        psu_encoding: ``(kind, length, hashes)`` of the PSU vector.
        seconds: Wall time per part: psu, report, download, train, secagg.
        client_train_seconds: Training time each surviving client reported.
        aborted: Why the round aborted, or None.
    """

    row_sums: np.ndarray | None
    row_counts: np.ndarray | None
    dense_sum: np.ndarray | None
    total_weight: float
    survivors: tuple[int, ...]
    reporters: tuple[int, ...]
    perturbed_sizes: dict[int, int]
    submodel_bytes: float
    union_size: int
    psu_encoding: tuple[str, int, int]
    seconds: dict[str, float]
    client_train_seconds: list[float]
    aborted: str | None
    rows_withheld: int = 0
    row_slots_withheld: int = 0
    min_row_holders: int = 0


def psu_encoding(cfg: RunConfig, num_items: int) -> tuple[str, int, int]:
    """``(kind, length, hashes)``: the index vector, or a Bloom filter sized for
    ``submodel_union_bound`` (0: the vocabulary) at ``submodel_bloom_fpr``; ``auto`` picks the
    shorter (Niu et al., MobiCom 2020, §5.1: m = -N ln p / (ln 2)^2)."""
    bound = min(cfg.submodel_union_bound or num_items, num_items)
    bits, hashes = bloom_size(bound, cfg.submodel_bloom_fpr)
    if cfg.submodel_psu == "index" or (cfg.submodel_psu == "auto" and num_items <= bits):
        return "index", num_items, 0
    return "bloom", bits, hashes


@dataclasses.dataclass
class _RoundLog:
    """What one secure round records as it goes (the parts of :class:`SecureRoundResult`
    that are known before or without the sums)."""

    encoding: tuple[str, int, int]
    union_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    perturbed_sizes: dict[int, int] = dataclasses.field(default_factory=dict)
    submodel_bytes: list[int] = dataclasses.field(default_factory=list)
    client_train_seconds: list[float] = dataclasses.field(default_factory=list)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    min_row_holders: int = 0

    def result(self, sums: SubmodelSecAggResult | None, aborted: str | None = None
               ) -> SecureRoundResult:
        return SecureRoundResult(
            row_sums=None if sums is None else sums.row_sums,
            row_counts=None if sums is None else sums.row_counts,
            dense_sum=None if sums is None else sums.dense_sum,
            total_weight=0.0 if sums is None else sums.total_weight,
            survivors=() if sums is None else sums.survivors,
            reporters=tuple(sorted(self.perturbed_sizes)),
            perturbed_sizes=dict(self.perturbed_sizes),
            submodel_bytes=float(np.mean(self.submodel_bytes)) if self.submodel_bytes else 0.0,
            union_size=int(self.union_ids.size), psu_encoding=self.encoding,
            seconds=dict(self.seconds), client_train_seconds=list(self.client_train_seconds),
            aborted=aborted, rows_withheld=0 if sums is None else sums.rows_withheld,
            row_slots_withheld=0 if sums is None else sums.row_slots_withheld,
            min_row_holders=self.min_row_holders)


def run_secure_round(ex: Exchange, cfg: RunConfig, items: np.ndarray,
                     dense: dict[str, np.ndarray], server_round: int, run_id: int = 0,
                     union_frequency: UnionFrequency | None = None) -> SecureRoundResult:
    """Run the private set union and the upload with the clients of ``ex`` (module
    docstring).

    ``union_frequency``, when given, counts the decoded union; with ``downloaded`` negatives
    and a non-zero ``submodel_negative_weight_cap`` each client's download then carries the
    loss weights of its rows as negatives (``NEGATIVE_WEIGHTS``, float16).
    """
    settings = SecureAggregationSettings.from_run_config(cfg)
    num_items = items.shape[0]
    log = _RoundLog(psu_encoding(cfg, num_items))
    try:
        start = time.perf_counter()
        cohort = _psu(ex, settings, log, num_items, server_round, run_id)
        log.seconds["psu"] = time.perf_counter() - start
        if union_frequency is not None:
            union_frequency.observe(log.union_ids)
        sums = _upload(ex, cfg, settings, cohort, items, dense, server_round, run_id, log,
                       union_frequency)
    except SecAggAbort as exc:
        reason = f"secure round aborted: {exc}"
        logger.error("submodel round %s: %s; the model is unchanged", server_round, reason)
        return log.result(None, reason)
    return log.result(_to_items(sums, log.union_ids, num_items))


def _to_items(result: SubmodelSecAggResult, union: np.ndarray, num_items: int
              ) -> SubmodelSecAggResult:
    """The upload's sums over union positions scattered to item ids (other rows: zero)."""
    row_sums = np.zeros((num_items, result.row_sums.shape[1]))
    row_counts = np.zeros(num_items, dtype=np.int64)
    row_sums[union] = result.row_sums[: union.size]
    row_counts[union] = result.row_counts[: union.size]
    holders, withheld = np.zeros((2, num_items), dtype=np.int64)
    holders[union] = result.row_holders[: union.size]
    withheld[union] = result.withheld_holders[: union.size]
    return dataclasses.replace(result, row_sums=row_sums, row_counts=row_counts,
                               row_holders=holders, withheld_holders=withheld)


# the parts of the upload timed in results.json, and the stage of each
_UPLOAD_PARTS = {"report": Stage.ADVERTISE_KEYS, "download": Stage.SHARE_KEYS,
                 "train": Stage.MASKED_INPUT, "secagg": Stage.UNMASK}


def _labels(phases) -> dict[Stage, str]:
    return {stage: phase.value for stage, phase in phases.items()}


def _psu(ex: Exchange, settings: SecureAggregationSettings, log: _RoundLog, num_items: int,
         server_round: int, run_id: int) -> list[int]:
    """The union of the real sets (into ``log.union_ids``); return the upload's cohort."""
    cohort = ex.alive(ex.nodes)
    if len(cohort) < 2:
        raise SecAggAbort(f"the private set union needs at least 2 clients, {len(cohort)} left")
    kind, length, hashes = log.encoding
    config = settings.protocol_config(len(cohort), length, round_id=2 * server_round,
                                      run_id=run_id, weighted=False)
    encoding = {"psu-encoding": kind, "psu-length": length, "psu-hashes": hashes}
    hooks = StageHooks(fields=lambda stage, cid: encoding if stage is Stage.MASKED_INPUT
                       else {})
    transport = FlowerStages(ex, config, phases=_labels(PSU_PHASES), hooks=hooks,
                             message_type=TRAIN_TYPE)
    result = run_stages(SecAggServer(config, client_ids=cohort), cohort, transport).result
    summed = result.ring_sum[:-1]
    if kind == "index":
        log.union_ids = decode_index_vector(summed)
    else:
        log.union_ids = decode_union(summed, np.arange(num_items), hashes)
    logger.info("submodel round %s: union of %s clients has %s rows (%s encoding)",
                server_round, len(result.survivors), log.union_ids.size, kind)
    return [c for c in result.survivors if c not in ex.failed]


def _upload(ex: Exchange, cfg: RunConfig, settings: SecureAggregationSettings,
            cohort: list[int], items: np.ndarray, dense: dict[str, np.ndarray],
            server_round: int, run_id: int, log: _RoundLog,
            union_frequency: UnionFrequency | None) -> SubmodelSecAggResult:
    """Report S'', download, train, submodel-aware secure aggregation."""
    cap = cfg.submodel_negative_weight_cap if cfg.submodel_negatives == "downloaded" else 0.0
    weigh = union_frequency is not None and cap > 0
    if len(cohort) < 2:
        raise SecAggAbort(f"the upload needs at least 2 clients, {len(cohort)} left after the "
                          "private set union")
    dense_length = sum(int(np.asarray(v).size) for v in dense.values())
    base = settings.protocol_config(len(cohort), dense_length, round_id=2 * server_round + 1,
                                    run_id=run_id, weighted=True)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init}
    union_ids = log.union_ids
    # a crowd is counted within one neighbourhood: a larger floor could never be met
    log.min_row_holders = min(cfg.submodel_min_row_holders,
                              neighbourhood_size(len(cohort), base.num_neighbours) + 1)
    config = SubmodelSecAggConfig(**fields, num_rows=max(1, union_ids.size),
                                  row_width=items.shape[1],
                                  min_row_holders=log.min_row_holders)
    server = SubmodelSecAggServer(config, client_ids=cohort)
    union = encode_row_set(union_ids)

    def download(stage: Stage, cid: int) -> dict:
        if stage is not Stage.SHARE_KEYS:
            return {}
        ids = union_ids[server.row_set(cid)]  # the upload's row i is union item U[i]
        extra = {NEGATIVE_WEIGHTS: union_frequency.negative_weights(ids, cap).astype(
            np.float16)} if weigh else {}
        submodel = arrays(rows=items[ids], **extra, **dense)
        log.submodel_bytes.append(content_bytes(RecordDict({"submodel": submodel})))
        return {"submodel": submodel}

    def train_seconds(stage: Stage, cid: int, reply: Message) -> bool:
        metrics = reply.content.metric_records.get("metrics", {})
        if stage is Stage.MASKED_INPUT and "train-seconds" in metrics:
            log.client_train_seconds.append(float(metrics["train-seconds"]))
        return True

    hooks = StageHooks(fields=lambda stage, cid: {"union": union}
                       if stage is Stage.ADVERTISE_KEYS else {},
                       records=download, on_reply=train_seconds)
    transport = FlowerStages(ex, config, phases=_labels(UPLOAD_PHASES), hooks=hooks,
                             message_type=TRAIN_TYPE)
    run = None
    try:
        run = run_stages(server, cohort, transport, decode_fn=decode_submodel_message)
    finally:
        # a client is charged privacy for every S'' the server received, abort or not
        log.perturbed_sizes.update({cid: int(server.row_set(cid).size)
                                    for cid in server.reporters})
        server_seconds = {} if run is None else run.server_seconds
        for part, stage in _UPLOAD_PARTS.items():
            log.seconds[part] = (transport.seconds.get(UPLOAD_PHASES[stage].value, 0.0)
                                 + server_seconds.get(stage, 0.0))
    return run.result
