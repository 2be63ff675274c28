"""fedkit's ClientApp: local SGD on the client's partition, on Flower's Message API.

Handlers:

* ``train``: load the global arrays, run local SGD with the round's learning rate from the
  server's config and the static settings of the run config, reply with the local model and
  the metrics ``num-examples``, ``train-loss`` and ``num-steps``. The minibatch order comes
  from the stream ``(seed, "local-sgd", round, client_id)``, so a client's reply depends only
  on the seed, the round, its id and the model it received -- not on the runtime.
* ``query.client_id``: report the stable client id (see ``fedkit.algorithms.directory``).
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedkit.algorithms.directory import CLIENT_ID_KEY
from fedkit.algorithms.replies import ARRAYS_KEY, METRICS_KEY
from fedkit.config import RunConfig
from fedkit.flower.task import arrays_of, client_id_of, load_data, model_with_arrays
from fedkit.seeding import torch_generator
from fedkit.training import LocalSGDConfig, train_local

__all__ = ["app", "local_sgd_config"]

app = ClientApp()


def local_sgd_config(cfg: RunConfig, lr: float) -> LocalSGDConfig:
    """Local SGD settings of a round: the run config's, with this round's learning rate."""
    return LocalSGDConfig(
        lr=lr,
        batch_size=cfg.batch_size,
        local_steps=cfg.local_steps or None,
        local_epochs=None if cfg.local_steps else cfg.local_epochs,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )


@app.query("client_id")
def query_client_id(msg: Message, context: Context) -> Message:
    """Answer the server's directory with this node's stable client id."""
    cfg = RunConfig.from_mapping(context.run_config)
    client_id = client_id_of(context, cfg.num_clients)
    return Message(RecordDict({"client": ConfigRecord({CLIENT_ID_KEY: client_id})}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Run local SGD from the received model and reply with the local model."""
    cfg = RunConfig.from_mapping(context.run_config)
    client_id = client_id_of(context, cfg.num_clients)
    config = msg.content["config"]
    server_round = int(config["server-round"])
    data = load_data(cfg)
    model = model_with_arrays(cfg, data, msg.content[ARRAYS_KEY])
    result = train_local(
        model,
        data.train,
        data.partition[client_id],
        local_sgd_config(cfg, float(config["lr"])),
        generator=torch_generator(cfg.seed, "local-sgd", server_round, client_id),
    )
    metrics = MetricRecord({
        "num-examples": result.num_examples,
        "train-loss": result.mean_loss,
        "num-steps": result.num_steps,
    })
    return Message(RecordDict({ARRAYS_KEY: arrays_of(model), METRICS_KEY: metrics}), reply_to=msg)
