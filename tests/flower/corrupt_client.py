"""A ClientApp that corrupts some replies (shared by the run tests)."""

import numpy as np
from flwr.app import Array, ArrayRecord, Message

from fedkit.flower.apps.client_app import app as client_app


def corrupting_client(msg: Message, context):
    """The real ClientApp, except client 0 sends a wrong shape and client 1 NaN values."""
    reply = client_app(msg, context)
    pid = context.node_config["partition-id"]
    if msg.metadata.message_type != "train" or pid not in (0, 1):
        return reply
    arrays = reply.content["arrays"]
    name = list(arrays.keys())[0]
    value = arrays[name].numpy()
    bad = np.zeros(value.shape[:-1] + (value.shape[-1] + 1,), value.dtype) if pid == 0 \
        else np.full_like(value, np.nan)
    reply.content["arrays"] = ArrayRecord({**{k: arrays[k] for k in arrays}, name: Array(bad)})
    return reply
