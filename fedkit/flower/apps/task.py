"""What a fedkit run trains: its data, model and client identity, built from the run config.

Shared by the ServerApp and the ClientApp so both sides agree on the partition and the model
architecture for a given configuration. Datasets are cached per process (Flower calls the
ClientApp once per message; Ray actors and the in-process grid reuse one process), and so is
one model object per architecture, whose weights every message overwrites completely.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch
from flwr.app import ArrayRecord, Context

from fedkit.algorithms.arrays import from_flower_array, to_flower_array
from fedkit.availability import AvailabilityModel, ClientInfo, build_availability, load_scenario
from fedkit.config import RunConfig
from fedkit.data import FederatedData, load_federated_data, partition_report
from fedkit.models import build_model

__all__ = [
    "arrays_from_torch",
    "arrays_of",
    "availability_model",
    "client_id_of",
    "client_info",
    "load_data",
    "model_template",
    "model_with_arrays",
    "new_model",
    "node_run_config",
    "torch_state_of",
]


def client_id_of(context: Context, num_clients: int) -> int:
    """The stable client id of this node.

    Deployment nodes set ``client-id`` in their node config; Flower's Simulation Engine and
    the in-process grid set ``partition-id``.

    Raises:
        ValueError: If neither key is present or the id is not in ``[0, num_clients)``.
    """
    node_config = context.node_config
    key = "client-id" if "client-id" in node_config else "partition-id"
    value = node_config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < num_clients:
        raise ValueError(
            f"node config {key!r} = {value!r}, expected an integer in [0, {num_clients}) "
            "(set 'client-id' in the SuperNode's --node-config)"
        )
    return value


# Node-config keys a SuperNode may set, and the run-config key each one replaces on that node.
_NODE_OVERRIDES = {"data-dir": "data_dir", "availability": "availability"}


def node_run_config(context: Context) -> RunConfig:
    """The run config as this node applies it: ``context.run_config`` plus node overrides.

    A SuperNode's ``--node-config`` may set ``data-dir`` (the folder holding this device's
    copy of the data; replaces ``data_dir``) and ``availability`` (the scenario this client
    enforces on itself under ``availability_enforce = "client"``; replaces
    ``availability``). Without them the run config applies unchanged.

    Raises:
        ValueError: If an override is not a non-empty string.
        fedkit.config.ConfigError: If the run config itself is invalid.
    """
    cfg = RunConfig.from_mapping(context.run_config)
    changes = {}
    for node_key, run_key in _NODE_OVERRIDES.items():
        if node_key not in context.node_config:
            continue
        value = context.node_config[node_key]
        if not isinstance(value, str) or not value:
            raise ValueError(
                f"node config {node_key!r} = {value!r}, expected a non-empty string "
                f"(it replaces the run config's {run_key!r} on this node); fix the "
                "SuperNode's --node-config"
            )
        changes[run_key] = value
    return cfg.replace(**changes) if changes else cfg


def load_data(cfg: RunConfig) -> FederatedData:
    """The run's federated dataset (cached per process on the data-defining keys)."""
    return load_federated_data(
        dataset=cfg.dataset,
        num_clients=cfg.num_clients,
        partition=cfg.partition,
        seed=cfg.seed,
        data_dir=cfg.data_dir or None,
        dirichlet_alpha=cfg.dirichlet_alpha,
        classes_per_client=cfg.classes_per_client,
        synthetic_alpha=cfg.synthetic_alpha,
        synthetic_beta=cfg.synthetic_beta,
    )


def new_model(cfg: RunConfig, data: FederatedData) -> torch.nn.Module:
    """A freshly initialised model (seeded by the run's seed)."""
    return build_model(
        cfg.model,
        input_shape=tuple(data.train.input_shape),
        num_classes=data.train.num_classes,
        seed=cfg.seed,
    )


@functools.lru_cache(maxsize=4)
def model_template(name: str, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    """The per-process model object of an architecture (weights are always overwritten)."""
    return build_model(name, input_shape=input_shape, num_classes=num_classes, seed=0)


def model_with_arrays(cfg: RunConfig, data: FederatedData, arrays: ArrayRecord) -> torch.nn.Module:
    """The per-process model object, with every parameter and buffer set from ``arrays``."""
    model = model_template(cfg.model, tuple(data.train.input_shape), data.train.num_classes)
    model.load_state_dict(torch_state_of(arrays), strict=True)
    return model


def arrays_of(model: torch.nn.Module) -> ArrayRecord:
    """The model's state as an ArrayRecord (detached copies, key order kept)."""
    return arrays_from_torch(model.state_dict())


def arrays_from_torch(state: Mapping[str, torch.Tensor]) -> ArrayRecord:
    """An ArrayRecord of copies of ``state``'s tensors (key order kept)."""
    return ArrayRecord({k: to_flower_array(v.detach().cpu().numpy()) for k, v in state.items()})


def torch_state_of(arrays: ArrayRecord) -> dict[str, torch.Tensor]:
    """A torch state dict of ``arrays`` (tensors own their memory)."""
    return {k: torch.from_numpy(from_flower_array(a).copy()) for k, a in arrays.items()}


def client_info(data: FederatedData) -> ClientInfo:
    """Per-client sizes and label histograms (what availability models condition on)."""
    report = partition_report(data.partition, data.train.y.numpy(), data.train.num_classes)
    return ClientInfo(label_histograms=report.label_histograms, sizes=report.sizes)


def availability_model(cfg: RunConfig, data: FederatedData) -> AvailabilityModel:
    """The run's availability model, from the scenario named by ``cfg.availability``."""
    return _availability_model(cfg.availability, cfg.seed, data)


@functools.lru_cache(maxsize=4)
def _availability_model(scenario: str, seed: int, data: FederatedData) -> AvailabilityModel:
    return build_availability(load_scenario(scenario), client_info(data), seed=seed)
