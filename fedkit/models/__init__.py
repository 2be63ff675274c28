"""Torch models for fedkit's experiments, and :func:`build_model` to create one by name.

Models return logits (the softmax is part of the cross-entropy loss) and use only out-of-place
functional operations in ``forward``, so they work with ``torch.func.functional_call``/``vmap``.

- ``"lenet5"``: :class:`LeNet5`, input ``(3, 32, 32)`` only (FedLaAvg's CNN);
- ``"fedavg-cnn"``: :class:`FedAvgCNN`, input ``(C, H, W)`` with H, W >= 4 (FedAvg's CNN);
- ``"logreg"``: :class:`LogisticRegression`, any input shape, flattened.
"""

from fedkit.models._registry import MODEL_NAMES, build_model
from fedkit.models.fedavg_cnn import FedAvgCNN
from fedkit.models.lenet import LENET5_INPUT_SHAPE, LeNet5
from fedkit.models.logistic import LogisticRegression

__all__ = [
    "LENET5_INPUT_SHAPE",
    "MODEL_NAMES",
    "FedAvgCNN",
    "LeNet5",
    "LogisticRegression",
    "build_model",
]
