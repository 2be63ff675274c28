"""Server checkpoints: everything needed to resume a run and end with identical metrics.

A checkpoint holds the last completed round, the global arrays, the strategy's state
(``strategy.state_dict()``: model, running sums, per-client counters and tables) and the
per-round results logged so far. No RNG state is needed: every random stream is derived from
``(seed, purpose, round, ...)`` (``fedkit.seeding``), and availability models are pure
functions of ``(seed, round)``. Client-side state (FedLaAvg's G_i in client-delta mode) lives
with the clients; a client that lost it is recovered exactly by the strategy.

Layout: ``<folder>/checkpoint/state.json`` (the structure, with arrays replaced by
references) and ``arrays.npz``. Writes go to a temporary folder that is then renamed over
the old checkpoint, so a crash during a write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT_DIR"]

CHECKPOINT_DIR = "checkpoint"
_REF = "__array__"


def _split(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(tree, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = tree
        return {_REF: key}
    if isinstance(tree, dict):
        return {str(k): _split(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_split(v, arrays) for v in tree]
    if isinstance(tree, np.generic):
        return tree.item()
    return tree


def _join(tree: Any, arrays: Any) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {_REF}:
            return np.array(arrays[tree[_REF]])
        return {k: _join(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_join(v, arrays) for v in tree]
    return tree


def save_checkpoint(folder: str | Path, *, server_round: int, arrays: ArrayRecord,
                    strategy_state: dict[str, Any], rounds: list[dict[str, Any]]) -> Path:
    """Write the checkpoint after ``server_round`` into ``<folder>/checkpoint``."""
    folder = Path(folder)
    target = folder / CHECKPOINT_DIR
    tmp = folder / (CHECKPOINT_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    store: dict[str, np.ndarray] = {}
    tree = {
        "server_round": server_round,
        "arrays": {name: a.numpy() for name, a in arrays.items()},
        "strategy": strategy_state,
        "rounds": rounds,
    }
    (tmp / "state.json").write_text(json.dumps(_split(tree, store)))
    np.savez(tmp / "arrays.npz", **store)
    old = folder / (CHECKPOINT_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(folder: str | Path) -> dict[str, Any] | None:
    """Read ``<folder>/checkpoint``; None if there is none.

    Returns:
        ``{"server_round", "arrays" (ArrayRecord), "strategy", "rounds"}``.
    """
    folder = Path(folder)
    target = folder / CHECKPOINT_DIR
    if not (target / "state.json").is_file():
        old = folder / (CHECKPOINT_DIR + ".old")
        if not (old / "state.json").is_file():
            return None
        target = old
    with np.load(target / "arrays.npz") as store:
        tree = _join(json.loads((target / "state.json").read_text()), store)
    tree["arrays"] = ArrayRecord({k: Array(np.ascontiguousarray(v))
                                  for k, v in tree["arrays"].items()})
    return tree
