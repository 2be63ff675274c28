"""Local training and evaluation of torch models on a client's samples.

- :func:`train_local` with :class:`LocalSGDConfig` runs a client's local SGD (C steps or E
  epochs, minibatches from the client's own generator, optionally scaled loss) and returns a
  :class:`TrainResult`;
- :func:`evaluate` returns an :class:`EvalResult` (mean cross-entropy, accuracy).

Nothing here knows about Flower messages; the ClientApp converts records and calls these.
"""

from fedkit.training.evaluate import EvalResult, evaluate
from fedkit.training.local_sgd import LocalSGDConfig, TrainResult, train_local

__all__ = ["EvalResult", "LocalSGDConfig", "TrainResult", "evaluate", "train_local"]
