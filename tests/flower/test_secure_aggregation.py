"""Secure aggregation on Flower's Message API: the four-stage workflow and whole runs.

Properties: the unmasked sum equals the plaintext weighted sum of exactly the clients whose
input arrived, with dropouts at every stage; below the threshold the round aborts with a
reason (never a silent skip) and the run goes on; a node cannot speak for another, replayed
and corrupted stage messages are rejected; FedAvg and FedLaAvg (client-delta) end with the
model of the same run without secure aggregation, up to quantisation error; FedLaAvg loses
no update when a client's masked input is lost after it trained.
"""

import logging

import numpy as np
import pytest
from flwr.app import ConfigRecord
from secure_helpers import (
    DIM,
    VECTORS,
    WEIGHTS,
    corrupt_payload,
    dropping,
    final_model,
    replay_previous_reply,
    rewrite_request,
    toy_app,
    toy_messages,
)

from fedkit.algorithms.directory import ClientDirectory
from fedkit.algorithms.secure_sum import VectorSpec
from fedkit.bench import read_results
from fedkit.config import ConfigError, RunConfig
from fedkit.flower import InProcessGrid, run_inprocess, run_rounds
from fedkit.flower.apps.client_app import app as client_app
from fedkit.flower.apps.client_delta import GradientStore
from fedkit.flower.apps.server_app import make_strategy
from fedkit.flower.apps.task import arrays_of, load_data, new_model
from fedkit.flower.secagg.grid import secure_train_fn
from fedkit.flower.secagg.workflow import SecureAggregation, SecureAggregationSettings
from fedkit.privacy.secagg import Stage

N = 8
CLIENTS = list(range(N))


def secure_round(app, settings=None, spec=None, clients=CLIENTS):
    grid = InProcessGrid(app, num_nodes=N, run_config={})
    workflow = SecureAggregation(settings or SecureAggregationSettings(clip=1.0))
    return workflow.run(grid, toy_messages(grid, clients), spec=spec or VectorSpec(),
                        vector_length=DIM, server_round=3)


def plaintext(contributors, weighted=True):
    w = {c: WEIGHTS[c] if weighted else 1.0 for c in contributors}
    return sum(w[c] * VECTORS[c] for c in contributors), sum(w.values())


def assert_exact(outcome, contributors, weighted=True):
    assert outcome.aborted is None
    assert outcome.contributors == tuple(sorted(contributors))
    total, weight = plaintext(contributors, weighted)
    # stochastic rounding: under one quantum (max_weight / scale) per client and element
    config = SecureAggregationSettings().protocol_config(N, DIM, round_id=3, run_id=1,
                                                         weighted=weighted)
    step = config.max_weight / config.resolved_scale * len(contributors)
    np.testing.assert_allclose(outcome.weighted_sum, total, rtol=0, atol=step)
    assert outcome.total_weight == pytest.approx(weight, abs=step)


@pytest.mark.parametrize("neighbours", [0, 4])
@pytest.mark.parametrize("stage", SecureAggregationSettings().protocol_config(
    N, DIM, round_id=3, run_id=1).stages)
def test_sum_is_exact_with_dropouts_at_every_stage(stage, neighbours):
    dropped = {2, 5}
    # t = 5 of 8 (complete graph), 3 of each 5 (k = 4): a strict majority, the clients' floor
    settings = SecureAggregationSettings(num_neighbours=neighbours, threshold=0.5)
    outcome = secure_round(dropping(toy_app, {stage: dropped}), settings)
    # Inputs that reached the server before the unmask stage stay in the sum.
    contributors = CLIENTS if stage is Stage.UNMASK else [c for c in CLIENTS if c not in dropped]
    assert_exact(outcome, contributors)
    assert set(outcome.failed) == dropped
    assert all(stage.value in outcome.failed[c] for c in dropped)
    assert outcome.bytes_up[Stage.MASKED_INPUT.value] > 0


def test_uniform_weights_and_a_prescaled_vector():
    spec = VectorSpec(offset=True, prescale=0.5, weighting="uniform")
    outcome = secure_round(toy_app, spec=spec)
    assert_exact(outcome, CLIENTS, weighted=False)


