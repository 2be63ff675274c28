"""The secure round of the submodel task over Flower messages: PSU, randomized response, SFSA.

Eight exchanges per round (reference/submodel.md §2; the flow with sizes is in
``docs/submodel.md``):

1-4. **Private set union** -- SecAgg's four stages (:class:`~fedkit.privacy.secagg.SecAggServer`)
     on each client's random-valued index vector or Bloom filter of its real set S
     (``masked_ring_input``); the server decodes the union U from the exact ring sum.
5.   **report** -- U goes down (compactly encoded, ``encode_row_set``) with the upload's
     protocol parameters; each client applies double randomized response with its memoised
     permanent answers and replies the upload's advertise-keys message, which carries S''
     (the report of S'' and stage 0 of the upload share one round trip).
6.   **download** -- the upload's keys broadcast (every roster key and the S'' of the
     client's graph neighbours, ``secagg_neighbours``) and the rows of S''_u plus the dense
     part go down together (stage 1 of the upload); the client keeps the rows. The rows
     travel without their ids: the client knows S''_u. With ``downloaded`` negatives the
     rows' loss weights as negatives come along (:mod:`fedkit.submodel.negatives`).
7.   **train** -- the routed shares go down; the client trains on S ∩ S'' and replies its
     masked row updates, 0/1 counts and dense update weighted by its sample count.
8.   **unmask** -- as SecAgg; the server removes the masks
     (:class:`~fedkit.privacy.submodel.SubmodelSecAggServer`).

The two protocol instances have their own fresh keys and are bound to round ids ``2r`` (PSU)
and ``2r + 1`` (upload). The upload's row space is the union: row ``i`` of the protocol is
item ``U[i]`` (``num_rows = |U|``), so a row-set bitmap costs one bit per union item, and the
server's ring table has |U| rows; the sums are scattered back to item ids at the end.
The upload's cohort is the PSU's survivors (their sets are in U).
Clients that fail are dropped with a logged reason; below the threshold at any stage the
round aborts (:class:`SecureRoundResult` ``aborted`` names why) and the caller keeps the
model.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

import numpy as np
from flwr.app import Message, RecordDict

from fedkit.config import RunConfig
from fedkit.flower.secagg.workflow import SecureAggregationSettings
from fedkit.flower.submodel.exchange import Exchanges
from fedkit.flower.submodel.records import (
    NEGATIVE_WEIGHTS,
    SUBMODEL_RECORD,
    Phase,
    arrays,
    content_bytes,
    read_phase,
    request_record,
)
from fedkit.privacy.secagg import SecAggAbort, SecAggError, SecAggServer, decode_message
from fedkit.privacy.submodel import (
    SubmodelSecAggConfig,
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


def psu_encoding(cfg: RunConfig, num_items: int) -> tuple[str, int, int]:
    """``(kind, length, hashes)``: the index vector, or a Bloom filter sized for
    ``submodel_union_bound`` (0: the vocabulary) at ``submodel_bloom_fpr``; ``auto`` picks the
    shorter (reference §5.1: m = -N ln p / (ln 2)^2)."""
    bound = min(cfg.submodel_union_bound or num_items, num_items)
    bits, hashes = bloom_size(bound, cfg.submodel_bloom_fpr)
    if cfg.submodel_psu == "index" or (cfg.submodel_psu == "auto" and num_items <= bits):
        return "index", num_items, 0
    return "bloom", bits, hashes


def _accept(ex: Exchanges, phase: Phase, server: SecAggServer, replies: Mapping[int, Message],
            decode: Callable[[bytes], object]) -> dict[int, object]:
    """Hand each reply's protocol message to ``server``; drop the invalid ones."""
    accepted = {}
    for cid, reply in sorted(replies.items()):
        try:
            _, record = read_phase(reply, phase)
            message = decode(record["payload"])
            if message.client_id != cid:
                raise SecAggError(f"protocol message names client {message.client_id}; one "
                                  "node cannot speak for another")
            server.receive(message)
            accepted[cid] = message
        except (SecAggError, KeyError) as exc:
            ex.fail(cid, phase, str(exc))
    return accepted


# The first request of each protocol instance carries its parameters; the client keeps them
# with its protocol state, so the later stages do not repeat them (~300 bytes a message).
_OPENING_PHASES = (Phase.PSU_KEYS, Phase.REPORT)


def _contents(ex: Exchanges, phase: Phase, ids, config, server_round: int,
              payload_fn: Callable[[int], bytes], **extra) -> dict[int, RecordDict]:
    config = config if phase in _OPENING_PHASES else None
    return {cid: RecordDict({SUBMODEL_RECORD: request_record(
        phase, server_round, cid, payload_fn(cid), config, **extra)})
        for cid in ex.alive(ids)}


