"""Local training and evaluation of torch models on a client's samples.

- :func:`train_local` with :class:`LocalSGDConfig` runs a client's local SGD (C steps or E
  epochs, minibatches from the client's own generator, optionally scaled loss) and returns a
  :class:`TrainResult`;
- :func:`train_local_batched` trains the K clients of a round at once (``vmap`` over stacked
  parameters), with the same result as K calls of :func:`train_local`; :func:`can_batch` says
  whether a model allows it and :class:`ClientJob` describes one client's share;
- :func:`evaluate` returns an :class:`EvalResult` (mean cross-entropy, accuracy).

Nothing here knows about Flower messages; the ClientApp converts records and calls these.
"""

from fedkit.training.batched import ClientJob, can_batch, train_local_batched
from fedkit.training.evaluate import EvalResult, evaluate
from fedkit.training.local_sgd import LocalSGDConfig, TrainResult, train_local

__all__ = [
    "ClientJob",
    "EvalResult",
    "LocalSGDConfig",
    "TrainResult",
    "can_batch",
    "evaluate",
    "train_local",
    "train_local_batched",
]