def test_below_threshold_the_round_aborts_with_the_reason(caplog):
    with caplog.at_level(logging.ERROR):
        outcome = secure_round(dropping(toy_app, {Stage.SHARE_KEYS: {0, 1, 2, 3, 4}}))
    assert outcome.weighted_sum is None
    assert "below threshold" in outcome.aborted
    assert outcome.contributors == ()
    assert any("aborted" in r.getMessage() for r in caplog.records)


def test_a_node_cannot_speak_for_another():
    app = rewrite_request(toy_app, pid=3, stage=Stage.ADVERTISE_KEYS, **{"client-id": 5})
    outcome = secure_round(app)
    assert "cannot speak for another" in outcome.failed[3]
    assert_exact(outcome, [c for c in CLIENTS if c != 3])


def test_a_replayed_stage_message_is_rejected():
    outcome = secure_round(replay_previous_reply(toy_app, pid=4))
    assert "replayed or reordered" in outcome.failed[4]
    assert_exact(outcome, [c for c in CLIENTS if c != 4])


def test_a_corrupted_share_ciphertext_stops_only_its_recipient():
    outcome = secure_round(corrupt_payload(toy_app, pid=1, stage=Stage.SHARE_KEYS))
    assert len(outcome.failed) == 1
    (victim, reason), = outcome.failed.items()
    assert "ciphertext from client 1" in reason and "rejected" in reason
    assert_exact(outcome, [c for c in CLIENTS if c != victim])


def test_changed_parameters_mid_round_are_refused():
    # the parameters travel once, with advertise-keys; a later request stating other ones
    # is refused
    app = rewrite_request(toy_app, pid=6, stage=Stage.MASKED_INPUT, **{"secagg-clip": 0.5})
    outcome = secure_round(app)
    assert "parameters changed between stages" in outcome.failed[6]
    assert_exact(outcome, [c for c in CLIENTS if c != 6])


# -- whole runs ----------------------------------------------------------------------------
SMALL = {"num_clients": 12, "clients_per_round": 5, "rounds": 4, "eval_every": 2,
         "progress": False, "checkpoint_every": 4}


@pytest.mark.parametrize("engine", ["sequential", "batched"])
@pytest.mark.parametrize("algorithm", ["fedavg", "fedlaavg"])
def test_secure_run_ends_with_the_model_of_the_plain_run(tmp_path, algorithm, engine):
    plain, _ = final_model(tmp_path, SMALL, "plain", engine, algorithm=algorithm)
    secure, results = final_model(tmp_path, SMALL, "secure", engine, algorithm=algorithm,
                                  secure_aggregation=True)
    assert all(r["secagg_aborted"] is False and r["num_replies"] == 5
               for r in results["rounds"])
    assert all(r["secagg_bytes_up"] > 0 for r in results["rounds"])
    np.testing.assert_allclose(secure, plain, rtol=0, atol=1e-5)
    assert np.abs(secure - plain).max() > 0  # masked, quantised: not the same computation


def test_fedlaavg_loses_no_update_when_a_masked_input_is_lost(tmp_path):
    cfg = RunConfig(algorithm="fedlaavg", availability="alternating", secure_aggregation=True,
                    **{**SMALL, "rounds": 12})
    data = load_data(cfg)
    directory = ClientDirectory(cfg.num_clients)
    strategy = make_strategy(cfg, directory)
    # Client 3 trains (and stores its new G_i) in its first two selections, but its masked
    # input never reaches the server; client 7 vanishes before it trains.
    lost = {"count": 0}

    def flaky(msg, context):
        pid = context.node_config["partition-id"]
        if pid == 3 and msg.content.config_records.get("fedkit.exchange", {}).get(
                "phase") == Stage.MASKED_INPUT.value and lost["count"] < 2:
            lost["count"] += 1
            return dropping(client_app, {Stage.MASKED_INPUT: {3}}, after_training=True)(
                msg, context)
        return dropping(client_app, {Stage.SHARE_KEYS: {7}})(msg, context)

    grid = InProcessGrid(flaky, num_nodes=cfg.num_clients, run_config=cfg.to_dict())
    settings = SecureAggregationSettings.from_run_config(cfg)
    run_rounds(strategy, grid, arrays_of(new_model(cfg, data)), num_rounds=cfg.rounds,
               timeout=None, train_config_fn=lambda r: ConfigRecord({"lr": cfg.lr}),
               train_fn=secure_train_fn(strategy, grid, settings))
    assert lost["count"] == 2
    assert strategy.state.versions[3] >= 1  # it contributed after recovering
    stored = []
    for context in grid.contexts.values():
        g, version = GradientStore(context).load()
        client_id = context.node_config["partition-id"]
        assert version == strategy.state.versions[client_id], client_id
        stored.append(g if g is not None else np.zeros_like(strategy.state.g_bar))
    # The server's average is the mean of what the clients hold, up to quantisation.
    np.testing.assert_allclose(strategy.state.g_bar, np.mean(stored, axis=0), rtol=0,
                               atol=1e-5 * max(1.0, np.abs(strategy.state.g_bar).max()))


