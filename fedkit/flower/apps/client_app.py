"""fedkit's ClientApp: local SGD on the client's partition, on Flower's Message API.

Handlers:

* ``train``: load the global arrays, run local SGD with the round's learning rate from the
  server's config and the static settings of the run config, reply with the local model and
  the metrics ``num-examples``, ``train-loss`` and ``num-steps`` (the steps are in
  :mod:`fedkit.flower.apps.client_train`). FedLaAvg's client-delta mode is the public
  :func:`~fedkit.flower.mods.fedlaavg_mod` around it, as in any user's ClientApp: it turns
  the model into ΔG_i and keeps G_i. The minibatch
  order comes from the stream ``(seed, "local-sgd", round, client_id)``, so a client's reply
  depends only on the seed, the round, its id and the model it received -- not on the runtime.
  Under secure aggregation both run inside :func:`~fedkit.flower.secagg.mod.secagg_mod`,
  which masks the reply; with ``delta-bound`` in the config, ΔG_i is clipped to that bound
  and the client stores G_i^old + the clipped ΔG_i -- exactly what the server folds.
  ``train`` is batchable: a grid that executes messages together (the batched in-process
  engine) trains a round's clients in one computation through
  :data:`~fedkit.flower.apps.batched_train.train_batch_handler`, registered with the same
  mods (:mod:`fedkit.flower.runtime.batching`; each mod batches through its ``wrap_batch``).
* ``evaluate``: federated evaluation of the received arrays on this client's share of the
  test set (every N-th test sample from its client id on: ``test[client_id::N]``); replies
  ``eval_loss``, ``eval_acc`` and ``num-examples``. A client that the client-side availability
  scenario marks offline declines, as for ``train``.
* ``query.client_id``: report the stable client id through the public
  :func:`~fedkit.flower.mods.client_id_mod` (see ``fedkit.algorithms.directory``).
* ``train.submodel`` / ``evaluate.submodel``: the submodel task
  (:mod:`fedkit.flower.submodel.client`).

Importing this module is light: the handlers import torch, the data and the training code when
first called, so a process that answers only a client-id query never imports torch.
:func:`warm_up` imports them ahead, for a long-lived process (:mod:`fedkit.deploy.worker`).
"""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedkit.algorithms.replies import ARRAYS_KEY, METRICS_KEY
from fedkit.flower.mods import fedlaavg_mod, register_client_id_query, secagg_mod
from fedkit.flower.runtime.batching import BatchHandler, BatchItem, batchable

__all__ = ["TRAIN_MODS", "app", "warm_up"]

TRAIN_MODS = [secagg_mod, fedlaavg_mod]
"""The mods around the ``train`` handler, in Flower and in its batch handler alike (client
clip -> mask: ``secagg_mod`` outermost)."""

app = ClientApp()
register_client_id_query(app)


@app.train("submodel")
def _submodel_train(msg: Message, context: Context) -> Message:
    from fedkit.flower.submodel.client import submodel_train

    return submodel_train(msg, context)


@app.evaluate("submodel")
def _submodel_evaluate(msg: Message, context: Context) -> Message:
    from fedkit.flower.submodel.client import submodel_evaluate

    return submodel_evaluate(msg, context)


@app.train(mods=TRAIN_MODS)
def train(msg: Message, context: Context) -> Message:
    """Run local SGD from the received model; reply with the local model (or decline it)."""
    from fedkit.flower.apps.client_train import (
        ClientOffline,
        finish_train,
        offline_reply,
        prepare_train,
        train_task,
    )

    try:
        task = prepare_train(msg, context)
    except ClientOffline as exc:
        return offline_reply(msg, exc)
    local, result = train_task(task)
    return Message(finish_train(task, local, result), reply_to=msg)


def _batch_accepts(msg: Message, context: Context) -> bool:
    from fedkit.flower.apps.batched_train import train_batch_handler

    return train_batch_handler.accepts(msg, context)


def _batch_run(items: list[BatchItem], device: str) -> list[Message]:
    from fedkit.flower.apps.batched_train import train_batch_handler

    return train_batch_handler.run(items, device)


# fedkit.flower.apps.batched_train's handler, imported when first used.
batchable(app, "train", BatchHandler(accepts=_batch_accepts, run=_batch_run), mods=TRAIN_MODS)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate the received arrays on this client's share of the test set.

    A client that client-side availability enforcement marks offline declines
    (:func:`~fedkit.flower.apps.client_train.offline_reply`).
    """
    from fedkit.flower.apps.client_train import ClientOffline, offline_reply
    from fedkit.flower.apps.task import (
        availability_model,
        client_id_of,
        load_data,
        model_with_arrays,
        node_run_config,
    )
    from fedkit.training import evaluate as evaluate_model

    cfg = node_run_config(context)
    client_id = client_id_of(context, cfg.num_clients)
    data = load_data(cfg)
    if cfg.availability_enforce == "client" and cfg.availability != "always":
        server_round = int(msg.content["config"]["server-round"])
        if not availability_model(cfg, data).available(server_round)[client_id]:
            return offline_reply(msg, ClientOffline(
                f"client {client_id} is offline in round {server_round} according to "
                f"availability scenario {cfg.availability!r}; it declines the work"))
    indices = np.arange(client_id, len(data.test.y), cfg.num_clients)
    result = evaluate_model(model_with_arrays(cfg, data, msg.content[ARRAYS_KEY]), data.test,
                            indices=indices)
    metrics = MetricRecord({"eval_loss": result.loss, "eval_acc": result.accuracy,
                            "num-examples": result.num_examples})
    return Message(RecordDict({METRICS_KEY: metrics}), reply_to=msg)


def warm_up() -> None:
    """Import everything the handlers use and pay torch's one-time costs, in this process.

    The handlers import torch, the data and the training code when first called, so that
    ``import fedkit.flower.apps.client_app`` stays light (a message that needs no torch,
    e.g. the client-id query, does not pay for it). A long-lived process that will run
    many messages (:mod:`fedkit.deploy.worker`) calls this once before it takes work: it
    also builds and steps a ``torch.optim.SGD``, whose first use imports ``torch._dynamo``
    (a second or more), and runs one forward/backward pass.
    """
    import torch

    import fedkit.flower.apps.batched_train  # noqa: F401 - imported for its side: loaded
    import fedkit.flower.apps.client_train  # noqa: F401
    import fedkit.flower.submodel.client  # noqa: F401
    import fedkit.training  # noqa: F401

    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.zeros(3, 4)),
                                             torch.zeros(3, dtype=torch.long))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