def run_secure_round(ex: Exchanges, cfg: RunConfig, items: np.ndarray,
                     dense: dict[str, np.ndarray], server_round: int, run_id: int = 0,
                     union_frequency: UnionFrequency | None = None) -> SecureRoundResult:
    """Run the eight exchanges with the clients of ``ex`` (module docstring).

    ``union_frequency``, when given, counts the decoded union; with ``downloaded`` negatives
    and a non-zero ``submodel_negative_weight_cap`` each client's download then carries the
    loss weights of its rows as negatives (``NEGATIVE_WEIGHTS``, float16).
    """
    settings = SecureAggregationSettings.from_run_config(cfg)
    num_items = items.shape[0]
    encoding = psu_encoding(cfg, num_items)
    seconds: dict[str, float] = {}
    state: dict = {"union": 0, "reporters": {}, "train": [], "submodel": []}

    def outcome(result=None, aborted: str | None = None) -> SecureRoundResult:
        return SecureRoundResult(
            row_sums=None if result is None else result.row_sums,
            row_counts=None if result is None else result.row_counts,
            dense_sum=None if result is None else result.dense_sum,
            total_weight=0.0 if result is None else result.total_weight,
            survivors=() if result is None else result.survivors,
            reporters=tuple(sorted(state["reporters"])),
            perturbed_sizes=dict(state["reporters"]),
            submodel_bytes=float(np.mean(state["submodel"])) if state["submodel"] else 0.0,
            union_size=state["union"], psu_encoding=encoding, seconds=seconds,
            client_train_seconds=list(state["train"]), aborted=aborted)

    try:
        start = time.perf_counter()
        cohort = _psu(ex, settings, encoding, num_items, server_round, run_id, state)
        seconds["psu"] = time.perf_counter() - start
        if union_frequency is not None:
            union_frequency.observe(state["union_ids"])
        result = _upload(ex, cfg, settings, cohort, items, dense, server_round, run_id, state,
                         seconds, union_frequency)
    except SecAggAbort as exc:
        reason = f"secure round aborted: {exc}"
        logger.error("submodel round %s: %s; the model is unchanged", server_round, reason)
        return outcome(aborted=reason)
    return outcome(_to_items(result, state["union_ids"], num_items))


def _to_items(result, union: np.ndarray, num_items: int):
    """The upload's sums over union positions scattered to item ids (other rows: zero)."""
    row_sums = np.zeros((num_items, result.row_sums.shape[1]))
    row_counts = np.zeros(num_items, dtype=np.int64)
    row_sums[union] = result.row_sums[: union.size]
    row_counts[union] = result.row_counts[: union.size]
    return dataclasses.replace(result, row_sums=row_sums, row_counts=row_counts)


def _unmask_requests(server: SecAggServer) -> dict[int, bytes]:
    """Close the masked inputs; per alive client, its neighbourhood's alive/dropped lists."""
    alive = server.request_unmask().alive
    return {cid: server.unmask_request_for(cid).to_bytes() for cid in alive}


def _psu(ex: Exchanges, settings: SecureAggregationSettings, encoding, num_items: int,
         server_round: int, run_id: int, state: dict) -> list[int]:
    """Exchanges 1-4: the union of the real sets; return the cohort of the upload."""
    cohort = ex.alive(ex.nodes)
    if len(cohort) < 2:
        raise SecAggAbort(f"the private set union needs at least 2 clients, {len(cohort)} left")
    kind, length, hashes = encoding
    config = settings.protocol_config(len(cohort), length, round_id=2 * server_round,
                                      run_id=run_id, weighted=False)
    server = SecAggServer(config, client_ids=cohort)
    r = server_round
    replies = ex.send(Phase.PSU_KEYS, _contents(ex, Phase.PSU_KEYS, cohort, config, r,
                                                lambda c: b""))
    accepted = _accept(ex, Phase.PSU_KEYS, server, replies, decode_message)
    server.broadcast_keys()
    keys = {cid: server.keys_for(cid).to_bytes() for cid in cohort if cid in accepted}
    replies = ex.send(Phase.PSU_SHARES, _contents(ex, Phase.PSU_SHARES, keys, config, r,
                                                  keys.__getitem__))
    _accept(ex, Phase.PSU_SHARES, server, replies, decode_message)
    routed = {cid: s.to_bytes() for cid, s in server.route_shares().items()}
    replies = ex.send(Phase.PSU_INPUT, _contents(
        ex, Phase.PSU_INPUT, routed, config, r, routed.__getitem__, **{
            "psu-encoding": kind, "psu-length": length, "psu-hashes": hashes}))
    _accept(ex, Phase.PSU_INPUT, server, replies, decode_message)
    unmask = _unmask_requests(server)
    replies = ex.send(Phase.PSU_UNMASK, _contents(ex, Phase.PSU_UNMASK, unmask, config, r,
                                                  unmask.__getitem__))
    _accept(ex, Phase.PSU_UNMASK, server, replies, decode_message)
    result = server.aggregate()
    summed = result.ring_sum[:-1]
    if kind == "index":
        union = decode_index_vector(summed)
    else:
        union = decode_union(summed, np.arange(num_items), hashes)
    state["union_ids"] = union
    state["union"] = int(union.size)
    logger.info("submodel round %s: union of %s clients has %s rows (%s encoding)",
                server_round, len(result.survivors), union.size, kind)
    return [c for c in result.survivors if c not in ex.failed]


