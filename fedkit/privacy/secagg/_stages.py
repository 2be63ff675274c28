"""The stages of one secure-aggregation instance, over any transport.

:func:`run_stages` is the one place where the server side of the protocol is sequenced:
advertise keys -> keys broadcast -> share keys -> routed shares -> masked input -> unmask
requests -> unmask -> aggregate; with ``committed_graph`` advertise keys -> roster commitment
-> reveal nonce -> keys broadcast, and with ``consistency_check`` masked input -> survivors set
(U3) -> consistency check -> unmask requests, which then carry the signatures
(``config.stages``). It decodes every reply, refuses one that
speaks for another client, hands the rest to the server state machine and drops a client whose
message the server refuses. How requests reach clients is the transport's business
(:class:`StageTransport`): the in-process driver (:func:`fedkit.privacy.secagg.run_secagg`)
calls client objects directly; fedkit's Flower workflows (:mod:`fedkit.flower.secagg`) send
Flower messages. Every client receives only what concerns it: its own roster message
(:meth:`SecAggServer.keys_for`), the shares addressed to it and the alive/dropped lists of its
own neighbourhood (:meth:`SecAggServer.unmask_request_for`).

References:
    Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine Learning",
    CCS 2017, Fig. 4; Bell et al., CCS 2020, §3 (per-neighbourhood shares and unmasking).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from fedkit.privacy.secagg._config import SecAggError, Stage
from fedkit.privacy.secagg._messages import decode_message
from fedkit.privacy.secagg._server import SecAggResult, SecAggServer

__all__ = ["StageRun", "StageTransport", "run_stages"]


class StageTransport(Protocol):
    """Carries one stage's requests to the clients and brings their replies back."""

    def exchange(self, stage: Stage, requests: Mapping[int, object | None]
                 ) -> Mapping[int, bytes]:
        """Deliver ``requests[cid]`` to each client; return the replies that arrived.

        Args:
            stage: The stage.
            requests: Per client id, the server's protocol message for it (``None`` in
                advertise-keys, which opens the instance and carries its parameters).

        Returns:
            Per client id, the serialised protocol message it replied. A client missing from
            the result dropped out; the transport records why.
        """
        ...

    def reject(self, stage: Stage, client_id: int, reason: str) -> None:
        """The server refused ``client_id``'s reply at ``stage``: it is out of the instance."""
        ...


@dataclasses.dataclass(frozen=True)
class StageRun:
    """What :func:`run_stages` produced.

    Attributes:
        result: The server's aggregate.
        server_seconds: Per stage, the server's own compute time: decoding and receiving
            replies, closing the stage and building the next requests (transport excluded).
    """

    result: SecAggResult
    server_seconds: dict[Stage, float]


def run_stages(server: SecAggServer, cohort: Iterable[int], transport: StageTransport, *,
               decode_fn: Callable[[bytes], object] = decode_message) -> StageRun:
    """Run the stages of ``server`` (``server.config.stages``) with the clients of ``cohort``
    over ``transport``.

    Args:
        server: A fresh server (SecAgg or a subclass, e.g. the submodel server).
        cohort: The client ids invited to advertise keys.
        transport: Delivers requests and collects replies.
        decode_fn: Decodes a serialised reply into a protocol message.

    Returns:
        The aggregate and the server's compute time per stage.

    Raises:
        SecAggAbort: Fewer than the threshold of clients (or shares) at some stage, or a
            member of a committed roster that did not reveal its nonce.
    """
    seconds: dict[Stage, float] = {}

    def stage(name: Stage, requests: Mapping[int, object | None],
              close: Callable[[], object]) -> object:
        replies = transport.exchange(name, requests)
        start = time.perf_counter()
        for cid, data in sorted(replies.items()):
            try:
                message = decode_fn(data)
                if getattr(message, "client_id", None) != cid:
                    raise SecAggError(
                        f"protocol message names client {getattr(message, 'client_id', None)}"
                        f", but it came from client {cid}: one node cannot speak for another")
                server.receive(message)
            except SecAggError as exc:
                transport.reject(name, cid, str(exc))
        try:
            return close()
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start

    committed = Stage.REVEAL_NONCE in server.config.stages
    stage(Stage.ADVERTISE_KEYS, dict.fromkeys(sorted(cohort)),
          server.commit_roster if committed else server.broadcast_keys)
    last = Stage.ADVERTISE_KEYS
    if committed:
        commitments = _timed(seconds, last, lambda: {
            cid: server.roster_commitment_for(cid) for cid in server.roster})
        stage(Stage.REVEAL_NONCE, commitments, server.broadcast_keys)
        last = Stage.REVEAL_NONCE
    keys = _timed(seconds, last, lambda: {cid: server.keys_for(cid) for cid in server.roster})
    routed = stage(Stage.SHARE_KEYS, keys, server.route_shares)
    if Stage.CONSISTENCY_CHECK in server.config.stages:
        survivors = stage(Stage.MASKED_INPUT, routed, server.request_consistency)
        check = _timed(seconds, Stage.MASKED_INPUT, lambda: {
            cid: server.consistency_request_for(cid) for cid in survivors})
        stage(Stage.CONSISTENCY_CHECK, check, server.request_unmask)
        asked, last = server.signers, Stage.CONSISTENCY_CHECK
    else:
        asked = stage(Stage.MASKED_INPUT, routed, server.request_unmask).alive
        last = Stage.MASKED_INPUT
    unmask = _timed(seconds, last, lambda: {cid: server.unmask_request_for(cid) for cid in asked})
    result = stage(Stage.UNMASK, unmask, server.aggregate)
    return StageRun(result, seconds)


def _timed(seconds: dict[Stage, float], name: Stage, fn: Callable[[], dict]) -> dict:
    start = time.perf_counter()
    try:
        return fn()
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
