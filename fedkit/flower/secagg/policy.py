"""A node's secure-aggregation policy, read from its node config.

Each SuperNode holds its own floor on the parameters a server may open a secure-aggregation
instance with (:class:`~fedkit.privacy.secagg.ClientPolicy`); the server cannot lower it.
:func:`node_policy` reads it from ``context.node_config`` (``flower-supernode --node-config``
in deployment); a key that is absent keeps the policy's default. Keys:

* ``secagg-min-threshold-fraction`` -> ``min_threshold_fraction``: t > f (k + 1); 0.5;
* ``secagg-min-threshold`` -> ``min_threshold``: 2;
* ``secagg-min-neighbours`` -> ``min_neighbours``: 2;
* ``secagg-allowed-bits`` -> ``allowed_bits``: ``"32,64"`` (``64`` or ``"64"`` allows only 64);
* ``secagg-max-clip`` -> ``max_clip``: no bound;
* ``secagg-require-committed-graph`` -> ``require_committed_graph``: false (``true``,
  ``"true"`` or 1 refuses a SecAgg+ round without a committed graph);
* ``secagg-require-consistency-check`` -> ``require_consistency_check``: false (``true``
  refuses a round without signed keys and the consistency round; such a node signs only with
  the key files of :mod:`fedkit.flower.secagg.identity`, never with simulation keys).

See ``docs/deployment.md`` and ``docs/secagg.md`` ("Client-side policy").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedkit.privacy.secagg import ClientPolicy, SecAggConfigError

__all__ = ["NODE_POLICY_KEYS", "node_policy"]

NODE_POLICY_KEYS = {
    "secagg-min-threshold-fraction": "min_threshold_fraction",
    "secagg-min-threshold": "min_threshold",
    "secagg-min-neighbours": "min_neighbours",
    "secagg-allowed-bits": "allowed_bits",
    "secagg-max-clip": "max_clip",
    "secagg-require-committed-graph": "require_committed_graph",
    "secagg-require-consistency-check": "require_consistency_check",
}


def _bits(value: Any) -> frozenset[int]:
    if isinstance(value, str):
        return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
    return frozenset({int(value)})


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError("expected true or false")


def node_policy(node_config: Mapping[str, Any]) -> ClientPolicy:
    """The :class:`ClientPolicy` of a node, from its ``secagg-*`` node-config keys.

    Raises:
        SecAggConfigError: A key with a value of the wrong type or out of range (named).
    """
    values: dict[str, Any] = {}
    for key, name in NODE_POLICY_KEYS.items():
        if key not in node_config:
            continue
        raw = node_config[key]
        try:
            if name == "allowed_bits":
                values[name] = _bits(raw)
            elif name in ("require_committed_graph", "require_consistency_check"):
                values[name] = _flag(raw)
            elif name in ("min_threshold", "min_neighbours"):
                if isinstance(raw, bool) or float(raw) != int(raw):
                    raise ValueError("not an integer")
                values[name] = int(raw)
            else:
                values[name] = float(raw)
        except (TypeError, ValueError) as exc:
            raise SecAggConfigError(f"node config {key} = {raw!r} is invalid ({exc}); fix "
                                    "the node's --node-config") from exc
    try:
        return ClientPolicy(**values)
    except SecAggConfigError as exc:
        given = ", ".join(f"{k} = {node_config[k]!r}" for k in NODE_POLICY_KEYS
                          if k in node_config)
        raise SecAggConfigError(f"node config ({given}): {exc}; fix the node's --node-config"
                                ) from exc