def _upload(ex: Exchanges, cfg: RunConfig, settings: SecureAggregationSettings,
            cohort: list[int], items: np.ndarray, dense: dict[str, np.ndarray],
            server_round: int, run_id: int, state: dict, seconds: dict[str, float],
            union_frequency: UnionFrequency | None = None):
    """Exchanges 5-8: report S'', download, train, submodel-aware secure aggregation."""
    cap = cfg.submodel_negative_weight_cap if cfg.submodel_negatives == "downloaded" else 0.0
    weigh = union_frequency is not None and cap > 0
    if len(cohort) < 2:
        raise SecAggAbort(f"the upload needs at least 2 clients, {len(cohort)} left after the "
                          "private set union")
    dense_length = sum(int(np.asarray(v).size) for v in dense.values())
    base = settings.protocol_config(len(cohort), dense_length, round_id=2 * server_round + 1,
                                    run_id=run_id, weighted=True)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.init}
    union_ids = state["union_ids"]
    config = SubmodelSecAggConfig(**fields, num_rows=max(1, union_ids.size),
                                  row_width=items.shape[1])
    server = SubmodelSecAggServer(config, client_ids=cohort)
    r = server_round
    start = time.perf_counter()
    union = encode_row_set(union_ids)
    contents = _contents(ex, Phase.REPORT, cohort, config, r, lambda c: b"", union=union)
    replies = ex.send(Phase.REPORT, contents)
    accepted = _accept(ex, Phase.REPORT, server, replies, decode_submodel_message)
    positions = {cid: np.asarray(m.rows, np.int64) for cid, m in accepted.items()}
    state["reporters"].update({cid: int(p.size) for cid, p in positions.items()})
    keys = {cid: m.to_bytes() for cid, m in server.broadcast_keys().items()}
    seconds["report"] = time.perf_counter() - start

    start = time.perf_counter()
    contents = _contents(ex, Phase.DOWNLOAD, keys, config, r, keys.__getitem__)
    for cid, content in contents.items():
        ids = union_ids[positions[cid]]
        extra = {NEGATIVE_WEIGHTS: union_frequency.negative_weights(ids, cap).astype(
            np.float16)} if weigh else {}
        content["submodel"] = arrays(rows=items[ids], **extra, **dense)
        state["submodel"].append(content_bytes(RecordDict({"submodel": content["submodel"]})))
    replies = ex.send(Phase.DOWNLOAD, contents)
    _accept(ex, Phase.DOWNLOAD, server, replies, decode_submodel_message)
    routed = {cid: s.to_bytes() for cid, s in server.route_shares().items()}
    seconds["download"] = time.perf_counter() - start

    start = time.perf_counter()
    replies = ex.send(Phase.TRAIN, _contents(ex, Phase.TRAIN, routed, config, r,
                                             routed.__getitem__))
    for reply in replies.values():
        metrics = reply.content.metric_records.get("metrics", {})
        if "train-seconds" in metrics:
            state["train"].append(float(metrics["train-seconds"]))
    _accept(ex, Phase.TRAIN, server, replies, decode_submodel_message)
    unmask = _unmask_requests(server)
    seconds["train"] = time.perf_counter() - start

    start = time.perf_counter()
    replies = ex.send(Phase.UNMASK, _contents(ex, Phase.UNMASK, unmask, config, r,
                                              unmask.__getitem__))
    _accept(ex, Phase.UNMASK, server, replies, decode_submodel_message)
    result = server.aggregate()
    seconds["secagg"] = time.perf_counter() - start
    return result
