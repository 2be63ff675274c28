"""An in-process driver that runs one secure-aggregation round (see ``secagg``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedkit.privacy.secagg._client import SecAggClient
from fedkit.privacy.secagg._config import SecAggConfig, SecAggProtocolError, Stage
from fedkit.privacy.secagg._messages import MaskedInput, SharesBroadcast, decode_message
from fedkit.privacy.secagg._server import SecAggResult, SecAggServer

__all__ = ["SecAggReport", "drive_round", "run_secagg", "run_secagg_ring"]

TamperFn = Callable[[Stage, str, int, bytes], bytes]


@dataclass(frozen=True)
class SecAggReport:
    """What happened in one :func:`run_secagg` round.

    Attributes:
        result: The server's :class:`SecAggResult` (mean, total weight, ring sum, ...).
        client_seconds: Per client id, compute seconds summed over its stages.
        server_seconds: Per stage, server compute seconds (receive + close, including
            serialising what it sends).
        rejected: ``(stage, client id, error message)`` for every rejected message or
            client-side check that stopped a client.
        client_stage_seconds: Per client id, per stage it took part in, compute seconds
            (decoding the server's message, the stage, serialising the reply); the values
            of a client sum to its ``client_seconds``.
        bytes_up: Per client id, per stage, length of the serialised message it sent.
        bytes_down: Per client id, per stage, length of the serialised message it received.
    """

    result: SecAggResult
    client_seconds: dict[int, float]
    server_seconds: dict[Stage, float]
    rejected: list[tuple[Stage, int, str]] = field(default_factory=list)
    client_stage_seconds: dict[int, dict[Stage, float]] = field(default_factory=dict)
    bytes_up: dict[int, dict[Stage, int]] = field(default_factory=dict)
    bytes_down: dict[int, dict[Stage, int]] = field(default_factory=dict)


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
    root = rng if rng is not None else np.random.default_rng()
    ids = sorted(inputs)
    clients = {
        cid: SecAggClient(config, cid, rng=child)
        for cid, child in zip(ids, root.spawn(len(ids)), strict=True)
    }
    report = drive_round(
        clients,
        SecAggServer(config, client_ids=ids),
        lambda cid, msg: clients[cid].masked_input(msg, inputs[cid], weight_of[cid]),
        dropouts,
        tamper_fn=tamper_fn,
    )
    return report.result.weighted_sum, report


def run_secagg_ring(
    vectors: Mapping[int, np.ndarray] | Sequence[np.ndarray],
    config: SecAggConfig,
    dropouts: Mapping[Stage, set[int]] | None = None,
    *,
    tamper_fn: TamperFn | None = None,
) -> tuple[np.ndarray, SecAggReport]:
    """Run one round on vectors already in Z_{2^bits}; return their exact sum mod 2^bits.

    Each client submits its vector with :meth:`SecAggClient.masked_ring_input` (no clipping,
    no quantisation), e.g. a random-valued Bloom filter of a private set union. Dropouts,
    rejections and ``tamper_fn`` work as in :func:`run_secagg`.

    Args:
        vectors: Per client id (or ids ``0..n-1`` for a sequence) ``config.wire_length``
            integers in ``[0, 2^bits)``: ``vector_length`` elements and one more in the
            weight's place (e.g. 1, so that the last element of the sum counts the survivors).
        config: The round's configuration (``clip``, ``scale`` and ``max_weight`` unused).
        dropouts: ``{stage: ids that drop before sending that stage's message}``.
        tamper_fn: Test seam, as in :func:`run_secagg`.

    Returns:
        ``(ring_sum, report)``: the survivors' sum mod 2^bits (``report.result.ring_sum``);
        ``report.result.weighted_sum`` and ``total_weight`` are meaningless here.

    Raises:
        SecAggAbort: Too few clients or shares at some stage.

    Example:
        >>> cfg = SecAggConfig(num_clients=3, vector_length=2, threshold=2)
        >>> total, _ = run_secagg_ring([np.array([2**32 - 1, 7, 1], np.uint32)] * 3, cfg)
        >>> total.tolist()
        [4294967293, 21, 3]
    """
    inputs = dict(vectors) if isinstance(vectors, Mapping) else dict(enumerate(vectors))
    ids = sorted(inputs)
    clients = {cid: SecAggClient(config, cid) for cid in ids}
    report = drive_round(
        clients,
        SecAggServer(config, client_ids=ids),
        lambda cid, msg: clients[cid].masked_ring_input(msg, inputs[cid]),
        dropouts,
        tamper_fn=tamper_fn,
    )
    return report.result.ring_sum, report


def drive_round(
    clients: Mapping[int, SecAggClient],
    server: SecAggServer,
    submit_fn: Callable[[int, SharesBroadcast], MaskedInput],
    dropouts: Mapping[Stage, set[int]] | None = None,
    *,
    tamper_fn: TamperFn | None = None,
    decode_fn: Callable[[bytes], object] = decode_message,
    report_cls: type[SecAggReport] = SecAggReport,
) -> SecAggReport:
    """Run the four stages between ``clients`` and ``server`` through the wire format.

    The engine of :func:`run_secagg` and of the submodel driver: ``submit_fn(cid, shares)``
    returns client ``cid``'s masked input; ``decode_fn`` decodes every serialised message;
    the report is a ``report_cls``. Dropouts and rejections as in :func:`run_secagg`.
    """
    dropouts = {stage: set(ids) for stage, ids in (dropouts or {}).items()}
    tamper = tamper_fn or _identity
    ids = sorted(clients)
    stage_seconds: dict[int, dict[Stage, float]] = {cid: {} for cid in ids}
    bytes_up: dict[int, dict[Stage, int]] = {cid: {} for cid in ids}
    bytes_down: dict[int, dict[Stage, int]] = {cid: {} for cid in ids}
    server_seconds: dict[Stage, float] = {}
    rejected: list[tuple[Stage, int, str]] = []
    active = set(ids)

    def step(
        stage: Stage,
        request_fn: Callable[[int], bytes] | None,
        call_fn: Callable[[int, object], object],
    ) -> None:
        active.difference_update(dropouts.get(stage, set()))
        elapsed = 0.0
        for cid in sorted(active):
            received = None
            if request_fn is not None:
                received = tamper(stage, "down", cid, request_fn(cid))
                bytes_down[cid][stage] = len(received)
            start = time.perf_counter()
            try:
                request = None if received is None else decode_fn(received)
                data = call_fn(cid, request).to_bytes()
            except SecAggProtocolError as exc:
                rejected.append((stage, cid, str(exc)))
                active.discard(cid)
                continue
            finally:
                stage_seconds[cid][stage] = time.perf_counter() - start
            data = tamper(stage, "up", cid, data)
            bytes_up[cid][stage] = len(data)
            start = time.perf_counter()
            try:
                server.receive(decode_fn(data))
            except SecAggProtocolError as exc:
                rejected.append((stage, cid, str(exc)))
                active.discard(cid)
            elapsed += time.perf_counter() - start
        server_seconds[stage] = elapsed

    step(Stage.ADVERTISE_KEYS, None, lambda cid, _: clients[cid].advertise_keys())
    keys = _timed(server_seconds, Stage.ADVERTISE_KEYS, lambda: _serialise(server))
    step(Stage.SHARE_KEYS, keys, lambda cid, msg: clients[cid].share_keys(msg))
    routed = _timed(
        server_seconds,
        Stage.SHARE_KEYS,
        lambda: {cid: shares.to_bytes() for cid, shares in server.route_shares().items()},
    )
    active.intersection_update(routed)
    step(Stage.MASKED_INPUT, routed.__getitem__, submit_fn)
    unmask_request = _timed(
        server_seconds, Stage.MASKED_INPUT, lambda: server.request_unmask().to_bytes()
    )
    step(Stage.UNMASK, lambda cid: unmask_request, lambda cid, msg: clients[cid].unmask(msg))
    result = _timed(server_seconds, Stage.UNMASK, server.aggregate)
    client_seconds = {cid: sum(stage_seconds[cid].values()) for cid in ids}
    return report_cls(
        result, client_seconds, server_seconds, rejected, stage_seconds, bytes_up, bytes_down
    )


def _serialise(server) -> Callable[[int], bytes]:
    """Close stage 0; the keys broadcast as ``cid -> bytes``, one message per client
    (:meth:`SecAggServer.keys_for`, or the subclass's own per-client messages)."""
    broadcast = server.broadcast_keys()
    if isinstance(broadcast, Mapping):
        messages = broadcast
    else:
        messages = {cid: server.keys_for(cid) for cid in broadcast.public_keys}
    per_client = {cid: message.to_bytes() for cid, message in messages.items()}
    return per_client.__getitem__


def _timed(seconds: dict[Stage, float], stage: Stage, fn: Callable[[], object]):
    start = time.perf_counter()
    try:
        return fn()
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
