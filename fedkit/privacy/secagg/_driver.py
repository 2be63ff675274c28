"""An in-process driver: one secure-aggregation round with client objects in this process.

The stages are sequenced by :func:`~fedkit.privacy.secagg.run_stages`, as on Flower; the
transport here calls each client object directly, through the wire format.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedkit.privacy.secagg._client import SecAggClient
from fedkit.privacy.secagg._config import SecAggConfig, SecAggProtocolError, Stage
from fedkit.privacy.secagg._messages import MaskedInput, SharesBroadcast, decode_message
from fedkit.privacy.secagg._server import SecAggResult, SecAggServer
from fedkit.privacy.secagg._stages import run_stages
from fedkit.privacy.secagg.signing import KeyList, SigningIdentity, generate_signing_keys

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


def _untampered(stage: Stage, direction: str, client_id: int, data: bytes) -> bytes:
    return data


def _identities(config: SecAggConfig, ids: list[int],
                identities: Mapping[int, SigningIdentity] | None
                ) -> dict[int, SigningIdentity | None]:
    """Each client's signing identity: the given ones, fresh keys with the consistency
    check when none are given (every client here is in-process), else none."""
    if identities is not None:
        return {cid: identities.get(cid) for cid in ids}
    if not config.consistency_check:
        return dict.fromkeys(ids)
    keys, key_list = generate_signing_keys(len(ids), client_ids=ids)
    return {cid: SigningIdentity(keys[cid], key_list) for cid in ids}


def run_secagg(
    vectors: Mapping[int, np.ndarray] | Sequence[np.ndarray],
    weights: Mapping[int, float] | Sequence[float] | None,
    config: SecAggConfig,
    dropouts: Mapping[Stage, set[int]] | None = None,
    *,
    rng: np.random.Generator | None = None,
    tamper_fn: TamperFn | None = None,
    identities: Mapping[int, SigningIdentity] | None = None,
    key_list: KeyList | None = None,
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
        identities: Per client id its signing identity (``consistency_check``); ``None``
            generates a fresh key set for the clients here.
        key_list: The server's copy of the operator's key list (``consistency_check``):
            it then refuses, in advertise keys, a client outside the list or with a key
            signature that does not verify, and the round goes on without it (see
            :class:`SecAggServer`); ``None``: the server relays every entry.

    Returns:
        ``(weighted_sum, report)``; ``report.result.mean`` is the weighted mean.

    Raises:
        SecAggAbort: Too few clients or shares at some stage, or (``committed_graph``) a
            client that drops at reveal-nonce.
        ValueError: ``dropouts`` names a stage the instance does not run.

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
    signing = _identities(config, ids, identities)
    clients = {
        cid: SecAggClient(config, cid, rng=child, identity=signing[cid])
        for cid, child in zip(ids, root.spawn(len(ids)), strict=True)
    }
    report = drive_round(
        clients,
        SecAggServer(config, client_ids=ids, key_list=key_list),
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
    identities: Mapping[int, SigningIdentity] | None = None,
    key_list: KeyList | None = None,
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
        identities: Signing identities, as in :func:`run_secagg`.
        key_list: The server's key list, as in :func:`run_secagg`.

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
    signing = _identities(config, ids, identities)
    clients = {cid: SecAggClient(config, cid, identity=signing[cid]) for cid in ids}
    report = drive_round(
        clients,
        SecAggServer(config, client_ids=ids, key_list=key_list),
        lambda cid, msg: clients[cid].masked_ring_input(msg, inputs[cid]),
        dropouts,
        tamper_fn=tamper_fn,
    )
    return report.result.ring_sum, report


class _DirectTransport:
    """Delivers each stage by calling the client objects, every message through its bytes."""

    def __init__(self, clients: Mapping[int, SecAggClient],
                 submit_fn: Callable[[int, SharesBroadcast], MaskedInput],
                 dropouts: Mapping[Stage, set[int]] | None, tamper_fn: TamperFn | None,
                 decode_fn: Callable[[bytes], object]) -> None:
        self.clients, self.submit_fn, self.decode_fn = clients, submit_fn, decode_fn
        self.dropouts = {stage: set(ids) for stage, ids in (dropouts or {}).items()}
        self.tamper = tamper_fn or _untampered
        ids = sorted(clients)
        self.stage_seconds: dict[int, dict[Stage, float]] = {cid: {} for cid in ids}
        self.bytes_up: dict[int, dict[Stage, int]] = {cid: {} for cid in ids}
        self.bytes_down: dict[int, dict[Stage, int]] = {cid: {} for cid in ids}
        self.serialise_seconds: dict[Stage, float] = {}
        self.rejected: list[tuple[Stage, int, str]] = []
        self.gone: set[int] = set()

    def _call(self, stage: Stage, cid: int, request: object | None) -> object:
        client = self.clients[cid]
        if stage is Stage.ADVERTISE_KEYS:
            return client.advertise_keys()
        if stage is Stage.REVEAL_NONCE:
            return client.reveal_nonce(request)
        if stage is Stage.SHARE_KEYS:
            return client.share_keys(request)
        if stage is Stage.MASKED_INPUT:
            return self.submit_fn(cid, request)
        if stage is Stage.CONSISTENCY_CHECK:
            return client.consistency_check(request)
        return client.unmask(request)

    def exchange(self, stage: Stage, requests: Mapping[int, object | None]
                 ) -> dict[int, bytes]:
        self.gone |= self.dropouts.get(stage, set())
        replies: dict[int, bytes] = {}
        for cid, request in sorted(requests.items()):
            if cid in self.gone:
                continue
            received = None
            if request is not None:
                start = time.perf_counter()
                data = request.to_bytes()
                self.serialise_seconds[stage] = (self.serialise_seconds.get(stage, 0.0)
                                                 + time.perf_counter() - start)
                received = self.tamper(stage, "down", cid, data)
                self.bytes_down[cid][stage] = len(received)
            start = time.perf_counter()
            try:
                decoded = None if received is None else self.decode_fn(received)
                data = self._call(stage, cid, decoded).to_bytes()
            except SecAggProtocolError as exc:
                self.reject(stage, cid, str(exc))
                continue
            finally:
                self.stage_seconds[cid][stage] = time.perf_counter() - start
            data = self.tamper(stage, "up", cid, data)
            self.bytes_up[cid][stage] = len(data)
            replies[cid] = data
        return replies

    def reject(self, stage: Stage, client_id: int, reason: str) -> None:
        self.rejected.append((stage, client_id, reason))
        self.gone.add(client_id)


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
    """Run the stages (:func:`~fedkit.privacy.secagg.run_stages`) between ``clients``
    and ``server``, calling the clients directly, every message through its wire format.

    The engine of :func:`run_secagg` and of the submodel driver: ``submit_fn(cid, shares)``
    returns client ``cid``'s masked input; ``decode_fn`` decodes every serialised message;
    the report is a ``report_cls``. Dropouts and rejections as in :func:`run_secagg`.

    Raises:
        ValueError: ``dropouts`` names a stage this instance does not run.
    """
    order = server.config.stages
    absent = [stage.value for stage in (dropouts or {}) if stage not in order]
    if absent:
        raise ValueError(f"dropouts at {absent}: not a stage of this instance (its stages: "
                         f"{[s.value for s in order]})")
    transport = _DirectTransport(clients, submit_fn, dropouts, tamper_fn, decode_fn)
    run = run_stages(server, clients, transport, decode_fn=decode_fn)
    server_seconds = dict(run.server_seconds)
    for stage, extra in transport.serialise_seconds.items():
        # a request is serialised by the server that sends it: count it to the stage that
        # built it (the previous one)
        index = order.index(stage)
        earlier = order[index - 1] if index else stage
        server_seconds[earlier] = server_seconds.get(earlier, 0.0) + extra
    client_seconds = {cid: sum(s.values()) for cid, s in transport.stage_seconds.items()}
    return report_cls(run.result, client_seconds, server_seconds, transport.rejected,
                      transport.stage_seconds, transport.bytes_up, transport.bytes_down)