def test_an_aborted_round_keeps_the_model_and_the_run_goes_on(tmp_path, caplog):
    cfg = RunConfig(name="abort", output_dir=str(tmp_path / "abort"), secure_aggregation=True,
                    **{**SMALL, "clients_per_round": 12, "eval_every": 1})

    def round_two_collapses(msg, context):
        # In round 2 ten of the twelve clients vanish after advertising their keys.
        record = msg.content.config_records.get("fedkit.exchange", {})
        if record.get("server-round") == 2 and context.node_config["partition-id"] >= 2:
            return dropping(client_app, {Stage.SHARE_KEYS: set(range(2, 12))})(msg, context)
        return client_app(msg, context)

    with caplog.at_level(logging.ERROR):
        run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, client_app=round_two_collapses,
                      engine="sequential")
    rounds = read_results(cfg.results_dir)["rounds"]
    assert [r["secagg_aborted"] for r in rounds] == [False, True, False, False]
    assert rounds[1]["model_updated"] is False and rounds[1]["num_replies"] == 0
    assert rounds[1]["test_loss"] == rounds[0]["test_loss"]
    assert rounds[2]["model_updated"] is True
    assert any("below threshold" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("changes, match", [
    ({"algorithm": "mifa"}, "needs algorithm 'fedavg' or 'fedlaavg'"),
    ({"algorithm": "fedlaavg", "fedlaavg_mode": "server-table"}, "mode 'server-table'"),
    ({"clients_per_round": 1}, "clients_per_round >= 2"),
    ({"secagg_threshold": 1.0}, "secagg_threshold"),
    ({"secagg_bits": 16}, "secagg_bits"),
])
def test_config_refuses_what_secure_aggregation_cannot_do(changes, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig(secure_aggregation=True, **changes)


# -- a clipping range that cuts is never silent ----------------------------------------------
@pytest.mark.parametrize("clip", [0.25, 1.0])
def test_the_share_of_clipped_values_is_counted_and_reported(clip, caplog):
    with caplog.at_level(logging.WARNING):
        outcome = secure_round(toy_app, SecureAggregationSettings(clip=clip))
    cut = {c: np.count_nonzero(np.abs(VECTORS[c]) > clip) / DIM for c in CLIENTS}
    expected = sum(WEIGHTS[c] * cut[c] for c in CLIENTS) / sum(WEIGHTS[c] for c in CLIENTS)
    # one quantum of the weight-scaled count element per client, relative to the total weight
    assert outcome.clipped_fraction == pytest.approx(expected, abs=1e-6)
    assert ("were cut to the clipping range" in caplog.text) == (expected > 0)
    clipped_sum = sum(WEIGHTS[c] * np.clip(VECTORS[c], -clip, clip) for c in CLIENTS)
    np.testing.assert_allclose(outcome.weighted_sum, clipped_sum, atol=1e-3)


def test_a_run_records_the_clipped_share_per_round(tmp_path):
    cfg = RunConfig(name="clip", output_dir=str(tmp_path / "clip"), secure_aggregation=True,
                    secagg_clip=1e-4, **{**SMALL, "rounds": 2})
    run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, seed=cfg.seed, engine="sequential")
    rounds = read_results(cfg.results_dir)["rounds"]
    assert all(0.5 < r["secagg_clipped_fraction"] <= 1.0 for r in rounds)
