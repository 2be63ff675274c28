"""Boundary checks shared by the server rules (private).

Every public rule validates its inputs once with these helpers and then computes on trusted,
freshly copied float64 / int64 arrays. Errors name the argument, the bad value and what was
expected; the state passed in is never changed when one is raised, and no check is an
``assert``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "check_client_ids",
    "check_count",
    "check_fresh",
    "check_lr",
    "check_matrix",
    "check_model",
    "check_round",
    "check_vector",
    "frozen",
    "load_array",
    "load_bool",
    "load_int",
]


def frozen(array: Any, dtype: Any) -> np.ndarray:
    """A read-only copy of ``array`` in ``dtype`` (states hold these, so nobody mutates them)."""
    out = np.array(array, dtype=dtype, copy=True)
    out.flags.writeable = False
    return out


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (num_clients, dim, cutoff, k)."""
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} = {value!r}, expected an integer >= {minimum}")
    return int(value)


def check_round(server_round: Any) -> int:
    """A round number: an integer >= 0."""
    if not _is_int(server_round) or server_round < 0:
        raise ValueError(f"server_round = {server_round!r}, expected an integer >= 0")
    return int(server_round)


def check_lr(lr: Any, name: str = "lr") -> float:
    """A finite learning rate > 0."""
    if isinstance(lr, bool) or not isinstance(lr, int | float | np.integer | np.floating):
        raise ValueError(f"{name} = {lr!r}, expected a finite number > 0")
    if not math.isfinite(float(lr)) or lr <= 0:
        raise ValueError(f"{name} = {lr!r}, expected a finite number > 0")
    return float(lr)


def check_client_ids(client_ids: Iterable[Any], num_clients: int) -> np.ndarray:
    """Distinct integer client ids in 0..num_clients-1, as an int64 array in the given order."""
    items = list(client_ids)
    bad = [c for c in items if not _is_int(c)]
    if bad:
        raise ValueError(f"client ids {bad!r} are not integers, expected ints 0..{num_clients - 1}")
    ids = np.fromiter((int(c) for c in items), dtype=np.int64, count=len(items))
    if ids.size == 0:
        return ids
    if ids.min() < 0 or ids.max() >= num_clients:
        out = ids[(ids < 0) | (ids >= num_clients)]
        raise ValueError(
            f"client ids {out.tolist()} out of range, expected 0..{num_clients - 1} "
            f"(num_clients = {num_clients})"
        )
    if len(set(ids.tolist())) != ids.size:
        uniq, counts = np.unique(ids, return_counts=True)
        raise ValueError(
            f"duplicate client ids {uniq[counts > 1].tolist()} in {ids.tolist()}: each client "
            "may report at most once per round"
        )
    return ids


def check_matrix(values: Any, num_rows: int, dim: int, name: str) -> np.ndarray:
    """A finite float64 ``(num_rows, dim)`` array (a fresh copy)."""
    arr = np.array(values, dtype=np.float64, copy=True)
    if arr.shape != (num_rows, dim):
        raise ValueError(
            f"{name} has shape {arr.shape}, expected ({num_rows}, {dim}) "
            f"(one row of length dim = {dim} per client id)"
        )
    if not np.all(np.isfinite(arr)):
        rows = np.unique(np.nonzero(~np.isfinite(arr))[0]).tolist()
        raise ValueError(f"{name} rows {rows} hold NaN or inf, expected finite values")
    return arr


def check_vector(values: Any, dim: int, name: str) -> np.ndarray:
    """A finite float64 ``(dim,)`` array (a fresh copy)."""
    arr = np.array(values, dtype=np.float64, copy=True)
    if arr.shape != (dim,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({dim},)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or inf, expected finite values")
    return arr


def check_model(values: Any, name: str) -> np.ndarray:
    """A finite, non-empty float64 1-D vector of any length (a fresh copy)."""
    arr = np.array(values, dtype=np.float64, copy=True)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} has shape {arr.shape}, expected a non-empty 1-D vector")
    return check_vector(arr, arr.size, name)


def check_fresh(last_round: np.ndarray, ids: np.ndarray, server_round: int) -> None:
    """Refuse to fold a client twice in one round or to go back in time."""
    stale = ids[last_round[ids] >= server_round]
    if stale.size:
        raise ValueError(
            f"clients {stale.tolist()} were already folded in round "
            f"{last_round[stale].tolist()}, expected server_round = {server_round} to be later "
            "than each client's last round; nothing was changed"
        )


def _entry(state: Any, key: str) -> Any:
    if key not in state:
        raise ValueError(f"state dict lacks key {key!r}; present: {sorted(state)}")
    return state[key]


def load_array(state: Any, key: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only copy of ``state[key]``, checked against ``shape`` (-1 = any length)."""
    arr = np.asarray(_entry(state, key))
    ok = arr.ndim == len(shape) and all(s in (-1, a) for s, a in zip(shape, arr.shape, strict=True))
    if not ok:
        raise ValueError(f"state dict entry {key!r} has shape {arr.shape}, expected {shape}")
    if np.dtype(dtype).kind in "biu" and arr.dtype.kind not in "biu":
        raise ValueError(f"state dict entry {key!r} has dtype {arr.dtype}, expected {dtype}")
    return frozen(arr, dtype)


def load_int(state: Any, key: str) -> int:
    """``state[key]`` as an int (a Python int or a 0-d integer array, as ``np.savez`` writes)."""
    value = np.asarray(_entry(state, key))
    if value.shape != () or value.dtype.kind not in "iu":
        raise ValueError(f"state dict entry {key!r} = {value!r}, expected an integer")
    return int(value)


def load_bool(state: Any, key: str) -> bool:
    """``state[key]`` as a bool (a Python bool or a 0-d bool array)."""
    value = np.asarray(_entry(state, key))
    if value.shape != () or value.dtype.kind != "b":
        raise ValueError(f"state dict entry {key!r} = {value!r}, expected a bool")
    return bool(value)
