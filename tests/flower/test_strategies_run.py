"""The unavailability-robust strategies in whole runs on the in-process grid.

Properties: availability is enforced at the grid boundary; FedLaAvg's two storage modes give
the same trajectory; a killed run resumes to exactly the metrics of an uninterrupted one; a
client that loses its state does not corrupt FedLaAvg's average; FedLaAvg's staleness bound
holds; bad replies are never folded.
"""

import logging
import math

import numpy as np
import pytest
from corrupt_client import corrupting_client
from flwr.app import ConfigRecord
from flwr.supercore.task_identity import TaskIdentity

from fedkit.algorithms.directory import ClientDirectory
from fedkit.availability import availability_schedule
from fedkit.bench import read_results
from fedkit.config import RunConfig
from fedkit.flower import InProcessGrid, run_inprocess, run_rounds
from fedkit.flower.apps.client_app import app as client_app
from fedkit.flower.apps.client_delta import GradientStore
from fedkit.flower.apps.server_app import make_strategy
from fedkit.flower.apps.task import arrays_of, availability_model, load_data, new_model
from fedkit.flower.runtime.availability import AvailabilityGrid

ALGORITHMS = ["fedavg", "fedlaavg", "mifa", "fedau", "fedvarp"]
SMALL = {"num_clients": 20, "clients_per_round": 5, "rounds": 12, "eval_every": 3,
         "progress": False}


def run(tmp_path, name, client=None, **changes):
    # Sequential engine throughout: runs with wrapped ClientApps (which the batched engine
    # does not batch) are compared with plain ones, bit for bit.
    cfg = RunConfig(name=name, output_dir=str(tmp_path / name), **{**SMALL, **changes})
    run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, client_app=client, seed=cfg.seed,
                  engine="sequential")
    return read_results(tmp_path / name)


def metrics(results):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in results["rounds"]]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_only_online_clients_take_part_and_the_card_is_recorded(tmp_path, algorithm):
    results = run(tmp_path, algorithm, algorithm=algorithm, availability="alternating",
                  num_clients=20)
    cfg = RunConfig.from_mapping(results["config"])
    online = availability_schedule(availability_model(cfg, load_data(cfg)), cfg.rounds)
    for record in results["rounds"]:
        assert record["clients"], f"round {record['round']} had no participant"
        assert all(online[record["round"] - 1, c] for c in record["clients"])
    card = results["scenario_card"]
    assert card["num_rounds"] == cfg.rounds
    assert np.isfinite(results["rounds"][-1]["test_loss"])
    assert (tmp_path / algorithm / "scenario.png").stat().st_size > 1000


def test_fedlaavg_storage_modes_give_identical_trajectories(tmp_path):
    common = {"algorithm": "fedlaavg", "availability": "alternating",
              "rounds": 20, "eval_every": 1}
    delta = run(tmp_path, "delta", fedlaavg_mode="client-delta", **common)
    table = run(tmp_path, "table", fedlaavg_mode="server-table", **common)
    assert metrics(delta) == metrics(table)


def test_fedlaavg_staleness_never_exceeds_the_lemma_1_bound(tmp_path):
    # Alternating E = 10, alpha = 0.5: every client is online once in every 15 rounds.
    results = run(tmp_path, "stale", algorithm="fedlaavg", availability="alternating",
                  num_clients=40, clients_per_round=4, rounds=60,
                  eval_every=0)
    bound = math.ceil(40 / 4) * 15 - 1
    assert results["scenario_card"]["staleness"]["max"] <= bound
    assert results["scenario_card"]["never_participated"] == 0


class Killed(BaseException):
    """Stands for the process being killed (escapes the grid's exception handling)."""


def killing_client(at_round):
    calls = {"done": False}

    def client(msg, context):
        if (not calls["done"] and msg.metadata.message_type == "train"
                and msg.content["config"]["server-round"] == at_round):
            calls["done"] = True
            raise Killed()
        return client_app(msg, context)

    return client


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_killed_run_resumes_to_exactly_the_uninterrupted_metrics(tmp_path, algorithm):
    common = {"algorithm": algorithm, "availability": "bernoulli", "checkpoint_every": 3}
    reference = run(tmp_path, "reference", **common)
    with pytest.raises(Killed):
        run(tmp_path, "crashy", client=killing_client(8), **common)
    rounds_trained = set()

    def counting(msg, context):
        if msg.metadata.message_type == "train":
            rounds_trained.add(msg.content["config"]["server-round"])
        return client_app(msg, context)

    resumed = run(tmp_path, "crashy", client=counting, resume=True, **common)
    # The checkpoint after round 6 was used: rounds 1-6 were not trained again.
    assert min(rounds_trained) == 7
    assert metrics(resumed) == metrics(reference)


def test_a_killed_run_leaves_interim_results_of_its_last_checkpoint(tmp_path):
    # Killed in round 8 with checkpoints every 3 rounds: results.json holds rounds 1-6 (the
    # checkpoint's) with their scenario card, so `fedkit report` can show a run in progress.
    common = {"algorithm": "fedlaavg", "availability": "bernoulli", "checkpoint_every": 3}
    reference = run(tmp_path, "reference", **common)
    with pytest.raises(Killed):
        run(tmp_path, "crashy", client=killing_client(8), **common)
    interim = read_results(tmp_path / "crashy")
    assert [r["round"] for r in interim["rounds"]] == [1, 2, 3, 4, 5, 6]
    assert metrics(interim) == metrics(reference)[:6]
    card = interim["scenario_card"]
    assert card["num_rounds"] == 6
    assert card["participants_per_round"]["mean"] == pytest.approx(
        np.mean([len(r["clients"]) for r in interim["rounds"]]))


