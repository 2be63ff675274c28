"""Tests for fedkit.training.batched: K clients at once equal K sequential train_local calls."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

import fedkit.training.batched as batched_module
from fedkit.data import Split
from fedkit.models import FedAvgCNN, LeNet5, LogisticRegression, build_model
from fedkit.training import (
    ClientJob,
    LocalSGDConfig,
    can_batch,
    train_local,
    train_local_batched,
)

SIZES = (3, 7, 12, 20, 31)  # unequal, one smaller than a batch of 5
LRS = (0.05, 0.02, 0.03, 0.01, 0.04)
SCALES = (1.0, 2.5, 0.5, 1.5, 3.0)
RTOL, ATOL = 1e-4, 1e-5  # observed: at most ~1e-7 apart; margin for other CPUs' rounding


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image_split(shape: tuple[int, int, int], num: int = 80) -> Split:
    gen = _gen(7)
    x = torch.randint(0, 256, (num, *shape), dtype=torch.uint8, generator=gen)
    return Split(x=x, y=torch.randint(0, 10, (num,), generator=gen), num_classes=10)


def _feature_split(num: int = 80) -> Split:
    gen = _gen(8)
    x = torch.randn(num, 12, generator=gen)
    return Split(x=x, y=torch.randint(0, 4, (num,), generator=gen), num_classes=4)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Batches of 5 gain nothing from intra-op threads; on a busy machine they cost a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cases():
    """(model, split) per model: LeNet5 / FedAvgCNN on uint8 images, logreg on features."""
    images = _image_split((3, 32, 32))
    features = _feature_split()
    return {
        "lenet5": (build_model("lenet5", input_shape=(3, 32, 32), num_classes=10, seed=1), images),
        # FedAvgCNN on 16x16 images: 4x cheaper than 32x32, the same code path. (At 32x32 with
        # these seeds one client's result drifts by 1e-5 after 7 steps: a float32 near-tie in
        # a max-pool or ReLU resolves differently; every earlier step agrees to 1e-8.)
        "fedavg-cnn": (
            build_model("fedavg-cnn", input_shape=(3, 16, 16), num_classes=10, seed=2),
            _image_split((3, 16, 16)),
        ),
        "logreg": (build_model("logreg", input_shape=(12,), num_classes=4, seed=3), features),
    }


def _client_indices(num_samples: int, sizes=SIZES) -> list[np.ndarray]:
    perm = np.random.default_rng(0).permutation(num_samples)
    bounds = np.cumsum((0, *sizes))
    return [perm[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _jobs(indices, seed: int = 100) -> list[ClientJob]:
    return [
        ClientJob(indices=idx, generator=_gen(seed + k), lr=LRS[k], loss_scale=SCALES[k])
        for k, idx in enumerate(indices)
    ]


def _sequential(model, states, split, indices, config, seed: int = 100):
    out = []
    for k, idx in enumerate(indices):
        client = copy.deepcopy(model)
        client.load_state_dict(states[k])
        job_config = dataclasses.replace(config, lr=LRS[k], loss_scale=SCALES[k])
        result = train_local(client, split, idx, job_config, generator=_gen(seed + k))
        out.append((client.state_dict(), result))
    return out


def _assert_same(batched, sequential) -> None:
    assert len(batched) == len(sequential)
    for (got_state, got), (want_state, want) in zip(batched, sequential, strict=True):
        assert list(got_state) == list(want_state)
        for name, tensor in want_state.items():
            assert got_state[name].device.type == "cpu"
            assert got_state[name].dtype == tensor.dtype
            torch.testing.assert_close(got_state[name], tensor, rtol=RTOL, atol=ATOL)
        assert (got.num_examples, got.num_steps) == (want.num_examples, want.num_steps)
        assert got.mean_loss == pytest.approx(want.mean_loss, rel=1e-5)


# ---------------------------------------------------------------- equivalence


@pytest.mark.parametrize("name", ["lenet5", "fedavg-cnn", "logreg"])
@pytest.mark.parametrize("schedule", [{"local_steps": 7}, {"local_epochs": 2}])
@pytest.mark.parametrize(("momentum", "weight_decay"), [(0.0, 0.0), (0.9, 1e-3)])
def test_matches_sequential_train_local(cases, name, schedule, momentum, weight_decay):
    model, split = cases[name]
    config = LocalSGDConfig(
        lr=1.0, batch_size=5, momentum=momentum, weight_decay=weight_decay, **schedule
    )
    indices = _client_indices(len(split))
    batched = train_local_batched(model, model.state_dict(), split, _jobs(indices), config)
    sequential = _sequential(model, [model.state_dict()] * 5, split, indices, config)
    _assert_same(batched, sequential)
    if "local_epochs" in schedule:  # unequal step counts: 2, 4, 6, 8, 14
        assert [r.num_steps for _, r in batched] == [2 * -(-n // 5) for n in SIZES]


@pytest.mark.parametrize("schedule", [{"local_steps": 7}, {"local_epochs": 2}])
def test_lenet5_grouped_and_vmap_formulations_agree(cases, monkeypatch, schedule):
    model, split = cases["lenet5"]
    config = LocalSGDConfig(lr=1.0, batch_size=5, momentum=0.9, weight_decay=1e-3, **schedule)
    indices = _client_indices(len(split))
    grouped = train_local_batched(model, model.state_dict(), split, _jobs(indices), config)
    monkeypatch.setattr(batched_module, "is_plain_lenet5", lambda model: False)
    vmapped = train_local_batched(model, model.state_dict(), split, _jobs(indices), config)
    _assert_same(grouped, vmapped)


def test_per_job_start_states_match_sequential(cases):
    model, split = cases["lenet5"]
    states = []
    for k in range(5):
        gen = _gen(50 + k)
        states.append(
            {
                n: t + 0.01 * torch.randn(t.shape, generator=gen)
                for n, t in model.state_dict().items()
            }
        )
    config = LocalSGDConfig(lr=1.0, batch_size=5, local_steps=4, momentum=0.5)
    indices = _client_indices(len(split))
    batched = train_local_batched(model, states, split, _jobs(indices), config)
    _assert_same(batched, _sequential(model, states, split, indices, config))


def test_shared_start_state_equals_one_copy_per_job(cases):
    model, split = cases["logreg"]
    config = LocalSGDConfig(lr=1.0, batch_size=5, local_steps=6)
    indices = _client_indices(len(split))
    shared = train_local_batched(model, model.state_dict(), split, _jobs(indices), config)
    copies = train_local_batched(model, [model.state_dict()] * 5, split, _jobs(indices), config)
    for (a, ra), (b, rb) in zip(shared, copies, strict=True):
        assert ra == rb
        assert all(torch.equal(a[n], b[n]) for n in a)


def test_generators_advance_as_in_sequential_calls(cases):
    model, split = cases["logreg"]
    config = LocalSGDConfig(lr=1.0, batch_size=5, local_epochs=3)
    indices = _client_indices(len(split))
    jobs = _jobs(indices)
    train_local_batched(model, model.state_dict(), split, jobs, config)
    for k, idx in enumerate(indices):
        gen = _gen(100 + k)
        train_local(copy.deepcopy(model), split, idx, config, generator=gen)
        assert torch.equal(jobs[k].generator.get_state(), gen.get_state())


def test_jobs_sharing_one_generator_consume_it_in_job_order(cases):
    model, split = cases["logreg"]
    config = LocalSGDConfig(lr=1.0, batch_size=4, local_steps=5)
    indices = _client_indices(len(split), sizes=(9, 6))
    shared_gen = _gen(3)
    jobs = [ClientJob(indices=idx, generator=shared_gen, lr=0.1) for idx in indices]
    batched = train_local_batched(model, model.state_dict(), split, jobs, config)
    seq_gen = _gen(3)
    for (state, result), idx in zip(batched, indices, strict=True):
        client = copy.deepcopy(model)
        want = train_local(
            client, split, idx, dataclasses.replace(config, lr=0.1), generator=seq_gen
        )
        assert result.mean_loss == pytest.approx(want.mean_loss, rel=1e-5)
        for name, tensor in client.state_dict().items():
            torch.testing.assert_close(state[name], tensor, rtol=RTOL, atol=ATOL)


def test_inputs_are_not_modified_and_states_are_independent(cases):
    model, split = cases["lenet5"]
    before = {n: t.clone() for n, t in model.state_dict().items()}
    start = model.state_dict()
    indices = _client_indices(len(split), sizes=(5, 5))
    kept = [idx.copy() for idx in indices]
    config = LocalSGDConfig(lr=1.0, batch_size=5, local_steps=2)
    out = train_local_batched(model, start, split, _jobs(indices), config)
    assert all(torch.equal(model.state_dict()[n], before[n]) for n in before)
    assert all(np.array_equal(a, b) for a, b in zip(indices, kept, strict=True))
    assert model.training and all(p.grad is None for p in model.parameters())
    pointers = {t.untyped_storage().data_ptr() for state, _ in out for t in state.values()}
    assert len(pointers) == 2 * len(before)  # every returned tensor owns its memory


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_matches_sequential_on_cpu(cases):
    model, split = cases["lenet5"]
    config = LocalSGDConfig(lr=1.0, batch_size=5, local_epochs=2, momentum=0.9)
    indices = _client_indices(len(split))
    batched = train_local_batched(
        model, model.state_dict(), split, _jobs(indices), config, device="cuda"
    )
    sequential = _sequential(model, [model.state_dict()] * 5, split, indices, config)
    for (got, _), (want, _) in zip(batched, sequential, strict=True):
        for name in want:  # cuDNN/cuBLAS rounding differs from the CPU's more than CPU vs CPU
            torch.testing.assert_close(got[name], want[name], rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- can_batch


@pytest.mark.parametrize(
    "model",
    [LeNet5(num_classes=10), FedAvgCNN(input_shape=(3, 8, 8)), LogisticRegression(4, 3)],
)
def test_can_batch_fedkit_models(model):
    assert can_batch(model) == (True, "")


class _WithBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("offset", torch.zeros(3))

    def forward(self, x):
        return self.linear(x + self.offset)


def _frozen() -> nn.Module:
    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    return model


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), "'1' is a BatchNorm1d"),
        (nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5)), "'1' is a Dropout"),
        (_WithBuffer(), "buffer 'offset'"),
        (_frozen(), "parameter 'bias' is frozen"),
        (nn.ReLU(), "no parameters"),
    ],
)
def test_can_batch_refuses_with_a_reason(model, match):
    ok, reason = can_batch(model)
    assert not ok
    assert match in reason


# ---------------------------------------------------------------- validation


def _args(cases, **overrides):
    model, split = cases["logreg"]
    indices = _client_indices(len(split), sizes=(4, 6))
    args = {
        "model": model,
        "start_states": model.state_dict(),
        "data": split,
        "jobs": _jobs(indices),
        "config": LocalSGDConfig(lr=1.0, batch_size=5, local_steps=2),
    }
    args.update(overrides)
    return args


def test_rejects_empty_jobs(cases):
    with pytest.raises(ValueError, match="jobs must be a non-empty sequence of ClientJob"):
        train_local_batched(**_args(cases, jobs=[]))


def test_rejects_start_states_of_wrong_length(cases):
    state = cases["logreg"][0].state_dict()
    with pytest.raises(ValueError, match="holds 3 state dicts for 2 jobs"):
        train_local_batched(**_args(cases, start_states=[state] * 3))


def test_rejects_start_state_with_wrong_keys_or_shapes(cases):
    state = dict(cases["logreg"][0].state_dict())
    with pytest.raises(ValueError, match=r"start_states has keys \['linear.weight'\]"):
        train_local_batched(**_args(cases, start_states={"linear.weight": state["linear.weight"]}))
    bad = {**state, "linear.bias": torch.zeros(5)}
    with pytest.raises(ValueError, match=r"start_states\[1\]\['linear.bias'\] has shape \(5,\)"):
        train_local_batched(**_args(cases, start_states=[state, bad]))


def test_rejects_model_that_cannot_be_batched(cases):
    model = nn.Sequential(nn.Linear(12, 4), nn.BatchNorm1d(4))
    with pytest.raises(ValueError, match="cannot be batched .*BatchNorm1d.*use train_local"):
        train_local_batched(**_args(cases, model=model, start_states=model.state_dict()))


def test_rejects_wrong_config_and_job_types(cases):
    with pytest.raises(TypeError, match="config must be a LocalSGDConfig"):
        train_local_batched(**_args(cases, config={"lr": 0.1}))
    with pytest.raises(TypeError, match=r"jobs\[0\] must be a ClientJob"):
        train_local_batched(**_args(cases, jobs=[{"indices": [0]}]))


def test_rejects_out_of_range_indices(cases):
    jobs = [ClientJob(indices=np.array([0, 80]), generator=_gen(0), lr=0.1)]
    with pytest.raises(ValueError, match=r"jobs\[0\]: index 80 is out of range"):
        train_local_batched(**_args(cases, jobs=jobs))


class _CudaLookingGenerator(torch.Generator):
    @property
    def device(self) -> torch.device:
        return torch.device("cuda")


def test_client_job_validation():
    idx = np.arange(3)
    with pytest.raises(TypeError, match="generator must be a CPU torch.Generator.*device cuda"):
        ClientJob(indices=idx, generator=_CudaLookingGenerator(), lr=0.1)
    with pytest.raises(TypeError, match="generator must be a CPU torch.Generator"):
        ClientJob(indices=idx, generator=np.random.default_rng(0), lr=0.1)
    with pytest.raises(ValueError, match=r"ClientJob.lr must be a finite number > 0, got 0"):
        ClientJob(indices=idx, generator=_gen(0), lr=0)
    with pytest.raises(ValueError, match="ClientJob.loss_scale must be a finite number > 0"):
        ClientJob(indices=idx, generator=_gen(0), lr=0.1, loss_scale=float("nan"))
    with pytest.raises(TypeError, match="indices must be a numpy array or torch tensor"):
        ClientJob(indices=[0, 1], generator=_gen(0), lr=0.1)


def test_views_instead_of_copies_hold_the_same_states(cases):
    model, split = cases["lenet5"]
    indices = _client_indices(len(split), sizes=(5, 7, 3))
    config = LocalSGDConfig(lr=0.5, batch_size=5, local_steps=2)
    copied = train_local_batched(model, model.state_dict(), split, _jobs(indices), config)
    viewed = train_local_batched(model, model.state_dict(), split, _jobs(indices), config,
                                 copy_states=False)
    for (want, want_result), (got, got_result) in zip(copied, viewed, strict=True):
        assert want_result == got_result
        assert all(torch.equal(want[n], got[n]) for n in want)
