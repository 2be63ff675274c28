"""The server's global model as a float64 vector, with the float32 arrays actually sent.

Strategies whose rules step a model (FedLaAvg, MIFA, FedAU, FedVARP) keep x in float64 so
long runs do not accumulate float32 rounding in the server state; clients receive x cast to
the model's dtypes, and updates are computed against exactly what was sent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import ArrayRecord

from fedkit.algorithms.arrays import flatten, unflatten

__all__ = ["ServerModel", "rule_strategy_state", "restore_rule_strategy_state"]


class ServerModel:
    """x (float64) plus the template (names, shapes, dtypes) of the arrays sent to clients."""

    def __init__(self) -> None:
        self.x: np.ndarray | None = None
        self.template: ArrayRecord | None = None
        self.sent: ArrayRecord | None = None
        self.sent_vector: np.ndarray | None = None

    def begin_round(self, arrays: ArrayRecord) -> ArrayRecord:
        """Adopt ``arrays`` on the first call; return the arrays to send this round."""
        if self.x is None:
            self.x = flatten(arrays)
            self.template = arrays
        self.sent = unflatten(self.x, self.template)
        self.sent_vector = flatten(self.sent)
        return self.sent

    def set(self, x: np.ndarray) -> ArrayRecord:
        """Replace x; return it as arrays in the model's dtypes."""
        self.x = x
        return unflatten(x, self.template)

    def state_dict(self) -> dict[str, Any]:
        """x and the template's names/shapes/dtypes."""
        if self.x is None or self.template is None:
            return {}
        return {
            "x": self.x.copy(),
            "names": list(self.template.keys()),
            "shapes": [list(a.shape) for a in self.template.values()],
            "dtypes": [str(a.dtype) for a in self.template.values()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        if not state:
            return
        from flwr.app import Array

        self.x = np.asarray(state["x"], dtype=np.float64).copy()
        self.template = ArrayRecord({
            name: Array(np.zeros(tuple(shape), dtype=np.dtype(dtype)))
            for name, shape, dtype in zip(state["names"], state["shapes"], state["dtypes"],
                                          strict=True)
        })


def rule_strategy_state(model: ServerModel, rule: Any) -> dict[str, Any]:
    """The checkpoint of a strategy made of a :class:`ServerModel` and one rule state."""
    out: dict[str, Any] = {"model": model.state_dict()}
    if rule is not None:
        out["rule"] = rule.state_dict()
    return out


def restore_rule_strategy_state(model: ServerModel, state: dict[str, Any], rule_type: Any,
                                current: Any) -> Any:
    """Restore :func:`rule_strategy_state`'s output into ``model``; return the rule state."""
    model.load_state_dict(state.get("model", {}))
    return rule_type.from_state_dict(state["rule"]) if "rule" in state else current
