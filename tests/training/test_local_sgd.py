"""Tests for fedkit.training.local_sgd: the minibatch rule, determinism, scaling, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fedkit.data import Split
from fedkit.models import build_model
from fedkit.training import LocalSGDConfig, TrainResult, evaluate, train_local


def _mlp(seed: int, num_features: int = 2, num_classes: int = 3) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return nn.Sequential(nn.Linear(num_features, 8), nn.ReLU(), nn.Linear(8, num_classes))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _reference_sgd(
    model,
    split,
    indices,
    *,
    lr,
    batch_size,
    num_steps,
    seed,
    loss_scale=1.0,
    momentum=0.0,
    weight_decay=0.0,
):
    """The minibatch rule written out by hand: one randperm per pass, consecutive batches."""
    gen = _gen(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    idx = torch.as_tensor(indices, dtype=torch.int64)
    losses, sizes, steps = [], [], 0
    while steps < num_steps:
        order = idx[torch.randperm(len(idx), generator=gen)]
        for batch in order.split(batch_size):
            if steps == num_steps:
                break
            opt.zero_grad()
            loss = F.cross_entropy(model(split.features(batch)), split.y[batch])
            (loss_scale * loss).backward()
            opt.step()
            losses.append(loss.item())
            sizes.append(len(batch))
            steps += 1
    return sum(loss * n for loss, n in zip(losses, sizes, strict=True)) / sum(sizes)


class _Recorder(nn.Module):
    """Wraps a model and records the first feature (the sample id) of every batch it sees."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.batches: list[list[int]] = []
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append([int(v) for v in x[:, 0]])
        self.modes.append(self.training)
        return self.inner(x)


@pytest.fixture
def id_split(make_split):
    """20 samples whose first feature is the sample id (to see which samples a batch holds)."""
    ids = torch.arange(20, dtype=torch.float32)
    x = torch.stack([ids, torch.sin(ids), torch.cos(ids)], dim=1)
    return make_split(x, torch.arange(20) % 2, 2)


# ---------------------------------------------------------------- the minibatch rule


@pytest.mark.parametrize(
    ("steps", "epochs", "momentum", "weight_decay"),
    [(7, None, 0.0, 0.0), (25, None, 0.9, 1e-3), (None, 3, 0.0, 0.0), (None, 2, 0.5, 0.0)],
)
def test_matches_hand_written_loop(blobs, steps, epochs, momentum, weight_decay):
    indices = np.arange(3, 120, 7)  # 17 samples, not a multiple of the batch size
    config = LocalSGDConfig(
        lr=0.05,
        batch_size=5,
        local_steps=steps,
        local_epochs=epochs,
        momentum=momentum,
        weight_decay=weight_decay,
        loss_scale=1.5,
    )
    model, ref = _mlp(0), _mlp(0)
    result = train_local(model, blobs, indices, config, generator=_gen(42))
    num_steps = steps if steps is not None else epochs * math.ceil(17 / 5)
    ref_loss = _reference_sgd(
        ref,
        blobs,
        indices,
        lr=0.05,
        batch_size=5,
        num_steps=num_steps,
        seed=42,
        loss_scale=1.5,
        momentum=momentum,
        weight_decay=weight_decay,
    )
    for got, want in zip(model.parameters(), ref.parameters(), strict=True):
        assert torch.equal(got, want)
    assert result == TrainResult(
        num_examples=17, num_steps=num_steps, mean_loss=pytest.approx(ref_loss, rel=1e-6)
    )


def test_lenet5_on_uint8_images_matches_hand_written_loop():
    gen = _gen(11)
    images = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=gen)
    split = Split(x=images, y=torch.randint(0, 10, (12,), generator=gen), num_classes=10)
    model = build_model("lenet5", input_shape=split.input_shape, num_classes=10, seed=0)
    ref = build_model("lenet5", input_shape=split.input_shape, num_classes=10, seed=0)
    config = LocalSGDConfig(lr=0.01, batch_size=5, local_steps=4, loss_scale=3.0)
    result = train_local(model, split, np.arange(1, 12), config, generator=_gen(5))
    ref_loss = _reference_sgd(
        ref, split, np.arange(1, 12), lr=0.01, batch_size=5, num_steps=4, seed=5, loss_scale=3.0
    )
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), ref.parameters(), strict=True))
    assert result.mean_loss == pytest.approx(ref_loss, rel=1e-6)


