"""The task: logistic regression in torch on synthetic per-client data (60 features, 10
classes), as in Flower's quickstart-pytorch but smaller. Ordinary user code: no fedkit."""

from __future__ import annotations

import torch
from torch import nn

NUM_FEATURES, NUM_CLASSES = 60, 10


def new_model() -> nn.Module:
    return nn.Linear(NUM_FEATURES, NUM_CLASSES)


def client_data(seed: int, client: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Client ``client``'s examples (a client-specific shift of a shared labelling rule)."""
    gen = torch.Generator().manual_seed(1000 * seed + client)
    true_w = torch.randn(NUM_FEATURES, NUM_CLASSES, generator=torch.Generator().manual_seed(seed))
    n = 100 + 20 * client
    x = torch.randn(n, NUM_FEATURES, generator=gen) + 0.3 * client
    y = torch.argmax(x @ true_w, dim=1)
    return x, y


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lr: float, steps: int,
          batch_size: int, seed: int) -> float:
    """``steps`` steps of minibatch SGD; returns the mean training loss."""
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(y), (batch_size,), generator=gen)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)
