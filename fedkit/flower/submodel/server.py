"""The server of the submodel task: the round loop over ``grid.send_and_receive``.

``run_submodel_server(grid, cfg)`` trains the recommender of
:mod:`fedkit.flower.submodel.task` for ``rounds`` rounds. Each round it learns the online
clients' stable ids (:class:`~fedkit.algorithms.directory.ClientDirectory`), samples
``clients_per_round`` of them (:func:`~fedkit.algorithms.sampling.sample_uniform`, seeded by
``(seed, round)``) and runs the round of ``submodel_mode``:

* ``full`` -- one exchange: the whole table and dense part down, the full update up;
  FedAvg by sample count over every parameter (baseline (a) of the issue);
* ``plain`` -- two exchanges: the real index set S up in clear; its rows down and the row
  updates, 0/1 counts and dense update up; rows averaged over the clients that used them
  (:func:`~fedkit.privacy.submodel.row_average`), dense by sample count (baseline (b));
* ``secure`` -- eight exchanges (:mod:`fedkit.flower.submodel.secure_round`): the same averaging
  rule on securely aggregated sums, over perturbed sets S'' from double randomized response.

Evaluation (every ``eval_every`` rounds and after the last): the user vectors live on the
clients, so the server sends the global table and dense part to every online client, which
replies its own AUC and HR@10 on its held-out latest items
(:func:`~fedkit.flower.submodel.client.submodel_evaluate`); the round's figures are the means
over the clients that answered (``auc_hr`` averages over users the same way).

``results.json`` holds per round: bytes down/up per client (means over the selected clients,
as Flower serialises the contents), round trips, seconds per phase, the clients whose update
is in the model, rows updated, union and perturbed-set sizes, AUC and HR@10 on evaluation
rounds, an abort reason if any; and ``submodel``: the mode, the preset's p1..p4 and epsilons
(``null`` with ``epsilon_unbounded: true`` when infinite, so the file is strict JSON) and, in
secure mode, each client's privacy ledger entry (:class:`~fedkit.submodel.ledger.
PrivacyLedger`: a client is charged a round when the server received its S'').
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
from flwr.app import RecordDict
from flwr.serverapp import Grid

from fedkit.algorithms.directory import ClientDirectory
from fedkit.algorithms.sampling import sample_uniform
from fedkit.bench import RunLog
from fedkit.config import RunConfig
from fedkit.flower.secagg.exchange import Exchange
from fedkit.flower.secagg.records import EXCHANGE_RECORD, content_bytes, request_record
from fedkit.flower.submodel.records import (
    EVAL_TYPE,
    TRAIN_TYPE,
    Phase,
    arrays,
    numpy_arrays,
    read_phase,
)
from fedkit.flower.submodel.secure_round import run_secure_round
from fedkit.flower.submodel.task import DENSE_KEYS, initial_model, load_rec_data
from fedkit.privacy.submodel import row_average
from fedkit.submodel import (
    PRESETS,
    PrivacyLedger,
    UnionFrequency,
    epsilon_long_term,
    epsilon_round,
)
from fedkit.submodel.aggregate import row_sums, weighted_sum

__all__ = ["SubmodelLog", "run_submodel_server"]

logger = logging.getLogger(__name__)


class SubmodelLog(RunLog):
    """:class:`~fedkit.bench.RunLog` plus the ``submodel`` section and AUC summary figures."""

    submodel: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = super().to_dict()
        doc["submodel"] = self.submodel
        evaluated = [r for r in self.rounds if r.get("test_auc") is not None]
        kept = [r for r in self.rounds if not r.get("aborted")]
        doc["summary"].update({
            "final_auc": evaluated[-1]["test_auc"] if evaluated else None,
            "final_hr10": evaluated[-1]["test_hr10"] if evaluated else None,
            "best_auc": max((r["test_auc"] for r in evaluated), default=None),
            "mean_download_bytes": _mean([r["download_bytes"] for r in kept]),
            "mean_upload_bytes": _mean([r["upload_bytes"] for r in kept]),
            "aborted_rounds": [r["round"] for r in self.rounds if r.get("aborted")],
        })
        return doc


def _finite(epsilon: float) -> float | None:
    """An epsilon for JSON: None (``null``) when infinite -- a preset without privacy such
    as ``cpp1`` -- so strict parsers accept the file; ``epsilon_unbounded`` flags it."""
    return float(epsilon) if np.isfinite(epsilon) else None


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


class _Model:
    """The global model: item table and dense part (float32, as sent)."""

    def __init__(self, items: np.ndarray, dense: dict[str, np.ndarray]) -> None:
        self.items, self.dense = items, dense

    def apply(self, rows_delta: np.ndarray, dense_delta: np.ndarray | None) -> None:
        self.items = (self.items + rows_delta).astype(np.float32)
        if dense_delta is None:
            return
        new, offset = {}, 0
        for key in DENSE_KEYS:
            size = self.dense[key].size
            part = dense_delta[offset:offset + size].reshape(self.dense[key].shape)
            new[key] = (self.dense[key] + part).astype(np.float32)
            offset += size
        self.dense = new

    def record(self) -> Any:
        return arrays(items=self.items, **self.dense)


def _request(phase: Phase, r: int, cid: int, **records) -> RecordDict:
    return RecordDict({EXCHANGE_RECORD: request_record(phase.value, r, cid), **records})


@dataclasses.dataclass(frozen=True)
class _ClientUpdate:
    """One client's validated plaintext update (full and plain modes)."""

    ids: np.ndarray  # rows it updated
    rows: np.ndarray  # [len(ids), width] row updates
    counts: np.ndarray  # [len(ids)] 0/1: did it truly use the row
    dense: np.ndarray  # the dense part's update, flat
    weight: float  # its sample count
    train_loss: float | None


