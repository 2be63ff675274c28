"""A node's signing identity for the consistency round, from its own configuration.

With ``consistency_check`` (docs/secagg.md, "Consistency round") each client signs with a
long-term Ed25519 key and checks the others against the operator's key list
(:mod:`fedkit.privacy.secagg.signing`). Both come from the node, never from the server:
:func:`node_identity` reads them from the node config (``flower-supernode --node-config``):

* ``secagg-signing-key`` -- path of this node's PEM private key (PKCS#8, unencrypted);
* ``secagg-key-list`` -- path of the key list, a JSON object ``{"<client id>": "<64 hex
  digits or PEM public key>"}`` (:meth:`~fedkit.privacy.secagg.signing.KeyList.load`).

Files are read once per process and again when they change (path, size and modification
time). **Simulation convenience**: a node without those keys that is a simulated node --
``partition-id`` in its node config and no ``client-id``, as Flower's Simulation Engine and
fedkit's in-process grids set it -- derives its key and the key list of ids ``0 ..
num-partitions - 1`` from the run's ``seed``
(:func:`~fedkit.privacy.secagg.signing.simulation_signing_keys`). Everyone who knows the seed
knows those keys, the server included: they exercise the protocol, they protect nothing. A
node that requires the consistency check (``secagg-require-consistency-check``) never uses
them, and a deployed node (``client-id``) needs the two files.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from flwr.app import Context

from fedkit.flower.secagg.policy import node_policy
from fedkit.privacy.secagg import KeyList, SecAggConfigError, SigningIdentity, SigningKey
from fedkit.privacy.secagg.signing import simulation_signing_keys

__all__ = ["KEY_LIST_KEY", "SIGNING_KEY_KEY", "is_simulated_node", "node_identity"]

SIGNING_KEY_KEY = "secagg-signing-key"
KEY_LIST_KEY = "secagg-key-list"


def is_simulated_node(node_config: Mapping[str, Any]) -> bool:
    """Whether the node config is a simulation's: ``partition-id`` and no ``client-id``."""
    return "partition-id" in node_config and "client-id" not in node_config


def _stamp(path: str) -> tuple[str, int, int]:
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise SecAggConfigError(f"node config file {path}: cannot be read ({exc})") from exc
    return path, stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _signing_key(stamp: tuple[str, int, int]) -> SigningKey:
    return SigningKey.load(stamp[0])


@functools.lru_cache(maxsize=8)
def _key_list(stamp: tuple[str, int, int]) -> KeyList:
    return KeyList.load(stamp[0])


@functools.lru_cache(maxsize=4)
def _simulation_keys(seed: int, num_clients: int):
    return simulation_signing_keys(seed, num_clients)


def _path(node_config: Mapping[str, Any], key: str) -> str:
    value = node_config.get(key)
    if not isinstance(value, str) or not value:
        raise SecAggConfigError(
            f"node config {key} = {value!r}: the consistency check needs both "
            f"{SIGNING_KEY_KEY} and {KEY_LIST_KEY} as file paths; fix the node's "
            "--node-config (docs/deployment.md)")
    return value


def node_identity(context: Context) -> SigningIdentity:
    """This node's signing key and key list (see the module docstring).

    Raises:
        SecAggConfigError: Only one of the two keys set, an unreadable or invalid file
            (named), or neither key on a node that is not simulated or that requires the
            consistency check.
    """
    node_config = context.node_config
    if SIGNING_KEY_KEY in node_config or KEY_LIST_KEY in node_config:
        key = _signing_key(_stamp(_path(node_config, SIGNING_KEY_KEY)))
        return SigningIdentity(key, _key_list(_stamp(_path(node_config, KEY_LIST_KEY))))
    requires = node_policy(node_config).require_consistency_check
    if not is_simulated_node(node_config) or requires:
        why = ("it requires the consistency check, which simulation keys would not protect"
               if requires else "it is not a simulated node (no partition-id, or a client-id)")
        raise SecAggConfigError(
            f"the round runs the consistency check, but this node has no signing key: set "
            f"{SIGNING_KEY_KEY} and {KEY_LIST_KEY} in its --node-config; {why} "
            "(docs/deployment.md)")
    try:
        seed = int(context.run_config.get("seed", 0))
        num_clients = int(node_config["num-partitions"])
        partition = int(node_config["partition-id"])
        keys, key_list = _simulation_keys(seed, num_clients)
        return SigningIdentity(keys[partition], key_list)
    except (KeyError, TypeError, ValueError) as exc:
        raise SecAggConfigError(
            f"simulation signing keys: node config {dict(node_config)} or run config seed "
            f"unusable ({exc})") from exc
