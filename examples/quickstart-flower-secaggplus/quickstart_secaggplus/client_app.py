"""The same local training as quickstart-fedkit, as the NumPyClient that Flower's SecAgg+
(``secaggplus_mod``, legacy API only in Flower 1.42) requires."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, Context
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod

from quickstart_secaggplus.task import client_data, train


class Client(NumPyClient):
    def __init__(self, seed: int, client: int) -> None:
        self.seed, self.client = seed, client

    def fit(self, parameters, config):
        x, y = client_data(self.seed, self.client)
        arrays = ArrayRecord({"w": Array(parameters[0]), "b": Array(parameters[1])})
        rng = np.random.default_rng([self.seed, 3, int(config["server-round"]), self.client])
        model, loss = train(arrays, x, y, float(config["lr"]), rng)
        return [model["w"].numpy(), model["b"].numpy()], len(y), {"train_loss": loss}


def client_fn(context: Context):
    return Client(int(context.run_config["seed"]),
                  int(context.node_config["partition-id"])).to_client()


app = ClientApp(client_fn=client_fn, mods=[secaggplus_mod])
