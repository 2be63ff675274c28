"""A quickstart-style Flower ClientApp with no fedkit code (shared by the strategy tests).

Its "model" is two numpy arrays; "training" moves every weight towards the client's own
target (partition id + 1) by half the distance, so the replies are easy to derive by hand.
It reports the metric names of Flower's quickstarts (``train_loss``, ``eval_loss``,
``eval_acc``) and ``num-examples`` = 10 * (partition id + 1).
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

INITIAL = ArrayRecord({"w": Array(np.zeros((3, 2), np.float32)),
                       "b": Array(np.zeros(2, np.float32))})


def num_examples(partition_id: int) -> int:
    return 10 * (partition_id + 1)


def quickstart_app(*, client_id_query: bool = True, evaluate: bool = True,
                   send_num_examples: bool = True) -> ClientApp:
    """The ClientApp; ``client_id_query`` stands in for fedkit's client-id mod."""
    app = ClientApp()

    if client_id_query:
        @app.query("client_id")
        def query(msg: Message, context: Context) -> Message:
            client = ConfigRecord({"client-id": int(context.node_config["partition-id"])})
            return Message(RecordDict({"client": client}), reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        received = msg.content["arrays"]
        target = float(pid + 1)
        local = ArrayRecord({k: Array(((a.numpy() + target) / 2).astype(np.float32))
                             for k, a in received.items()})
        loss = float(sum(np.sum((a.numpy() - target) ** 2) for a in received.values()))
        metrics = {"train_loss": loss}
        if send_num_examples:
            metrics["num-examples"] = num_examples(pid)
        return Message(RecordDict({"arrays": local, "metrics": MetricRecord(metrics)}),
                       reply_to=msg)

    if evaluate:
        @app.evaluate()
        def evaluate_fn(msg: Message, context: Context) -> Message:
            pid = int(context.node_config["partition-id"])
            w = msg.content["arrays"]["w"].numpy()
            metrics = MetricRecord({"eval_loss": float(np.mean(w)) + pid,
                                    "eval_acc": 1.0 / (pid + 1),
                                    "num-examples": num_examples(pid)})
            return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app