def test_a_client_that_loses_its_state_does_not_corrupt_fedlaavg(caplog):
    cfg = RunConfig(algorithm="fedlaavg", num_clients=8, clients_per_round=3, rounds=24,
                    progress=False)
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    data = load_data(cfg)
    lost = {"round": None}

    def forgetful(msg, context):
        # Client 2 loses its stored G_i (a restarted SuperNode) the 2nd time it is chosen.
        if msg.metadata.message_type == "train" and context.node_config["partition-id"] == 2:
            lost.setdefault("calls", 0)
            lost["calls"] += 1
            if lost["calls"] == 2:
                context.state.clear()
                lost["round"] = msg.content["config"]["server-round"]
        return client_app(msg, context)

    directory = ClientDirectory(cfg.num_clients)
    strategy = make_strategy(cfg, directory)
    grid = InProcessGrid(forgetful, num_nodes=cfg.num_clients, run_config=cfg.to_dict())
    with caplog.at_level(logging.WARNING):
        run_rounds(strategy, grid, arrays_of(new_model(cfg, data)), num_rounds=cfg.rounds,
                   timeout=None, train_config_fn=lambda r: ConfigRecord({"lr": cfg.lr}))
    assert lost["round"] is not None
    assert any("client 2 rejected" in r.getMessage() and "recovery" in r.getMessage()
               for r in caplog.records)
    # Every client is back in sync, and the server's running average is exactly the mean of
    # the G_i the clients hold: nothing was folded against a wrong base.
    stored = []
    for context in grid.contexts.values():
        g, version = GradientStore(context).load()
        client_id = context.node_config["partition-id"]
        assert version == strategy.state.versions[client_id]
        stored.append(g if g is not None else np.zeros_like(strategy.state.g_bar))
    np.testing.assert_allclose(strategy.state.g_bar, np.mean(stored, axis=0), rtol=0,
                               atol=1e-9 * np.abs(strategy.state.g_bar).max())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bad_replies_are_never_folded(tmp_path, algorithm, caplog):
    with caplog.at_level(logging.WARNING):
        results = run(tmp_path, algorithm, client=corrupting_client, algorithm=algorithm,
                      num_clients=6, clients_per_round=6, rounds=4)
    assert all(0 not in r["clients"] and 1 not in r["clients"] for r in results["rounds"])
    assert all(np.isfinite(r["train_loss"]) for r in results["rounds"])
    assert np.isfinite(results["rounds"][-1]["test_loss"])
    assert any("reply from client 1 rejected" in r.getMessage() for r in caplog.records)


def test_client_side_enforcement_declines_offline_rounds(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        results = run(tmp_path, "client-side", availability="alternating",
                      availability_enforce="client", rounds=6)
    cfg = RunConfig.from_mapping(results["config"])
    online = availability_schedule(availability_model(cfg, load_data(cfg)), cfg.rounds)
    for record in results["rounds"]:
        assert all(online[record["round"] - 1, c] for c in record["clients"])
    assert any("offline in round" in r.getMessage() for r in caplog.records)
    assert sum(r["num_rejected"] for r in results["rounds"]) > 0


def test_availability_grid_answers_offline_nodes_with_error_replies():
    cfg = RunConfig(availability="alternating", progress=False)
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    data = load_data(cfg)
    directory = ClientDirectory(cfg.num_clients)
    inner = InProcessGrid(client_app, num_nodes=cfg.num_clients, run_config=cfg.to_dict())
    grid = AvailabilityGrid(inner, availability_model(cfg, data), directory)
    grid.set_round(11)  # group 1's slot
    online = set(grid.get_node_ids())
    assert online and online < set(inner.get_node_ids())
    offline_node = next(n for n in inner.get_node_ids() if n not in online)
    from flwr.app import Message, RecordDict

    replies = list(grid.send_and_receive([Message(RecordDict(), offline_node, "train")]))
    assert len(replies) == 1 and replies[0].has_error()
    assert "offline in round 11" in replies[0].error.reason


def test_a_client_declining_a_round_answers_node_unavailable_without_an_exception(caplog):
    """Client-side enforcement: an offline client's reply is a NODE_UNAVAILABLE error reply
    logged at INFO, not an exception (which Flower's SuperNode logs as an ERROR, exit 800)."""
    from flwr.app import Message, RecordDict
    from flwr.common.constant import ErrorCode

    cfg = RunConfig(availability="alternating", availability_enforce="client", progress=False)
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    grid = InProcessGrid(client_app, num_nodes=cfg.num_clients, run_config=cfg.to_dict())
    arrays = arrays_of(new_model(cfg, load_data(cfg)))
    messages = [Message(RecordDict({"arrays": arrays,
                                    "config": ConfigRecord({"server-round": 11, "lr": 0.05})}),
                        node, "train") for node in grid.get_node_ids()]
    with caplog.at_level(logging.INFO):
        replies = list(grid.send_and_receive(messages))
    declined = [r for r in replies if r.has_error()]
    assert declined and len(declined) < len(replies)
    assert all(r.error.code == ErrorCode.NODE_UNAVAILABLE for r in declined)
    assert all("offline in round 11" in r.error.reason for r in declined)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("declines the work" in r.getMessage() and r.levelno == logging.INFO
               for r in caplog.records)
