"""Client-side policy (issue 18, attack 3 "Server-chosen threshold"): each client holds the
server's protocol parameters to its own floor and refuses an opening request below it."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message
from secure_helpers import DIM, VECTORS, WEIGHTS, rewrite_request, toy_app, toy_messages
from submodel_helpers import phase_of, run, small_config

from fedkit.algorithms.secure_sum import VectorSpec
from fedkit.flower.apps.client_app import app as fedkit_app
from fedkit.flower.runtime.inprocess import InProcessGrid
from fedkit.flower.secagg.client_state import PROTOCOL_STATE_KEY
from fedkit.flower.secagg.policy import node_policy
from fedkit.flower.secagg.records import EXCHANGE_RECORD
from fedkit.flower.secagg.workflow import SecureAggregation, SecureAggregationSettings
from fedkit.flower.submodel.records import Phase
from fedkit.privacy.secagg import (
    ClientPolicy,
    SecAggConfig,
    SecAggConfigError,
    SecAggPolicyError,
    SecAggProtocolError,
    Stage,
)
from fedkit.privacy.submodel import SubmodelSecAggConfig

N = 8
CLIENTS = list(range(N))


def _round(app, settings=None, node_config=None):
    """One secure round of the toy app; ``node_config`` adds keys to some nodes' config."""
    grid = InProcessGrid(app, num_nodes=N, run_config={})
    for context in grid.contexts.values():
        context.node_config.update((node_config or {}).get(
            context.node_config["partition-id"], {}))
    workflow = SecureAggregation(settings or SecureAggregationSettings())
    outcome = workflow.run(grid, toy_messages(grid, CLIENTS), spec=VectorSpec(),
                           vector_length=DIM, server_round=3)
    return grid, outcome


def _assert_exact(outcome, contributors):
    assert outcome.aborted is None
    assert outcome.contributors == tuple(sorted(contributors))
    total = sum(WEIGHTS[c] * VECTORS[c] for c in contributors)
    config = SecureAggregationSettings().protocol_config(N, DIM, round_id=3, run_id=1)
    step = config.max_weight / config.resolved_scale * len(contributors)
    np.testing.assert_allclose(outcome.weighted_sum, total, rtol=0, atol=step)


def _holds_state(grid, pid) -> bool:
    context = next(c for c in grid.contexts.values() if c.node_config["partition-id"] == pid)
    return PROTOCOL_STATE_KEY in context.state.config_records


# -- the adversary: a server that lowers the threshold --------------------------------------
def test_a_lowered_threshold_sent_to_one_client_is_refused_and_the_sum_stays_exact():
    # the operator configured t = 5 of 8; the server sends t = 2 to client 3 only
    app = rewrite_request(toy_app, pid=3, stage=Stage.ADVERTISE_KEYS,
                          **{"secagg-threshold": 2})
    grid, outcome = _round(app)
    reason = outcome.failed[3]
    assert "client 3 refuses the round: threshold t = 2 is below its floor 5" in reason
    assert "strict majority of its neighbourhood of 8" in reason
    assert not _holds_state(grid, 3)  # it created no keys, so it has nothing to reveal
    _assert_exact(outcome, [c for c in CLIENTS if c != 3])


def test_a_server_that_lowers_everyones_threshold_gets_no_round():
    # a malicious server's own settings: t = max(2, floor(0.1 * 8) + 1) = 2 for everyone
    settings = SecureAggregationSettings(threshold=0.1)
    assert settings.protocol_config(N, DIM, round_id=3, run_id=1).threshold == 2
    _, outcome = _round(toy_app, settings)
    assert outcome.aborted is not None and outcome.weighted_sum is None
    assert outcome.contributors == ()
    assert set(outcome.failed) == set(CLIENTS)
    assert all("threshold t = 2 is below its floor 5" in r for r in outcome.failed.values())


@pytest.mark.parametrize("field, value, match", [
    ("secagg-num_neighbours", 2, r"neighbourhood size k = 2 is below its floor 4"),
    ("secagg-bits", 64, r"ring bits = 64 is not allowed \(allowed: \[32\]\)"),
    ("secagg-clip", 100.0, r"clipping range clip = 100 exceeds its maximum 1"),
])
def test_other_lowered_parameters_are_refused_by_a_node_that_bounds_them(field, value, match):
    strict = {"secagg-min-neighbours": 4, "secagg-allowed-bits": "32", "secagg-max-clip": 1.0}
    # what else the forged field needs to pass the config's own checks
    extra = {"secagg-num_neighbours": {"secagg-threshold": 2},
             "secagg-clip": {"secagg-scale": 2.0**20}}.get(field, {})
    app = rewrite_request(toy_app, pid=5, stage=Stage.ADVERTISE_KEYS,
                          **{field: value, **extra})
    grid, outcome = _round(app, node_config={5: strict})
    assert "client 5 refuses the round" in outcome.failed[5]
    assert re.search(match, outcome.failed[5])
    assert not _holds_state(grid, 5)
    _assert_exact(outcome, [c for c in CLIENTS if c != 5])


