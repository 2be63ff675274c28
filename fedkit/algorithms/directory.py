"""Stable client ids behind Flower's node ids.

Flower node ids are random per run and change when a SuperNode reconnects; fedkit keys all
per-client state (sampling, latest-update tables, counters) by a *stable client id*: the
partition id in simulation, a configured id in deployment. The directory learns the id of
every node it has not seen before with one ``query.client_id`` message, and caches it. A node
that does not answer with a valid id is left out of this round and asked again later. See
docs/design.md, "Client identity".
"""

from __future__ import annotations

import logging

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

__all__ = ["ClientDirectory", "CLIENT_ID_QUERY", "CLIENT_ID_KEY"]

logger = logging.getLogger(__name__)

CLIENT_ID_QUERY = "query.client_id"
CLIENT_ID_KEY = "client-id"


class ClientDirectory:
    """Maps online Flower node ids to stable client ids.

    Args:
        num_clients: N; valid client ids are ``0 .. N - 1``.
        timeout: Seconds to wait for the answers to one batch of id queries.
    """

    def __init__(self, num_clients: int, *, timeout: float | None = 600.0) -> None:
        self._num_clients = num_clients
        self._timeout = timeout
        self._client_of: dict[int, int] = {}

    def online(self, grid: Grid) -> dict[int, int]:
        """Return ``{client_id: node_id}`` for the nodes the grid reports online.

        Unknown nodes are queried first. If two nodes claim the same client id, the one seen
        most recently wins (a reconnect gives a client a new node id) and a warning is logged.
        """
        node_ids = list(grid.get_node_ids())
        unknown = [n for n in node_ids if n not in self._client_of]
        if unknown:
            self._query(grid, unknown)
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

    def _query(self, grid: Grid, node_ids: list[int]) -> None:
        content = RecordDict({"config": ConfigRecord({"want": CLIENT_ID_KEY})})
        messages = [Message(content, node_id, CLIENT_ID_QUERY) for node_id in node_ids]
        for reply in grid.send_and_receive(messages, timeout=self._timeout):
            node_id = reply.metadata.src_node_id
            if reply.has_error():
                logger.warning("node %s did not report its client id: %s", node_id,
                               reply.error.reason)
                continue
            record = reply.content.config_records.get("client")
            client_id = record.get(CLIENT_ID_KEY) if record is not None else None
            if (not isinstance(client_id, int) or isinstance(client_id, bool)
                    or not 0 <= client_id < self._num_clients):
                logger.warning(
                    "node %s reported client id %r, expected an integer in [0, %s); "
                    "the node is left out", node_id, client_id, self._num_clients,
                )
                continue
            self._client_of[node_id] = client_id