def _update_of(ex: Exchange, phase: Phase, cid: int, reply, width: int, num_rows: int,
               dense_size: int, expected_ids: np.ndarray | None) -> _ClientUpdate | None:
    """The validated update of one reply, or None (the client is dropped, with the reason)."""
    try:
        read_phase(reply, phase)
        update = numpy_arrays(reply.content["update"])
        metrics = reply.content["metrics"]
        weight = float(metrics["num-examples"])
        ids = update["ids"].astype(np.int64)
        if expected_ids is not None and not np.array_equal(ids, expected_ids):
            raise ValueError(f"update covers {ids.size} rows, expected the {expected_ids.size} "
                             "rows it downloaded")
        if update["rows"].shape != (ids.size, width) or update["dense"].shape != (dense_size,):
            raise ValueError(f"update has rows {update['rows'].shape} and dense "
                             f"{update['dense'].shape}, expected ({ids.size}, {width}) and "
                             f"({dense_size},)")
        if not (np.all(np.isfinite(update["rows"])) and np.all(np.isfinite(update["dense"]))
                and 0 <= weight):
            raise ValueError("update holds non-finite values or a negative weight")
        if ids.size and (ids.min() < 0 or ids.max() >= num_rows):
            raise ValueError(f"row ids outside [0, {num_rows})")
        counts = update["counts"].astype(np.int64)
    except (KeyError, TypeError, ValueError) as exc:  # a malformed reply drops the client
        ex.fail(cid, phase, f"reply rejected: {type(exc).__name__}: {exc}; the round "
                            "continues without it")
        return None
    loss = float(metrics["train-loss"]) if "train-loss" in metrics else None
    return _ClientUpdate(ids, update["rows"], counts, update["dense"], weight, loss)


def _full_round(ex: Exchange, model: _Model, r: int) -> dict:
    record = model.record()
    replies = ex.send(Phase.FULL_TRAIN, {cid: _request(Phase.FULL_TRAIN, r, cid, model=record)
                                         for cid in ex.nodes}, TRAIN_TYPE)
    v, width = model.items.shape
    dense_size = sum(a.size for a in model.dense.values())
    updates = {cid: u for cid, rep in sorted(replies.items())
               if (u := _update_of(ex, Phase.FULL_TRAIN, cid, rep, width, v, dense_size,
                                   np.arange(v))) is not None}
    return _fedavg_outcome(model, updates)


def _losses(updates: dict[int, _ClientUpdate]) -> list[float]:
    return [u.train_loss for u in updates.values() if u.train_loss is not None]