def test_exactly_local_steps_with_partial_batches(id_split):
    model = _Recorder(build_model("logreg", input_shape=(3,), num_classes=2, seed=0))
    indices = torch.tensor([1, 4, 6, 9, 13, 17, 19])  # 7 samples, batch 3: sizes 3, 3, 1
    config = LocalSGDConfig(lr=0.01, batch_size=3, local_steps=8)
    result = train_local(model, id_split, indices, config, generator=_gen(1))
    assert result.num_steps == 8
    assert [len(b) for b in model.batches] == [3, 3, 1, 3, 3, 1, 3, 3]
    passes = [sum(model.batches[i : i + 3], []) for i in (0, 3)]
    for seen in passes:  # every full pass is a permutation of the client's indices
        assert sorted(seen) == indices.tolist()
    assert set(sum(model.batches[6:], [])) <= set(indices.tolist())


def test_local_epochs_visit_every_sample_once_per_epoch(id_split):
    model = _Recorder(build_model("logreg", input_shape=(3,), num_classes=2, seed=0))
    indices = np.array([0, 2, 3, 5, 8, 11, 12, 15, 16, 18, 19])  # 11 samples, batch 4
    config = LocalSGDConfig(lr=0.01, batch_size=4, local_epochs=3)
    result = train_local(model, id_split, indices, config, generator=_gen(2))
    assert result.num_steps == 3 * 3 == len(model.batches)
    epochs = [sum(model.batches[i : i + 3], []) for i in (0, 3, 6)]
    for seen in epochs:
        assert sorted(seen) == indices.tolist()
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]  # reshuffled per pass


def test_fewer_samples_than_batch_size_trains_full_batch(id_split):
    model = _Recorder(build_model("logreg", input_shape=(3,), num_classes=2, seed=0))
    config = LocalSGDConfig(lr=0.01, batch_size=50, local_steps=3)
    train_local(model, id_split, [7, 3], config, generator=_gen(0))
    assert [sorted(b) for b in model.batches] == [[3, 7]] * 3


# ---------------------------------------------------------------- determinism and effect


def test_same_generator_seed_same_parameters(blobs):
    config = LocalSGDConfig(lr=0.1, batch_size=4, local_steps=30)
    runs = []
    for seed in (5, 5, 6):
        model = _mlp(0)
        result = train_local(model, blobs, np.arange(120), config, generator=_gen(seed))
        runs.append((_params(model), result))
    (p5a, r5a), (p5b, r5b), (p6, _) = runs
    assert all(torch.equal(a, b) for a, b in zip(p5a, p5b, strict=True))
    assert r5a == r5b
    assert not all(torch.equal(a, b) for a, b in zip(p5a, p6, strict=True))


def test_training_drives_loss_down_and_accuracy_up(blobs):
    model = build_model("logreg", input_shape=(2,), num_classes=3, seed=3)
    before = evaluate(model, blobs)
    config = LocalSGDConfig(lr=0.1, batch_size=8, local_steps=300)
    result = train_local(model, blobs, torch.arange(120), config, generator=_gen(0))
    after = evaluate(model, blobs)
    assert result.num_steps == 300
    assert after.loss < 0.1 < before.loss
    assert after.accuracy >= 0.98 and after.accuracy > before.accuracy
    assert result.mean_loss < before.loss


def test_inputs_untouched_mode_restored_grads_discarded(blobs):
    model = _Recorder(_mlp(0))
    model.eval()
    for p in model.parameters():
        p.grad = torch.full_like(p, 100.0)  # stale gradients must not leak into step 1
    indices = np.arange(0, 120, 3)
    before = indices.copy()
    config = LocalSGDConfig(lr=0.05, batch_size=6, local_steps=4)
    train_local(model, blobs, indices, config, generator=_gen(9))
    assert np.array_equal(indices, before)
    assert model.modes == [True] * 4 and not model.training and not model.inner.training
    assert all(p.grad is None for p in model.parameters())
    ref = _mlp(0)
    _reference_sgd(ref, blobs, indices, lr=0.05, batch_size=6, num_steps=4, seed=9)
    for got, want in zip(model.inner.parameters(), ref.parameters(), strict=True):
        assert torch.equal(got, want)


# ---------------------------------------------------------------- loss_scale property


