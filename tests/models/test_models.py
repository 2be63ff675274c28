"""Tests for fedkit.models: architectures, parameter counts, seeded building, validation."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, stack_module_state

from fedkit.models import (
    MODEL_NAMES,
    FedAvgCNN,
    LeNet5,
    LogisticRegression,
    build_model,
)

_SHAPES = {"lenet5": (3, 32, 32), "fedavg-cnn": (3, 32, 32), "logreg": (3, 32, 32)}


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_lenet5_has_62006_parameters_and_layer_shapes():
    model = LeNet5(num_classes=10)
    assert _num_params(model) == 62_006
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "conv1.weight": (6, 3, 5, 5),
        "conv1.bias": (6,),
        "conv2.weight": (16, 6, 5, 5),
        "conv2.bias": (16,),
        "fc1.weight": (120, 400),
        "fc1.bias": (120,),
        "fc2.weight": (84, 120),
        "fc2.bias": (84,),
        "fc3.weight": (10, 84),
        "fc3.bias": (10,),
    }


@pytest.mark.parametrize(
    ("input_shape", "fc1_in", "count"),
    # conv 3*64*25+64 + 64*64*25+64, fc1 fc1_in*384+384, fc2 384*192+192, fc3 192*10+10
    [((3, 32, 32), 4096, 1_756_426), ((3, 24, 24), 2304, 1_068_298)],
)
def test_fedavg_cnn_parameter_count(input_shape, fc1_in, count):
    model = FedAvgCNN(input_shape=input_shape, num_classes=10)
    assert model.fc1.in_features == fc1_in
    assert model.conv1.padding == (2, 2) and model.conv2.out_channels == 64
    assert (model.fc1.out_features, model.fc2.out_features) == (384, 192)
    assert _num_params(model) == count


def test_logistic_regression_is_one_linear_layer():
    model = LogisticRegression(num_features=12, num_classes=4)
    x = torch.randn(5, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    want = x.reshape(5, 12) @ model.linear.weight.T + model.linear.bias
    torch.testing.assert_close(model(x), want)
    assert _num_params(model) == 12 * 4 + 4


@pytest.mark.parametrize(
    ("name", "input_shape", "num_classes"),
    [
        ("lenet5", (3, 32, 32), 10),
        ("lenet5", (3, 32, 32), 7),
        ("fedavg-cnn", (3, 32, 32), 10),
        ("fedavg-cnn", (1, 28, 28), 62),
        ("logreg", (3, 32, 32), 10),
        ("logreg", (5,), 2),
    ],
)
def test_output_shapes(name, input_shape, num_classes):
    model = build_model(name, input_shape=input_shape, num_classes=num_classes, seed=0)
    out = model(torch.zeros(4, *input_shape))
    assert out.shape == (4, num_classes) and out.dtype == torch.float32
    assert model.training


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_build_model_deterministic_in_seed(name):
    shape = _SHAPES[name]
    a = build_model(name, input_shape=shape, num_classes=10, seed=7).state_dict()
    b = build_model(name, input_shape=shape, num_classes=10, seed=7).state_dict()
    c = build_model(name, input_shape=shape, num_classes=10, seed=8).state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.equal(a[k], c[k]) for k in a)  # every tensor differs


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_build_model_leaves_global_rng_alone(name):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = build_model(name, input_shape=_SHAPES[name], num_classes=10, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # the global state does not leak into the initialisation either
    second = build_model(name, input_shape=_SHAPES[name], num_classes=10, seed=1)
    assert all(
        torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters(), strict=True)
    )


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_models_work_under_vmap(name):
    """The batched grid stacks client models; vmap must equal separate forward passes."""
    models = [build_model(name, input_shape=_SHAPES[name], num_classes=10, seed=s) for s in (0, 1)]
    params, buffers = stack_module_state(models)
    x = torch.randn(2, 3, *_SHAPES[name], generator=torch.Generator().manual_seed(0))

    def call(p, b, xb):
        return functional_call(models[0], (p, b), (xb,))

    out = torch.vmap(call)(params, buffers, x)
    for i, model in enumerate(models):
        torch.testing.assert_close(out[i], model(x[i]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"name": "resnet18"},
            ValueError,
            r"unknown model name 'resnet18'; expected one of 'lenet5', 'fedavg-cnn', 'logreg'",
        ),
        ({"name": "LeNet5"}, ValueError, r"unknown model name 'LeNet5'"),
        ({"name": None}, ValueError, r"unknown model name None"),
        (
            {"input_shape": (1, 28, 28)},
            ValueError,
            r"build_model\('lenet5'\): input_shape must be \(3, 32, 32\).*got \(1, 28, 28\)",
        ),
        ({"input_shape": (3, 24, 24)}, ValueError, r"input_shape must be \(3, 32, 32\)"),
        ({"input_shape": ()}, ValueError, r"input_shape must be a non-empty tuple .* got \(\)"),
        ({"input_shape": (3, 0, 32)}, ValueError, r"positive integers .* got \(3, 0, 32\)"),
        ({"input_shape": "3x32x32"}, ValueError, r"input_shape must be a tuple .* got '3x32x32'"),
        (
            {"name": "fedavg-cnn", "input_shape": (3072,)},
            ValueError,
            r"FedAvgCNN: input_shape must be \(channels, height, width\) .* got \(3072,\)",
        ),
        (
            {"name": "fedavg-cnn", "input_shape": (3, 3, 32)},
            ValueError,
            r"height and width >= 4, got \(3, 3, 32\)",
        ),
        ({"num_classes": 1}, ValueError, r"LeNet5: num_classes must be an integer >= 2, got 1"),
        (
            {"name": "logreg", "num_classes": 2.0},
            ValueError,
            r"LogisticRegression: num_classes must be an integer >= 2, got 2.0",
        ),
        (
            {"name": "fedavg-cnn", "num_classes": True},
            ValueError,
            r"FedAvgCNN: num_classes must be an integer >= 2, got True",
        ),
        ({"seed": "0"}, TypeError, r"seed parts must be integers, got str"),
    ],
)
def test_build_model_errors(kwargs, error, match):
    args = {"name": "lenet5", "input_shape": (3, 32, 32), "num_classes": 10, "seed": 0}
    args.update(kwargs)
    name = args.pop("name")
    with pytest.raises(error, match=match):
        build_model(name, **args)


def test_logistic_regression_rejects_bad_num_features():
    with pytest.raises(ValueError, match=r"num_features must be a positive integer, got 0"):
        LogisticRegression(num_features=0, num_classes=3)