def test_a_node_config_floor_above_the_servers_parameters_makes_that_client_refuse():
    # honest server, t = 5 of 8; node 4 asks for at least 7
    _, outcome = _round(toy_app, node_config={4: {"secagg-min-threshold": 7}})
    assert "client 4 refuses the round: threshold t = 5 is below its floor 7 (its minimum " \
           "threshold 7)" in outcome.failed[4]
    _assert_exact(outcome, [c for c in CLIENTS if c != 4])


def test_a_node_config_fraction_above_the_servers_makes_that_client_refuse():
    _, outcome = _round(toy_app, node_config={1: {"secagg-min-threshold-fraction": 0.75}})
    assert "threshold t = 5 is below its floor 7 (more than 0.75 of its neighbourhood of 8)" \
        in outcome.failed[1]
    _assert_exact(outcome, [c for c in CLIENTS if c != 1])


def test_a_node_may_lower_its_own_floor_for_a_low_threshold_run():
    settings = SecureAggregationSettings(threshold=0.4)  # t = 4 of 8: below the default floor
    lenient = {pid: {"secagg-min-threshold-fraction": 0.4} for pid in CLIENTS}
    _, outcome = _round(toy_app, settings, node_config=lenient)
    _assert_exact(outcome, CLIENTS)


# -- every instance of the submodel task: the PSU and the upload ---------------------------
def _lowering(app, pid: int, phase: Phase):
    """``app``, but node ``pid`` gets ``secagg-threshold = 2`` in its ``phase`` request."""

    def client(msg: Message, context) -> Message:
        if context.node_config["partition-id"] == pid and phase_of(msg) is phase:
            record = dict(msg.content.config_records[EXCHANGE_RECORD])
            assert "secagg-threshold" in record  # the request that opens an instance
            record["secagg-threshold"] = 2
            msg.content[EXCHANGE_RECORD] = ConfigRecord(record)
        return app(msg, context)

    return client


@pytest.mark.parametrize("phase", [Phase.PSU_KEYS, Phase.REPORT], ids=lambda p: p.value)
def test_the_submodel_psu_and_upload_refuse_a_lowered_threshold(tmp_path, phase):
    cfg = small_config(tmp_path)
    grid, log, _ = run(cfg, _lowering(fedkit_app, 2, phase))
    record = log.rounds[0]
    assert 2 in record["selected"] and record["aborted"] is None and record["model_updated"]
    reason = record["dropped"]["2"]
    assert phase.value in reason
    assert "client 2 refuses the round: threshold t = 2 is below its floor 3" in reason
    assert 2 not in record["clients"]


# -- the defaults accept what fedkit's own server sends -------------------------------------
@pytest.mark.parametrize("neighbours", [0, 2, 4, 6, 8, 10, 14, 20, 40])
def test_default_policy_accepts_every_default_server_configuration(neighbours):
    settings = SecureAggregationSettings(num_neighbours=neighbours)
    policy = ClientPolicy()
    for n in range(2, 31):
        for weighted in (True, False):
            config = settings.protocol_config(n, 5, round_id=1, run_id=1, weighted=weighted)
            policy.check(config, client_id=0)
        fields = {f: v for f, v in config.to_fields().items()}
        fields["num_neighbours"] = fields["num_neighbours"] or None
        policy.check(SubmodelSecAggConfig(**fields, num_rows=3, row_width=2), client_id=0)


def test_secagg_plus_named_constructor_passes_the_default_policy():
    for n in range(2, 31):
        ClientPolicy().check(SecAggConfig.secagg_plus(num_clients=n, vector_length=3))


# -- each branch of the policy --------------------------------------------------------------
def _config(**changes):
    return SecAggConfig(**{"num_clients": 10, "vector_length": 3, "threshold": 6, **changes})


def test_threshold_floor_is_a_strict_majority_of_the_neighbourhood():
    policy = ClientPolicy()
    for k in range(1, 40):
        floor = policy.threshold_floor(k)
        assert floor > (k + 1) / 2 and floor - 1 <= (k + 1) / 2
    policy.check(_config(threshold=6))
    with pytest.raises(SecAggPolicyError, match=r"^client 3 refuses the round: threshold t = 5 "
                       r"is below its floor 6 \(a strict majority of its neighbourhood of 10\)$"):
        policy.check(_config(threshold=5), client_id=3)


def test_threshold_floor_on_a_secagg_plus_neighbourhood():
    config = _config(num_clients=30, num_neighbours=10, threshold=6)
    ClientPolicy().check(config)
    with pytest.raises(SecAggPolicyError, match=r"t = 5 is below its floor 6 \(a strict "
                       r"majority of its neighbourhood of 11\)"):
        ClientPolicy().check(_config(num_clients=30, num_neighbours=10, threshold=5))