def test_loss_scale_two_equals_double_lr_exactly(blobs):
    a, b = _mlp(4), _mlp(4)
    ra = train_local(
        a,
        blobs,
        np.arange(120),
        LocalSGDConfig(lr=0.01, batch_size=5, local_steps=20, loss_scale=2.0),
        generator=_gen(3),
    )
    rb = train_local(
        b,
        blobs,
        np.arange(120),
        LocalSGDConfig(lr=0.02, batch_size=5, local_steps=20),
        generator=_gen(3),
    )
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert ra == rb


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(0.1, 10.0), lr=st.floats(1e-3, 0.05), seed=st.integers(0, 2**31))
def test_loss_scale_is_learning_rate_scale(make_split, scale, lr, seed):
    gen = _gen(seed)
    x, y = torch.randn(24, 2, generator=gen), torch.randint(0, 3, (24,), generator=gen)
    split = make_split(x, y, 3)
    a, b = _mlp(seed % 1000), _mlp(seed % 1000)
    train_local(
        a,
        split,
        np.arange(24),
        LocalSGDConfig(lr=lr, batch_size=4, local_steps=6, loss_scale=scale),
        generator=_gen(seed),
    )
    train_local(
        b,
        split,
        np.arange(24),
        LocalSGDConfig(lr=lr * scale, batch_size=4, local_steps=6),
        generator=_gen(seed),
    )
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, r"LocalSGDConfig\.lr must be a finite number > 0.0, got 0.0"),
        ({"lr": -0.1}, r"LocalSGDConfig\.lr .* got -0.1"),
        ({"lr": float("nan")}, r"LocalSGDConfig\.lr .* got nan"),
        ({"lr": float("inf")}, r"LocalSGDConfig\.lr .* got inf"),
        ({"lr": True}, r"LocalSGDConfig\.lr .* got True"),
        ({"lr": "0.1"}, r"LocalSGDConfig\.lr .* got '0.1'"),
        ({"batch_size": 0}, r"LocalSGDConfig\.batch_size must be a positive integer, got 0"),
        ({"batch_size": 2.5}, r"LocalSGDConfig\.batch_size .* got 2.5"),
        ({"batch_size": True}, r"LocalSGDConfig\.batch_size .* got True"),
        ({"local_steps": None}, r"exactly one of local_steps and local_epochs.*None.*None"),
        ({"local_epochs": 1}, r"exactly one of local_steps and local_epochs.*=10.*=1"),
        ({"local_steps": 0}, r"LocalSGDConfig\.local_steps must be a positive integer, got 0"),
        (
            {"local_steps": None, "local_epochs": -1},
            r"LocalSGDConfig\.local_epochs must be a positive integer, got -1",
        ),
        ({"loss_scale": 0.0}, r"LocalSGDConfig\.loss_scale must be a finite number > 0.0"),
        ({"loss_scale": float("inf")}, r"LocalSGDConfig\.loss_scale .* got inf"),
        ({"weight_decay": -1e-3}, r"LocalSGDConfig\.weight_decay .* >= 0.0, got -0.001"),
        ({"momentum": -0.1}, r"LocalSGDConfig\.momentum .* >= 0.0, got -0.1"),
        ({"momentum": 1.0}, r"LocalSGDConfig\.momentum must be in \[0, 1\), got 1.0"),
    ],
)
def test_config_validation(kwargs, match):
    base = {"lr": 0.1, "batch_size": 5, "local_steps": 10}
    with pytest.raises(ValueError, match=match):
        LocalSGDConfig(**{**base, **kwargs})


def test_config_is_frozen_and_keyword_only():
    config = LocalSGDConfig(lr=0.1, batch_size=5, local_epochs=2)
    with pytest.raises(AttributeError):
        config.lr = 0.2  # type: ignore[misc]
    with pytest.raises(TypeError):
        LocalSGDConfig(0.1, 5, 10)  # type: ignore[misc]
    assert config.num_steps(11) == 2 * 3
    assert LocalSGDConfig(lr=0.1, batch_size=5, local_steps=7).num_steps(1000) == 7


@pytest.mark.parametrize(
    ("indices", "match"),
    [
        ([], r"train_local: indices is empty"),
        (np.array([], dtype=np.int64), r"train_local: indices is empty"),
        (torch.tensor([[0, 1]]), r"train_local: indices must be 1-D, got shape \(1, 2\)"),
        (
            np.array([0.0, 1.0]),
            r"train_local: indices must have an integer dtype, got dtype float64",
        ),
        (torch.tensor([True, False]), r"indices must have an integer dtype, got dtype torch.bool"),
        ([0, 120], r"train_local: index 120 is out of range; expected positions in \[0, 120\)"),
        ([-1, 3], r"train_local: index -1 is out of range"),
    ],
)
def test_bad_indices_rejected(blobs, indices, match):
    config = LocalSGDConfig(lr=0.1, batch_size=5, local_steps=1)
    with pytest.raises(ValueError, match=match):
        train_local(_mlp(0), blobs, indices, config, generator=_gen(0))


def test_bad_config_or_generator_type_rejected(blobs):
    config = LocalSGDConfig(lr=0.1, batch_size=5, local_steps=1)
    with pytest.raises(TypeError, match=r"config must be a LocalSGDConfig, got <class 'dict'>"):
        train_local(_mlp(0), blobs, [0], {"lr": 0.1}, generator=_gen(0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"generator must be a CPU torch.Generator, got 0"):
        train_local(_mlp(0), blobs, [0], config, generator=0)  # type: ignore[arg-type]
