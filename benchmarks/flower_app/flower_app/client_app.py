"""The ClientApp: Flower's Message API, as in Flower's quickstart-pytorch (train only)."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from flower_app.task import client_data, new_model, train

app = ClientApp()


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Train the received model on this node's data; reply with it and the metrics."""
    cfg = context.run_config
    client = int(context.node_config.get("client-id", context.node_config.get("partition-id", 0)))
    model = new_model()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    x, y = client_data(int(cfg["seed"]), client)
    server_round = int(msg.content["config"]["server-round"])
    loss = train(model, x, y, lr=float(msg.content["config"]["lr"]),
                 steps=int(cfg["local-steps"]), batch_size=int(cfg["batch-size"]),
                 seed=1000 * server_round + client)
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()),
                          "metrics": MetricRecord({"train_loss": loss, "num-examples": len(y)})})
    return Message(content=content, reply_to=msg)
