"""Replay of an availability trace (FedScale's interval convention, in rounds).

A JSON trace gives ``finish_time`` and, per trace client id, half-open ``[start, end)``
intervals of online rounds. Round r is trace time ``t = (r - 1) mod finish_time``, so the
trace wraps as FedScale's ``ClientMetadata.is_active`` does; fedkit client i replays trace
client ``i mod M`` (M = 1 + largest id). Deterministic: ``probabilities()`` is ``None`` and
the seed is unused. See docs/availability.md, "Trace format".

References:
    F. Lai, Y. Dai, S. Singapuram, J. Liu, X. Zhu, H. Madhyastha, M. Chowdhury, "FedScale:
    Benchmarking Model and System Performance of Federated Learning at Scale", ICML 2022;
    code github.com/SymbioticLab/FedScale ``fedscale/cloud/internal/client_metadata.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fedkit.availability._checks import check_int, check_keys, check_round
from fedkit.availability.base import ClientInfo

__all__ = ["TraceAvailability", "parse_trace", "read_trace"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_trace(data: Any, *, source: str = "trace") -> np.ndarray:
    """Validate a decoded trace and return its ``(M, finish_time)`` bool online table.

    Args:
        data: The decoded JSON object (see the module docstring).
        source: Where it came from, for error messages (e.g. the file path).

    Returns:
        ``table[k, t]`` is True iff trace client k is online at trace time t.

    Raises:
        ValueError: Naming the bad field and value.

    Example:
        >>> parse_trace({"finish_time": 4, "clients": {"1": [[1, 3]]}}).astype(int).tolist()
        [[0, 0, 0, 0], [0, 1, 1, 0]]
    """
    if not isinstance(data, Mapping) or set(data) != {"finish_time", "clients"}:
        keys = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(
            f"{source}: got {keys}, expected a JSON object with exactly the keys "
            "'finish_time' and 'clients'"
        )
    finish = data["finish_time"]
    if not _is_int(finish) or finish < 1:
        raise ValueError(f"{source}: finish_time = {finish!r}, expected an integer >= 1")
    clients = data["clients"]
    if not isinstance(clients, Mapping) or not clients:
        raise ValueError(
            f"{source}: clients = {clients!r}, expected a non-empty object mapping client ids "
            "to interval lists"
        )
    parsed: dict[int, Any] = {}
    for key, intervals in clients.items():
        if not isinstance(key, str) or not key.isdigit():
            raise ValueError(f"{source}: client id {key!r}, expected a decimal string like '0'")
        parsed[int(key)] = intervals
    table = np.zeros((max(parsed) + 1, finish), dtype=bool)
    for k, intervals in parsed.items():
        if not isinstance(intervals, list):
            raise ValueError(
                f"{source}: clients['{k}'] = {intervals!r}, expected a list of [start, end] pairs"
            )
        for pair in intervals:
            ok = isinstance(pair, list | tuple) and len(pair) == 2 and all(map(_is_int, pair))
            if not ok or not 0 <= pair[0] < pair[1] <= finish:
                raise ValueError(
                    f"{source}: clients['{k}'] holds interval {pair!r}, expected [start, end] "
                    f"integers with 0 <= start < end <= finish_time = {finish}"
                )
            table[k, pair[0] : pair[1]] = True
    return table


def read_trace(path: str | Path) -> np.ndarray:
    """Read and validate a trace file; return its ``(M, finish_time)`` online table."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"availability trace file {str(file)!r} does not exist")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: not valid JSON ({err})") from err
    return parse_trace(data, source=str(file))


@dataclass(frozen=True, kw_only=True, eq=False)
class TraceAvailability:
    """Replays a trace's online table; client i follows trace client ``i mod M``.

    Args:
        num_clients: N.
        table: ``(M, finish_time)`` bool online table (from :func:`parse_trace`/:func:`read_trace`).
        path: The trace file, if any (reported by :meth:`describe`).

    Example:
        >>> table = parse_trace({"finish_time": 3, "clients": {"0": [[0, 1]], "1": [[1, 3]]}})
        >>> m = TraceAvailability(num_clients=3, table=table)
        >>> [m.available(r).astype(int).tolist() for r in (1, 2, 4)]
        [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    """

    NAME: ClassVar[str] = "trace"
    SPEC_KEYS: ClassVar[tuple[str, ...]] = ("path",)

    num_clients: int
    table: np.ndarray = field(repr=False)
    path: str | None = None
    _rows: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = check_int("trace.num_clients", self.num_clients, 1)
        table = np.array(self.table)
        if table.ndim != 2 or table.dtype != bool or 0 in table.shape:
            raise ValueError(
                f"trace.table has dtype {table.dtype} and shape {table.shape}, expected a "
                "non-empty (trace clients, finish_time) bool array"
            )
        table.flags.writeable = False
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "_rows", np.arange(n) % table.shape[0])

    @classmethod
    def from_file(cls, path: str | Path, *, num_clients: int) -> TraceAvailability:
        """Read the trace file at ``path`` (see the module docstring for the format)."""
        return cls(num_clients=num_clients, table=read_trace(path), path=str(path))

    @classmethod
    def from_spec(
        cls, params: Mapping[str, Any], client_info: ClientInfo, *, seed: int
    ) -> TraceAvailability:
        """Build from scenario parameter ``path`` (relative paths: to the working directory;
        :func:`fedkit.availability.load_scenario` makes them relative to the scenario file)."""
        check_keys(cls.NAME, params, cls.SPEC_KEYS)
        if "path" not in params or not isinstance(params["path"], str | Path):
            raise ValueError(
                f"availability model 'trace': path = {params.get('path')!r}, expected the "
                "trace file's path (a string)"
            )
        return cls.from_file(params["path"], num_clients=client_info.num_clients)

    @property
    def finish_time(self) -> int:
        """The trace's length in rounds (it wraps after it)."""
        return int(self.table.shape[1])

    @property
    def num_trace_clients(self) -> int:
        """M, the number of trace clients (largest id in the file + 1)."""
        return int(self.table.shape[0])

    def available(self, server_round: int) -> np.ndarray:
        t = (check_round(server_round) - 1) % self.finish_time
        return self.table[self._rows, t]

    def probabilities(self, server_round: int) -> None:
        check_round(server_round)
        return None

    def describe(self) -> dict[str, Any]:
        if self.path is not None:
            return {"model": self.NAME, "path": self.path}
        return {
            "model": self.NAME,
            "path": None,
            "finish_time": self.finish_time,
            "num_trace_clients": self.num_trace_clients,
        }
