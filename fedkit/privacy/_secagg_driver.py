"""An in-process driver that runs one secure-aggregation round (see ``secagg``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedkit.privacy._secagg_client import SecAggClient
from fedkit.privacy._secagg_config import SecAggConfig, SecAggProtocolError, Stage
from fedkit.privacy._secagg_messages import decode_message
from fedkit.privacy._secagg_server import SecAggResult, SecAggServer

__all__ = ["SecAggReport", "run_secagg"]

TamperFn = Callable[[Stage, str, int, bytes], bytes]


@dataclass(frozen=True)
class SecAggReport:
    """What happened in one :func:`run_secagg` round.

    Attributes:
        result: The server's :class:`SecAggResult` (mean, total weight, ring sum, ...).
        client_seconds: Per client id, compute seconds summed over its stages.
        server_seconds: Per stage, server compute seconds (receive + close).
        rejected: ``(stage, client id, error message)`` for every rejected message or
            client-side check that stopped a client.
    """

    result: SecAggResult
    client_seconds: dict[int, float]
    server_seconds: dict[Stage, float]
    rejected: list[tuple[Stage, int, str]] = field(default_factory=list)


def _identity(stage: Stage, direction: str, client_id: int, data: bytes) -> bytes:
    return data


def run_secagg(
    vectors: Mapping[int, np.ndarray] | Sequence[np.ndarray],
    weights: Mapping[int, float] | Sequence[float] | None,
    config: SecAggConfig,
    dropouts: Mapping[Stage, set[int]] | None = None,
    *,
    rng: np.random.Generator | None = None,
    tamper_fn: TamperFn | None = None,
) -> tuple[np.ndarray, SecAggReport]:
    """Run one full round in this process, every message through its wire format.

    A client listed in ``dropouts[stage]`` sends nothing from that stage on. A message the
    server rejects, or a client whose check fails (:class:`SecAggProtocolError`), counts as
    a dropout at that stage and is listed in ``report.rejected``.

    Args:
        vectors: Per client id (or ids ``0..n-1`` for a sequence) a vector of
            ``config.vector_length`` floats.
        weights: Per client weight in ``[0, config.max_weight]``; ``None`` = all 1.
        config: The round's configuration.
        dropouts: ``{stage: ids that drop before sending that stage's message}``.
        rng: Root of the clients' stochastic-rounding generators (not secret).
        tamper_fn: Test seam ``(stage, "up" | "down", client id, bytes) -> bytes`` applied to
            every serialised message (``"up"``: client to server).

    Returns:
        ``(weighted_sum, report)``; ``report.result.mean`` is the weighted mean.

    Raises:
        SecAggAbort: Too few clients or shares at some stage.

    Example:
        >>> cfg = SecAggConfig(num_clients=3, vector_length=2, threshold=2)
        >>> total, _ = run_secagg([np.ones(2)] * 3, None, cfg)
        >>> np.round(total, 3).tolist()
        [3.0, 3.0]
    """
    if isinstance(vectors, Mapping):
        inputs = dict(vectors)
    else:
        inputs = dict(enumerate(vectors))
    if weights is None:
        weight_of = dict.fromkeys(inputs, 1.0)
    else:
        weight_of = dict(weights) if isinstance(weights, Mapping) else dict(enumerate(weights))
    dropouts = {stage: set(ids) for stage, ids in (dropouts or {}).items()}
    tamper = tamper_fn or _identity
    root = rng if rng is not None else np.random.default_rng()
    ids = sorted(inputs)
    clients = {
        cid: SecAggClient(config, cid, rng=child)
        for cid, child in zip(ids, root.spawn(len(ids)), strict=True)
    }
    server = SecAggServer(config, client_ids=ids)
    client_seconds = dict.fromkeys(ids, 0.0)
    server_seconds: dict[Stage, float] = {}
    rejected: list[tuple[Stage, int, str]] = []
    active = set(ids)

    def step(stage: Stage, call_fn: Callable[[int], object]) -> None:
        active.difference_update(dropouts.get(stage, set()))
        elapsed = 0.0
        for cid in sorted(active):
            start = time.perf_counter()
            try:
                data = call_fn(cid).to_bytes()
            except SecAggProtocolError as exc:
                rejected.append((stage, cid, str(exc)))
                active.discard(cid)
                continue
            finally:
                client_seconds[cid] += time.perf_counter() - start
            data = tamper(stage, "up", cid, data)
            start = time.perf_counter()
            try:
                server.receive(decode_message(data))
            except SecAggProtocolError as exc:
                rejected.append((stage, cid, str(exc)))
                active.discard(cid)
            elapsed += time.perf_counter() - start
        server_seconds[stage] = elapsed

    def down(stage: Stage, cid: int, message) -> object:
        return decode_message(tamper(stage, "down", cid, message.to_bytes()))

    step(Stage.ADVERTISE_KEYS, lambda cid: clients[cid].advertise_keys())
    keys = _timed(server_seconds, Stage.ADVERTISE_KEYS, server.broadcast_keys)
    step(Stage.SHARE_KEYS, lambda cid: clients[cid].share_keys(down(Stage.SHARE_KEYS, cid, keys)))
    routed = _timed(server_seconds, Stage.SHARE_KEYS, server.route_shares)
    active.intersection_update(routed)
    step(
        Stage.MASKED_INPUT,
        lambda cid: clients[cid].masked_input(
            down(Stage.MASKED_INPUT, cid, routed[cid]), inputs[cid], weight_of[cid]
        ),
    )
    request = _timed(server_seconds, Stage.MASKED_INPUT, server.request_unmask)
    step(Stage.UNMASK, lambda cid: clients[cid].unmask(down(Stage.UNMASK, cid, request)))
    result = _timed(server_seconds, Stage.UNMASK, server.aggregate)
    report = SecAggReport(result, client_seconds, server_seconds, rejected)
    return result.weighted_sum, report


def _timed(seconds: dict[Stage, float], stage: Stage, fn: Callable[[], object]):
    start = time.perf_counter()
    try:
        return fn()
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
