"""Stable client ids behind Flower's node ids.

Flower node ids are random per run and change when a SuperNode reconnects; fedkit keys all
per-client state (sampling, latest-update tables, counters) by a *stable client id*: the
partition id in simulation, a configured id in deployment. The directory learns the id of
every node it has not seen before with one ``query.client_id`` message, and caches it. A node
that does not answer with a valid id is left out of this round and asked again later. See
docs/design.md, "Client identity".

When the size N of the federation is not given (``num_clients=None``), any integer id >= 0 is
valid and N is learned as the number of distinct client ids seen so far
(:attr:`ClientDirectory.num_seen`). If no node is known and every queried node's answer
breaks the contract (no ``query.client_id`` handler, or no valid id), :meth:`online` raises
:class:`~fedkit.algorithms.contract.ContractError` naming the fix
(``fedkit.flower.mods.client_id_mod``); nodes that fail otherwise (offline, crashed) are
only logged.
"""

from __future__ import annotations

import logging

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from fedkit.algorithms.contract import Mismatch, contract_error

__all__ = ["ClientDirectory", "CLIENT_ID_QUERY", "CLIENT_ID_KEY"]

logger = logging.getLogger(__name__)

CLIENT_ID_QUERY = "query.client_id"
CLIENT_ID_KEY = "client-id"
_NO_QUERY_HANDLER = "No query function registered with name 'client_id'"  # Flower's text


class ClientDirectory:
    """Maps online Flower node ids to stable client ids.

    Args:
        num_clients: N; valid client ids are ``0 .. N - 1``. None: any id >= 0 is valid and N
            is learned (:attr:`num_seen`).
        timeout: Seconds to wait for the answers to one batch of id queries.
    """

    def __init__(self, num_clients: int | None, *, timeout: float | None = 600.0) -> None:
        if num_clients is not None and num_clients < 1:
            raise ValueError(f"num_clients = {num_clients}, expected >= 1 or None (learned)")
        self._num_clients = num_clients
        self._timeout = timeout
        self._client_of: dict[int, int] = {}

    @property
    def num_seen(self) -> int:
        """Number of distinct client ids seen so far."""
        return len(set(self._client_of.values()))

    def online(self, grid: Grid, *, server_round: int | None = None) -> dict[int, int]:
        """Return ``{client_id: node_id}`` for the nodes the grid reports online.

        Unknown nodes are queried first. If two nodes claim the same client id, the one seen
        most recently wins (a reconnect gives a client a new node id) and a warning is logged.

        Args:
            grid: The grid whose online nodes to map.
            server_round: The round, for error messages.

        Raises:
            ContractError: If no online node is known and every unknown node answered the
                query in breach of the contract.
        """
        node_ids = list(grid.get_node_ids())
        unknown = [n for n in node_ids if n not in self._client_of]
        broken: list[tuple[Mismatch, str]] = []
        if unknown:
            broken = self._query(grid, unknown)
        if unknown and len(broken) == len(unknown) and not (set(node_ids) & set(self._client_of)):
            raise contract_error("fedkit's client directory ('query.client_id')", server_round,
                                 [m for m, _ in broken], broken[0][1],
                                 num_clients=self._num_clients)
        result: dict[int, int] = {}
        for node_id in node_ids:
            client_id = self._client_of.get(node_id)
            if client_id is None:
                continue
            if client_id in result:
                logger.warning(
                    "client id %s is claimed by nodes %s and %s; using node %s",
                    client_id, result[client_id], node_id, node_id,
                )
            result[client_id] = node_id
        return result

    def _valid(self, client_id: object) -> bool:
        if not isinstance(client_id, int) or isinstance(client_id, bool) or client_id < 0:
            return False
        return self._num_clients is None or client_id < self._num_clients

    def _query(self, grid: Grid, node_ids: list[int]) -> list[tuple[Mismatch, str]]:
        """Ask ``node_ids`` for their ids; return the answers that broke the contract."""
        content = RecordDict({"config": ConfigRecord({"want": CLIENT_ID_KEY})})
        messages = [Message(content, node_id, CLIENT_ID_QUERY) for node_id in node_ids]
        broken: list[tuple[Mismatch, str]] = []
        for reply in grid.send_and_receive(messages, timeout=self._timeout):
            node_id = reply.metadata.src_node_id
            if reply.has_error():
                logger.warning("node %s did not report its client id: %s", node_id,
                               reply.error.reason)
                if _NO_QUERY_HANDLER in reply.error.reason:
                    broken.append((Mismatch.NO_QUERY_HANDLER,
                                   f"node {node_id}: {reply.error.reason.strip()}"))
                continue
            record = reply.content.config_records.get("client")
            client_id = record.get(CLIENT_ID_KEY) if record is not None else None
            if not self._valid(client_id):
                expected = ("an integer >= 0" if self._num_clients is None
                            else f"an integer in [0, {self._num_clients})")
                reason = f"node {node_id} reported client id {client_id!r}, expected {expected}"
                logger.warning("%s; the node is left out", reason)
                broken.append((Mismatch.BAD_CLIENT_ID, reason))
                continue
            self._client_of[node_id] = client_id
        return broken
