"""Trace replay: half-open intervals, wrapping at finish_time, id wrapping, the example file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fedkit.availability import (
    SCENARIO_DIR,
    TraceAvailability,
    availability_schedule,
    parse_trace,
    read_trace,
)

EXAMPLE = Path(str(SCENARIO_DIR.joinpath("traces", "example_trace.json")))
TRACE = {"finish_time": 6, "clients": {"0": [[0, 2], [4, 6]], "1": [[2, 3]], "3": [[1, 5]]}}


def test_half_open_intervals_and_absent_clients():
    table = parse_trace(TRACE)
    assert table.astype(int).tolist() == [
        [1, 1, 0, 0, 1, 1],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],  # trace client 2 is absent: never online
        [0, 1, 1, 1, 1, 0],
    ]


def test_rounds_wrap_at_finish_time_and_ids_wrap_at_trace_clients():
    model = TraceAvailability(num_clients=6, table=parse_trace(TRACE))
    schedule = availability_schedule(model, 18)
    assert np.array_equal(schedule[6:12], schedule[:6])
    assert np.array_equal(schedule[12:], schedule[:6])
    # Round r is trace time r - 1.
    assert schedule[:6, 0].tolist() == [True, True, False, False, True, True]
    assert schedule[:6, 1].tolist() == [False, False, True, False, False, False]
    # Clients 4 and 5 replay trace clients 0 and 1 (M = 4).
    assert np.array_equal(schedule[:, 4], schedule[:, 0])
    assert np.array_equal(schedule[:, 5], schedule[:, 1])
    assert model.probabilities(3) is None
    assert model.describe() == {"model": "trace", "path": None, "finish_time": 6,
                                "num_trace_clients": 4}


def test_overlapping_intervals_are_merged():
    table = parse_trace({"finish_time": 5, "clients": {"0": [[0, 3], [2, 4]]}})
    assert table[0].tolist() == [True, True, True, True, False]


def test_example_trace_loads_and_matches_its_json():
    data = json.loads(EXAMPLE.read_text())
    assert data["finish_time"] == 48 and len(data["clients"]) == 20
    model = TraceAvailability.from_file(EXAMPLE, num_clients=25)
    assert (model.finish_time, model.num_trace_clients) == (48, 20)
    schedule = availability_schedule(model, 96)
    for key, intervals in data["clients"].items():
        k = int(key)
        expected = np.zeros(48, dtype=bool)
        for start, end in intervals:
            expected[start:end] = True
        assert np.array_equal(schedule[:48, k], expected)
        assert np.array_equal(schedule[48:, k], expected)
    assert not schedule[:, 13].any()  # the example's always-offline client
    assert np.array_equal(schedule[:, 21], schedule[:, 1])
    assert 0.1 < schedule[:, :20].mean() < 0.5


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([1, 2], "expected a JSON object with exactly the keys 'finish_time' and 'clients'"),
        ({"finish_time": 4}, r"got \['finish_time'\], expected a JSON object"),
        ({"finish_time": 0, "clients": {"0": []}}, "finish_time = 0, expected an integer >= 1"),
        ({"finish_time": 2.5, "clients": {"0": []}}, "finish_time = 2.5, expected an integer"),
        ({"finish_time": 4, "clients": {}}, r"clients = \{\}, expected a non-empty object"),
        ({"finish_time": 4, "clients": {"a": []}}, "client id 'a', expected a decimal string"),
        ({"finish_time": 4, "clients": {"0": [0, 2]}}, r"holds interval 0, expected \[start, e"),
        ({"finish_time": 4, "clients": {"0": [[2, 2]]}}, r"interval \[2, 2\], expected .*< end"),
        ({"finish_time": 4, "clients": {"0": [[1, 5]]}}, r"interval \[1, 5\], .*finish_time = 4"),
        ({"finish_time": 4, "clients": {"0": [[-1, 2]]}}, r"interval \[-1, 2\]"),
        ({"finish_time": 4, "clients": {"0": [[0.5, 2]]}}, r"interval \[0.5, 2\]"),
        ({"finish_time": 4, "clients": {"0": "0-2"}}, r"clients\['0'\] = '0-2', expected a list"),
    ],
)
def test_invalid_traces(data, match):
    with pytest.raises(ValueError, match=match):
        parse_trace(data)


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="trace file .*missing.json' does not exist"):
        read_trace(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        read_trace(bad)
    with pytest.raises(ValueError, match=r"trace.table has dtype int64 and shape \(2, 2\)"):
        TraceAvailability(num_clients=2, table=np.zeros((2, 2), dtype=np.int64))
