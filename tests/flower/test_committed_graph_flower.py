"""The committed graph on Flower (issue 18, attack 2): the reveal-nonce stage runs through
``secagg_mod`` and the workflow, a run with ``secagg_committed_graph = true`` ends with the
model of the same run without it, a dropout at the reveal aborts the round with the reason,
and a node whose policy requires the option refuses a SecAgg+ round without it."""

from __future__ import annotations

import numpy as np
import pytest
from secure_helpers import (
    CLIENTS,
    DIM,
    PLUS,
    N,
    assert_exact_sum,
    dropping,
    final_model,
    node_round,
    rounding_step,
    toy_app,
)

from fedkit.config import ConfigError, RunConfig
from fedkit.flower.secagg.policy import node_policy
from fedkit.flower.secagg.workflow import SecureAggregationSettings
from fedkit.privacy.secagg import (
    ClientPolicy,
    SecAggConfig,
    SecAggConfigError,
    SecAggPolicyError,
    Stage,
)
from fedkit.privacy.submodel import SubmodelSecAggConfig


def test_a_round_with_the_option_runs_the_reveal_stage_and_sums_exactly():
    outcome = node_round(toy_app, SecureAggregationSettings(**PLUS, committed_graph=True))
    assert_exact_sum(outcome, CLIENTS)
    assert list(outcome.stage_seconds) == [s.value for s in SecAggConfig(
        num_clients=N, vector_length=DIM, threshold=3, committed_graph=True).stages]
    assert outcome.bytes_up[Stage.REVEAL_NONCE.value] == N * (22 + 8 + 16)
    assert outcome.bytes_down[Stage.REVEAL_NONCE.value] == N * (22 + 8 + 4 + 32)
    plain = node_round(toy_app, SecureAggregationSettings(**PLUS))
    assert Stage.REVEAL_NONCE.value not in plain.stage_seconds  # off: four stages, as before
    assert_exact_sum(plain, CLIENTS)  # the same sum, up to each one's rounding
    np.testing.assert_allclose(outcome.weighted_sum, plain.weighted_sum, rtol=0,
                               atol=2 * rounding_step(CLIENTS))


@pytest.mark.parametrize("stage", [Stage.SHARE_KEYS, Stage.MASKED_INPUT, Stage.UNMASK])
def test_dropouts_after_the_reveal_keep_the_sum_exact(stage):
    dropped = {2, 5}
    outcome = node_round(dropping(toy_app, {stage: dropped}),
                     SecureAggregationSettings(**PLUS, committed_graph=True))
    assert_exact_sum(outcome, CLIENTS if stage is Stage.UNMASK else set(CLIENTS) - dropped)
    assert set(outcome.failed) == dropped


def test_a_dropout_at_the_reveal_aborts_the_round_with_the_reason():
    outcome = node_round(dropping(toy_app, {Stage.REVEAL_NONCE: {6}}),
                     SecureAggregationSettings(**PLUS, committed_graph=True))
    assert outcome.weighted_sum is None
    assert "clients [6] of the committed roster did not reveal" in outcome.aborted
    assert "reveal_nonce" in outcome.failed[6]


# -- whole runs ----------------------------------------------------------------------------
SMALL = {"num_clients": 12, "clients_per_round": 8, "rounds": 3, "eval_every": 3,
         "progress": False, "checkpoint_every": 3, "secure_aggregation": True,
         "secagg_neighbours": 4}


@pytest.mark.parametrize("engine", ["sequential", "batched"])
def test_a_run_with_secagg_committed_graph_ends_with_the_model_of_the_run_without(tmp_path,
                                                                                  engine):
    without, plain = final_model(tmp_path, SMALL, "without", engine)
    committed, results = final_model(tmp_path, SMALL, "committed", engine,
                                      secagg_committed_graph=True)
    assert all(r["secagg_aborted"] is False and r["num_replies"] == 8
               for r in results["rounds"])
    # each of the 8 clients sent its 32-byte commitment and a 46-byte reveal every round
    assert [r["secagg_bytes_up"] - p["secagg_bytes_up"] for r, p in zip(
        results["rounds"], plain["rounds"], strict=True)] == [8 * (32 + 46)] * 3
    np.testing.assert_allclose(committed, without, rtol=0, atol=1e-5)


def test_the_submodel_task_refuses_the_option():
    with pytest.raises(ConfigError, match="'secagg_committed_graph' = true is not supported by "
                                          "task 'submodel'"):
        RunConfig(task="submodel", dataset="synthetic-rec", submodel_mode="secure",
                  secagg_committed_graph=True)
    with pytest.raises(SecAggConfigError, match="committed_graph=True is not supported by "
                                                "submodel-aware secure aggregation"):
        SubmodelSecAggConfig(num_clients=10, num_rows=100, row_width=4, vector_length=3,
                             threshold=6, committed_graph=True)


# -- a node that requires the option --------------------------------------------------------
def test_a_node_that_requires_a_committed_graph_refuses_a_round_without_it():
    require = {"secagg-require-committed-graph": True}
    outcome = node_round(toy_app, SecureAggregationSettings(**PLUS), {3: require})
    assert ("client 3 refuses the round: the SecAgg+ graph (k = 4 of a cohort of 8) is not "
            "committed" in outcome.failed[3])
    assert_exact_sum(outcome, [c for c in CLIENTS if c != 3])
    # every node requires it: no round without the option, an exact one with it
    everyone = dict.fromkeys(CLIENTS, require)
    refused = node_round(toy_app, SecureAggregationSettings(**PLUS), everyone)
    assert refused.weighted_sum is None and "below threshold" in refused.aborted
    assert_exact_sum(node_round(toy_app, SecureAggregationSettings(**PLUS, committed_graph=True),
                         everyone), CLIENTS)


def test_the_policy_accepts_a_complete_graph_and_reads_the_node_key():
    policy = ClientPolicy(require_committed_graph=True)
    complete = SecAggConfig(num_clients=8, vector_length=3, threshold=5)
    policy.check(complete)  # nothing to grind: the complete graph passes
    plus = SecAggConfig(num_clients=8, vector_length=3, threshold=3, num_neighbours=4)
    with pytest.raises(SecAggPolicyError, match="secagg-require-committed-graph"):
        policy.check(plus, client_id=1)
    policy.check(SecAggConfig(num_clients=8, vector_length=3, threshold=3, num_neighbours=4,
                              committed_graph=True))
    for raw, expected in ((True, True), ("true", True), ("FALSE", False), (1, True), (0, False)):
        key = {"secagg-require-committed-graph": raw}
        assert node_policy(key).require_committed_graph is expected
    assert ClientPolicy().require_committed_graph is False
    with pytest.raises(SecAggConfigError, match="secagg-require-committed-graph = 'maybe' is "
                                                "invalid"):
        node_policy({"secagg-require-committed-graph": "maybe"})
    with pytest.raises(SecAggConfigError, match="require_committed_graph = 'yes', expected a "
                                                "bool"):
        ClientPolicy(require_committed_graph="yes")
