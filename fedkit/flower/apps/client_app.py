"""fedkit's ClientApp: local SGD on the client's partition, on Flower's Message API.

Handlers:

* ``train``: load the global arrays, run local SGD with the round's learning rate from the
  server's config and the static settings of the run config, reply with the local model (or,
  when the server asks for ``reply = "gradient-delta"``, FedLaAvg's ΔG_i: see
  :mod:`fedkit.flower.apps.client_delta`) and the metrics ``num-examples``, ``train-loss`` and
  ``num-steps`` (the steps are in :mod:`fedkit.flower.apps.client_train`). The minibatch
  order comes from the stream ``(seed, "local-sgd", round, client_id)``, so a client's reply
  depends only on the seed, the round, its id and the model it received -- not on the runtime.
  Under secure aggregation the handler runs inside :func:`~fedkit.flower.secagg.mod.secagg_mod`,
  which masks the reply; with ``delta-bound`` in the config, ΔG_i is clipped to that bound
  and the client stores G_i^old + the clipped ΔG_i -- exactly what the server folds.
* ``query.client_id``: report the stable client id (see ``fedkit.algorithms.directory``).
* ``train.submodel`` / ``evaluate.submodel``: the submodel task
  (:mod:`fedkit.flower.submodel.client`).
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from fedkit.algorithms.directory import CLIENT_ID_KEY
from fedkit.flower.apps.client_train import (  # noqa: F401 - the batched grid's
    finish_train,
    local_sgd_config,
    prepare_train,
    train_task,
)
from fedkit.flower.apps.task import client_id_of, node_run_config
from fedkit.flower.secagg.mod import secagg_mod
from fedkit.flower.submodel.client import submodel_evaluate, submodel_train

__all__ = ["app"]

app = ClientApp()
app.train("submodel")(submodel_train)
app.evaluate("submodel")(submodel_evaluate)


@app.query("client_id")
def query_client_id(msg: Message, context: Context) -> Message:
    """Answer the server's directory with this node's stable client id."""
    cfg = node_run_config(context)
    client_id = client_id_of(context, cfg.num_clients)
    return Message(RecordDict({"client": ConfigRecord({CLIENT_ID_KEY: client_id})}), reply_to=msg)


@app.train(mods=[secagg_mod])
def train(msg: Message, context: Context) -> Message:
    """Run local SGD from the received model; reply with the local model or ΔG_i."""
    task = prepare_train(msg, context)
    if isinstance(task, RecordDict):
        return Message(task, reply_to=msg)
    local, result = train_task(task)
    return Message(finish_train(task, context, local, result), reply_to=msg)