def _fedavg_outcome(model: _Model, updates: dict[int, _ClientUpdate]) -> dict:
    start = time.perf_counter()
    weights = [u.weight for u in updates.values()]
    if not updates or sum(weights) <= 0:
        return {"aborted": "no client update with positive weight arrived", "contributors": []}
    rows, total = weighted_sum([u.rows for u in updates.values()], weights)
    dense, _ = weighted_sum([u.dense for u in updates.values()], weights)
    mean_rows = rows / total
    model.apply(mean_rows, dense / total)
    return {"contributors": sorted(updates), "average_seconds": time.perf_counter() - start,
            "rows_updated": int(np.count_nonzero(np.any(mean_rows != 0, axis=1))),
            "losses": _losses(updates)}


def _plain_round(ex: Exchange, model: _Model, r: int) -> dict:
    v, width = model.items.shape
    replies = ex.send(Phase.PLAIN_REPORT, {cid: _request(Phase.PLAIN_REPORT, r, cid)
                                           for cid in ex.nodes}, TRAIN_TYPE)
    sets = {}
    for cid, reply in sorted(replies.items()):
        ids = numpy_arrays(reply.content["index-set"])["ids"].astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= v or np.any(np.diff(ids) <= 0)):
            ex.fail(cid, Phase.PLAIN_REPORT, "index set is not sorted, distinct, in range")
            continue
        sets[cid] = ids
    contents = {cid: _request(Phase.PLAIN_TRAIN, r, cid, submodel=arrays(
        ids=ids, rows=model.items[ids], **model.dense)) for cid, ids in sets.items()}
    replies = ex.send(Phase.PLAIN_TRAIN, contents, TRAIN_TYPE)
    dense_size = sum(a.size for a in model.dense.values())
    updates = {cid: u for cid, rep in sorted(replies.items())
               if (u := _update_of(ex, Phase.PLAIN_TRAIN, cid, rep, width, v, dense_size,
                                   sets[cid])) is not None}
    weights = [u.weight for u in updates.values()]
    if not updates or sum(weights) <= 0:
        return {"aborted": "no client update with positive weight arrived", "contributors": []}
    start = time.perf_counter()
    sums, counts = row_sums(v, width, [(u.ids, u.rows, u.counts) for u in updates.values()])
    dense, total = weighted_sum([u.dense for u in updates.values()], weights)
    model.apply(row_average(sums, counts), dense / total)
    return {"contributors": sorted(updates), "average_seconds": time.perf_counter() - start,
            "rows_updated": int(np.count_nonzero(counts)), "losses": _losses(updates)}


def _secure_round(ex: Exchange, cfg: RunConfig, model: _Model, r: int, run_id: int,
                  union_frequency: UnionFrequency) -> dict:
    result = run_secure_round(ex, cfg, model.items, model.dense, r, run_id, union_frequency)
    out = {"contributors": list(result.survivors), "reporters": list(result.reporters),
           "union_size": result.union_size, "psu_encoding": list(result.psu_encoding),
           "perturbed_size_mean": _mean(list(result.perturbed_sizes.values())),
           "submodel_download_bytes": result.submodel_bytes,
           "phase_seconds": dict(result.seconds),
           "client_train_seconds": _mean(result.client_train_seconds)}
    if result.aborted is not None:
        out.update(aborted=result.aborted, contributors=[])
        return out
    start = time.perf_counter()
    dense = None if result.total_weight <= 0 else result.dense_sum / result.total_weight
    model.apply(row_average(result.row_sums, result.row_counts), dense)
    out["average_seconds"] = time.perf_counter() - start
    out["rows_updated"] = int(np.count_nonzero(result.row_counts))
    out.update(rows_withheld=result.rows_withheld, row_slots_withheld=result.row_slots_withheld,
               min_row_holders=result.min_row_holders)
    return out


def _evaluate(grid: Grid, model: _Model, online: dict[int, int], r: int,
              timeout: float | None) -> dict:
    ex = Exchange(grid, online, r, timeout, purpose="submodel evaluation")
    record = model.record()
    content = {cid: RecordDict({"model": record}) for cid in online}
    replies = ex.send(Phase.EVALUATE, content, message_type=EVAL_TYPE)
    metrics = [rep.content["metrics"] for rep in replies.values()
               if "metrics" in rep.content.metric_records]
    return {"test_auc": _mean([float(m["auc"]) for m in metrics]),
            "test_hr10": _mean([float(m["hr10"]) for m in metrics]),
            "num_evaluated": len(metrics),
            "eval_download_bytes": content_bytes(RecordDict({"model": record}))}


