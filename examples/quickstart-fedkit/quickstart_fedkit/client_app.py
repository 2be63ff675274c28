"""The ClientApp: a quickstart ``@app.train`` / ``@app.evaluate``, plus fedkit's mods.

The only fedkit lines are the import, ``mods=[...]`` and ``register_client_id_query``: with
them the same handlers serve FedAvg, FedLaAvg (client-delta), MIFA, FedAU, FedVARP, Flower's
own strategies, and rounds under secure aggregation.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedkit.flower.mods import (  # fedkit
    client_id_mod,
    fedlaavg_mod,
    register_client_id_query,
    secagg_mod,
)
from quickstart_fedkit.task import accuracy, client_data, train

app = ClientApp(mods=[client_id_mod, secagg_mod, fedlaavg_mod])  # fedkit: the mods
register_client_id_query(app)  # fedkit: route query.client_id to client_id_mod


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    client = int(context.node_config["partition-id"])
    seed = int(context.run_config["seed"])
    config = msg.content["config"]
    x, y = client_data(seed, client)
    rng = np.random.default_rng([seed, 3, int(config["server-round"]), client])
    model, loss = train(msg.content["arrays"], x, y, float(config["lr"]), rng)
    metrics = MetricRecord({"num-examples": len(y), "train_loss": loss})
    return Message(RecordDict({"arrays": model, "metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    x, y = client_data(int(context.run_config["seed"]), int(context.node_config["partition-id"]))
    loss, acc = accuracy(msg.content["arrays"], x, y)
    metrics = MetricRecord({"num-examples": len(y), "eval_loss": loss, "eval_acc": acc})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
