"""The in-process driver's report: per-stage client seconds and per-stage message bytes."""

from __future__ import annotations

import numpy as np
import pytest

from fedkit.privacy.secagg import SecAggConfig, Stage, decode_message, run_secagg

N, M = 6, 5
IDS = list(range(N))
STAGES = SecAggConfig(num_clients=N, vector_length=M, threshold=2).stages  # no options


def _round(dropouts=None, tamper_fn=None):
    config = SecAggConfig.secagg_plus(num_clients=N, vector_length=M, num_neighbours=4)
    vectors = [np.full(M, 0.25 * cid, dtype=np.float32) for cid in IDS]
    return run_secagg(
        vectors, None, config, dropouts, rng=np.random.default_rng(3), tamper_fn=tamper_fn
    )


def _recorder(seen):
    def tamper(stage, direction, client_id, data):
        seen[direction, client_id, stage] = data
        return data

    return tamper


def test_stage_seconds_sum_to_the_client_total():
    _, report = _round()
    for cid in IDS:
        per_stage = report.client_stage_seconds[cid]
        assert list(per_stage) == list(STAGES)
        assert all(seconds > 0 for seconds in per_stage.values())
        assert sum(per_stage.values()) == pytest.approx(report.client_seconds[cid], rel=1e-12)


def test_bytes_are_the_lengths_of_the_serialised_messages():
    seen: dict[tuple[str, int, Stage], bytes] = {}
    _, report = _round(tamper_fn=_recorder(seen))
    for (direction, cid, stage), data in seen.items():
        table = report.bytes_up if direction == "up" else report.bytes_down
        assert table[cid][stage] == len(data)
    for cid in IDS:
        assert set(report.bytes_up[cid]) == set(STAGES)
        assert set(report.bytes_down[cid]) == set(STAGES) - {Stage.ADVERTISE_KEYS}
        masked = decode_message(seen["up", cid, Stage.MASKED_INPUT])
        # the masked vector is M + 1 uint32 ring elements plus a fixed header
        assert report.bytes_up[cid][Stage.MASKED_INPUT] >= masked.masked.nbytes == 4 * (M + 1)


def test_a_dropped_client_reports_only_the_stages_it_took_part_in():
    _, report = _round(dropouts={Stage.MASKED_INPUT: {2}})
    assert list(report.client_stage_seconds[2]) == [Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS]
    assert set(report.bytes_up[2]) == {Stage.ADVERTISE_KEYS, Stage.SHARE_KEYS}
    assert report.result.dropped == (2,)