def run_submodel_server(grid: Grid, cfg: RunConfig, *, runtime: str = "flower"
                        ) -> tuple[SubmodelLog, dict[str, np.ndarray]]:
    """Run the submodel task on ``grid``; write ``results.json``; return the log and the final
    model (``{"items", "w", "c"}``)."""
    started = time.perf_counter()
    num_items = load_rec_data(cfg).num_items
    model = _Model(*initial_model(cfg, num_items))
    directory = ClientDirectory(cfg.num_clients)
    params = PRESETS[cfg.submodel_preset]
    ledger = PrivacyLedger(params)
    union_frequency = UnionFrequency(num_items)
    run_id = int(getattr(grid.run, "run_id", 0) or 0)
    log = SubmodelLog(cfg.to_dict(), runtime=runtime)
    for r in range(1, cfg.rounds + 1):
        start = time.perf_counter()
        online = directory.online(grid)
        chosen = sample_uniform(online, cfg.clients_per_round, seed=cfg.seed, server_round=r)
        ex = Exchange(grid, {c: online[c] for c in chosen}, r, cfg.round_timeout,
                      purpose="submodel")
        if cfg.submodel_mode == "full":
            out = _full_round(ex, model, r)
        elif cfg.submodel_mode == "plain":
            out = _plain_round(ex, model, r)
        else:
            out = _secure_round(ex, cfg, model, r, run_id, union_frequency)
            ledger = ledger.record(r, out["reporters"])
        if out.get("aborted"):
            logger.error("submodel round %s: %s; the model is unchanged", r, out["aborted"])
        down, up, down_by_phase, up_by_phase = ex.mean_bytes()
        phases = out.pop("phase_seconds", None) or dict(ex.seconds)
        phases["average"] = out.pop("average_seconds", 0.0)
        losses = out.pop("losses", [])
        record = {"round": r, "lr": cfg.lr_at(r), "selected": chosen,
                  "clients": out.pop("contributors"),
                  "dropped": {str(c): why for c, why in sorted(ex.failed.items())},
                  "num_replies": 0, "num_rejected": len(ex.failed),
                  "model_updated": not out.get("aborted"), "aborted": None,
                  "round_trips": ex.count, "download_bytes": down, "upload_bytes": up,
                  "download_bytes_by_phase": down_by_phase,
                  "upload_bytes_by_phase": up_by_phase,
                  "phase_seconds": phases, "train_loss": _mean(losses), **out}
        record["num_replies"] = len(record["clients"])
        if (cfg.eval_every and r % cfg.eval_every == 0) or r == cfg.rounds:
            record.update(_evaluate(grid, model, online, r, cfg.round_timeout))
        record["seconds"] = time.perf_counter() - start
        log.add_round(record)
        logger.info("submodel round %s (%s): %s clients, down %.0f B, up %.0f B, AUC %s", r,
                    cfg.submodel_mode, record["num_replies"], down, up,
                    record.get("test_auc"))
    eps = epsilon_round(params)
    log.submodel = {
        "mode": cfg.submodel_mode, "preset": cfg.submodel_preset,
        "params": {"p1": params.p1, "p2": params.p2, "p3": params.p3, "p4": params.p4},
        "epsilon_round": _finite(eps),
        "epsilon_long_term": _finite(epsilon_long_term(params)),
        "epsilon_unbounded": not np.isfinite(eps),
        "num_items": num_items,
        "privacy": None if cfg.submodel_mode != "secure" else [
            {"client_id": p.client_id, "rounds": list(p.rounds),
             "epsilon_round": _finite(p.epsilon_round),
             "epsilon_spent": _finite(p.epsilon_spent),
             "epsilon_long_term": _finite(p.epsilon_long_term)} for p in ledger.reports()],
    }
    path = log.write(cfg.results_dir)
    logger.info("submodel run %r finished in %.1f s; results in %s", cfg.name,
                time.perf_counter() - started, path)
    return log, {"items": model.items, **model.dense}
