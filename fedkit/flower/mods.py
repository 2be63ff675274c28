"""Client-side mods: every duty a fedkit strategy asks of a ClientApp, for any Flower app.

A quickstart-style Flower ClientApp -- ``@app.train`` trains locally and replies with its
model and ``metrics`` (``num-examples``) -- becomes a client of every fedkit strategy with::

    from fedkit.flower.mods import (client_id_mod, fedlaavg_mod,
                                    register_client_id_query, secagg_mod)

    app = ClientApp(mods=[client_id_mod, secagg_mod, fedlaavg_mod])
    register_client_id_query(app)

* :func:`client_id_mod` answers the server's ``query.client_id`` (fedkit keys every client's
  state by a stable id: ``client-id`` in the node config in deployment, ``partition-id`` in
  simulation; see :mod:`fedkit.algorithms.directory`).
* :func:`fedlaavg_mod` keeps FedLaAvg's client-delta state (G_i, its version, ``state-lost``,
  recovery) and turns the handler's model into ΔG_i when the server asks for
  ``reply = "gradient-delta"``; other messages pass through
  (:mod:`fedkit.flower.apps.client_delta`).
* :func:`secagg_mod` answers the secure-aggregation stages and masks the reply
  (:mod:`fedkit.flower.secagg.mod`). Order: client clip -> mask, so ``secagg_mod`` comes
  before (outside) ``fedlaavg_mod``.

Why :func:`register_client_id_query`: Flower 1.42's ``ClientApp.__call__`` looks up the handler
of a message type *before* any mod runs, and mods wrap only registered handlers
(``flwr.clientapp.ClientApp._get_decorator``), so an app-level mod never sees a message type
the app has no handler for -- a ``query.client_id`` to an app with only ``@app.train`` fails
with ``No query function registered with name 'client_id'``. The helper registers that
handler, with ``client_id_mod`` as its mod; it is the only line besides ``mods=[...]``. (An
app built from a ``client_fn`` routes every message through its mods and needs only
``client_id_mod``.)

All three mods keep the batched in-process engine batching (each has a ``wrap_batch``,
:mod:`fedkit.flower.runtime.batching`). The message contract of each strategy is in
``docs/flower.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

import fedkit.flower.secagg.batching  # noqa: F401 - gives secagg_mod its wrap_batch
from fedkit.algorithms.directory import CLIENT_ID_KEY, CLIENT_ID_QUERY
from fedkit.flower.apps.client_delta import fedlaavg_mod
from fedkit.flower.runtime.batching import BatchHandler
from fedkit.flower.secagg.mod import secagg_mod

__all__ = ["client_id_mod", "fedlaavg_mod", "node_client_id", "register_client_id_query",
           "secagg_mod"]

_ACTION = CLIENT_ID_QUERY.split(".", 1)[1]


def node_client_id(context: Context) -> int:
    """This node's stable client id, from its node config.

    ``client-id`` (set by a deployment's SuperNode, ``--node-config``) or else
    ``partition-id`` (set by Flower's Simulation Engine and fedkit's in-process grids). The id
    must be below the node config's ``num-partitions`` and the run config's ``num_clients``
    where those are present, and non-negative in any case.

    Raises:
        ValueError: If neither key is set or the id is not an integer in range.
    """
    node_config = context.node_config
    key = "client-id" if "client-id" in node_config else "partition-id"
    value = node_config.get(key)
    bounds = [(f"node config 'num-partitions' = {n}", n)
              for n in [node_config.get("num-partitions")] if _is_int(n)]
    bounds += [(f"run config 'num_clients' = {n}", n)
               for n in [context.run_config.get("num_clients")] if _is_int(n)]
    limit = min(bounds, key=lambda b: b[1]) if bounds else None
    if not _is_int(value) or value < 0 or (limit is not None and value >= limit[1]):
        expected = (f"an integer in [0, {limit[1]}) ({limit[0]})" if limit is not None
                    else "a non-negative integer")
        raise ValueError(
            f"node config {key!r} = {value!r}, expected {expected}; set 'client-id' in the "
            "SuperNode's --node-config (deployment) or 'partition-id' (simulation)")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def client_id_mod(msg: Message, context: Context,
                  call_next: Callable[[Message, Context], Message]) -> Message:
    """Flower mod: answer ``query.client_id`` with :func:`node_client_id`; pass the rest.

    Raises:
        ValueError: If the node config holds no valid client id (Flower turns it into an
            error reply; the server's directory leaves the node out and asks again later).
    """
    if msg.metadata.message_type != CLIENT_ID_QUERY:
        return call_next(msg, context)
    content = RecordDict({"client": ConfigRecord({CLIENT_ID_KEY: node_client_id(context)})})
    return Message(content, reply_to=msg)


def _wrap_batch(inner: BatchHandler) -> BatchHandler:
    """Batches pass through ``client_id_mod`` unchanged; id queries are its own to answer."""
    return BatchHandler(
        accepts=lambda msg, context: (msg.metadata.message_type != CLIENT_ID_QUERY
                                      and inner.accepts(msg, context)),
        run=inner.run)


client_id_mod.wrap_batch = _wrap_batch  # type: ignore[attr-defined]


def _handled_by_client_id_mod(msg: Message, context: Context) -> Message:
    raise RuntimeError("query.client_id reached its handler: client_id_mod answers it")


def register_client_id_query(app: ClientApp) -> ClientApp:
    """Give ``app`` a ``query.client_id`` handler, answered by :func:`client_id_mod`.

    Needed by ClientApps that register handlers with ``@app.train`` etc. (see the module
    docstring); the app-level mods run around it as around every handler.

    Returns:
        ``app``, for chaining.

    Raises:
        ValueError: If ``app`` already has a ``query.client_id`` handler, or was built from a
            ``client_fn`` (then ``mods=[client_id_mod]`` is enough).
    """
    app.query(_ACTION, mods=[client_id_mod])(_handled_by_client_id_mod)
    return app