def test_absolute_threshold_floor():
    with pytest.raises(SecAggPolicyError, match=r"t = 6 is below its floor 8 \(its minimum "
                       r"threshold 8\)"):
        ClientPolicy(min_threshold=8).check(_config())


def test_neighbourhood_floor_and_small_complete_graphs():
    policy = ClientPolicy(min_neighbours=10, min_threshold_fraction=0.0)
    with pytest.raises(SecAggPolicyError, match=r"neighbourhood size k = 4 is below its "
                       r"floor 10 \(secagg-min-neighbours = 10, cohort of 30\)"):
        policy.check(_config(num_clients=30, num_neighbours=4, threshold=3))
    policy.check(_config(num_clients=6, threshold=4))  # complete graph of 6: k = 5 = n - 1


def test_ring_bits_branch():
    with pytest.raises(SecAggPolicyError, match=r"ring bits = 32 is not allowed \(allowed: "
                       r"\[64\]\)"):
        ClientPolicy(allowed_bits=frozenset({64})).check(_config())
    ClientPolicy(allowed_bits=frozenset({64})).check(_config(bits=64))


def test_clipping_range_branch():
    with pytest.raises(SecAggPolicyError, match=r"clipping range clip = 4 exceeds its maximum "
                       r"2"):
        ClientPolicy(max_clip=2.0).check(_config(clip=4.0))
    ClientPolicy(max_clip=2.0).check(_config(clip=2.0))


def test_every_violation_is_named_in_one_error_without_a_client_id():
    policy = ClientPolicy(min_neighbours=20, allowed_bits=frozenset({64}), max_clip=0.5)
    with pytest.raises(SecAggPolicyError, match=r"^this client refuses the round: threshold .*; "
                       r"neighbourhood size .*; ring bits .*; clipping range"):
        policy.check(_config(num_clients=30, num_neighbours=4, threshold=2, clip=1.0))


def test_policy_error_is_a_protocol_error():
    assert issubclass(SecAggPolicyError, SecAggProtocolError)


@pytest.mark.parametrize("changes, match", [
    ({"min_threshold_fraction": 1.0}, r"min_threshold_fraction = 1.0, expected a number in"),
    ({"min_threshold_fraction": -0.1}, r"min_threshold_fraction = -0.1"),
    ({"min_threshold_fraction": True}, r"min_threshold_fraction = True"),
    ({"min_threshold": 1}, r"min_threshold = 1, expected an integer >= 2"),
    ({"min_threshold": 2.5}, r"min_threshold = 2.5"),
    ({"min_neighbours": 0}, r"min_neighbours = 0, expected an integer >= 1"),
    ({"allowed_bits": frozenset({16})}, r"allowed_bits = \[16\], expected a non-empty subset"),
    ({"allowed_bits": frozenset()}, r"allowed_bits = \[\]"),
    ({"max_clip": 0.0}, r"max_clip = 0.0, expected a positive number or None"),
    ({"max_clip": math.inf}, r"max_clip = inf"),
])
def test_invalid_policy_fields_are_named(changes, match):
    with pytest.raises(SecAggConfigError, match=match):
        ClientPolicy(**changes)


def test_policy_is_frozen_and_keyword_only():
    with pytest.raises(TypeError):
        ClientPolicy(0.5)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ClientPolicy().min_threshold = 1  # type: ignore[misc]


# -- reading the policy from the node config -----------------------------------------------
def test_node_policy_reads_every_key_and_defaults_the_rest():
    assert node_policy({"partition-id": 3}) == ClientPolicy()
    policy = node_policy({"secagg-min-threshold-fraction": 0.6, "secagg-min-threshold": 4,
                          "secagg-min-neighbours": 10, "secagg-allowed-bits": "64",
                          "secagg-max-clip": 2})
    assert policy == ClientPolicy(min_threshold_fraction=0.6, min_threshold=4,
                                  min_neighbours=10, allowed_bits=frozenset({64}),
                                  max_clip=2.0)
    assert node_policy({"secagg-allowed-bits": "32, 64"}).allowed_bits == {32, 64}
    assert node_policy({"secagg-allowed-bits": 64}).allowed_bits == {64}


@pytest.mark.parametrize("node_config, match", [
    ({"secagg-min-threshold": "six"}, r"node config secagg-min-threshold = 'six' is invalid"),
    ({"secagg-min-threshold": 2.5}, r"node config secagg-min-threshold = 2.5 is invalid"),
    ({"secagg-min-threshold": 1}, r"node config \(secagg-min-threshold = 1\): min_threshold"),
    ({"secagg-allowed-bits": "32,16"}, r"secagg-allowed-bits = '32,16'\): allowed_bits"),
    ({"secagg-max-clip": "wide"}, r"node config secagg-max-clip = 'wide' is invalid"),
])
def test_node_policy_names_an_invalid_key(node_config, match):
    with pytest.raises(SecAggConfigError, match=match):
        node_policy(node_config)
