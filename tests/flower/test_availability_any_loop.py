"""AvailabilityGrid under any loop: it learns the round from the traffic, or is told.

Properties: under Flower's own ``Strategy.start`` -- with Flower's FedAvg and with a fedkit
strategy -- the nodes that receive round r's train (and evaluate) messages are online in round
r by the scenario, for every r, so the participants change from round to round as the
scenario says; several train exchanges in one round (secure aggregation's stages) and query
exchanges do not advance the round, an evaluate or empty exchange after training does, a
message of a later round moves the grid there; ``set_round`` (fedkit's loop) overrides all of
it.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg
from flwr.supercore.task_identity import TaskIdentity
from quickstart_app import initial_arrays, make_app

from fedkit.algorithms import FedAvg, FedLaAvg
from fedkit.availability import TraceAvailability
from fedkit.flower import InProcessGrid
from fedkit.flower.mods import client_id_mod, fedlaavg_mod, register_client_id_query
from fedkit.flower.runtime.availability import AvailabilityGrid, message_round

N = 8
# Online clients of rounds 1..6 (the trace wraps after round 6).
ONLINE = [{0, 1, 2, 3}, {4, 5, 6, 7}, {0, 2, 4, 6}, {1, 3, 5, 7}, {0, 1, 6, 7}, {2, 3, 4, 5}]
ROUNDS = len(ONLINE)


@pytest.fixture(autouse=True)
def task_identity():
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1


def scenario() -> TraceAvailability:
    table = np.array([[c in online for online in ONLINE] for c in range(N)])
    return TraceAvailability(num_clients=N, table=table)


def recording_app(log: list[tuple[str, int, int]]):
    app = make_app([client_id_mod, fedlaavg_mod], route=register_client_id_query)

    def client(msg, context):
        kind = msg.metadata.message_type
        if kind in ("train", "evaluate"):
            log.append((kind, int(msg.content["config"]["server-round"]),
                        int(context.node_config["partition-id"])))
        return app(msg, context)

    return client


def receivers(log, kind: str, server_round: int) -> set[int]:
    return {pid for k, r, pid in log if k == kind and r == server_round}


def start(strategy, log):
    grid = AvailabilityGrid(InProcessGrid(recording_app(log), num_nodes=N, run_config={}),
                            scenario())
    result = strategy.start(grid, initial_arrays(), num_rounds=ROUNDS,
                            train_config=ConfigRecord({"lr": 0.3}))
    return result, grid


def test_flowers_fedavg_follows_the_scenario_round_by_round():
    log: list = []
    random.seed(0)  # Flower's FedAvg samples with the global random module
    strategy = FlowerFedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=2,
                            min_evaluate_nodes=2, min_available_nodes=2)
    result, grid = start(strategy, log)
    for r, online in enumerate(ONLINE, start=1):
        # fraction 1.0: every online client trains and evaluates, and nobody else.
        assert receivers(log, "train", r) == online, f"round {r}"
        assert receivers(log, "evaluate", r) == online, f"round {r}"
    assert sorted(result.train_metrics_clientapp) == list(range(1, ROUNDS + 1))
    assert grid.server_round == ROUNDS + 1  # closed after the last round's evaluation


@pytest.mark.parametrize("strategy_fn", [
    lambda: FedAvg(clients_per_round=3, num_clients=N, seed=1),
    lambda: FedLaAvg(clients_per_round=3, num_clients=N, seed=1),
], ids=["fedavg", "fedlaavg"])
def test_a_fedkit_strategy_under_strategy_start_follows_the_scenario(strategy_fn):
    log: list = []
    result, _ = start(strategy_fn(), log)
    trained = [receivers(log, "train", r) for r in range(1, ROUNDS + 1)]
    for r, (got, online) in enumerate(zip(trained, ONLINE, strict=True), start=1):
        assert len(got) == 3 and got <= online, f"round {r}: {got} not within {online}"
    assert all(m["num-replies"] == 3 and m["num-rejected"] == 0
               for m in result.train_metrics_clientapp.values())
    # Rounds 1 and 2 have disjoint online sets, so their participants differ entirely (were
    # the grid stuck in round 1, round 2 would train round 1's clients).
    assert not trained[0] & trained[1]


# -- the rules, exchange by exchange -----------------------------------------------------


def message(node, kind="train", server_round=None, group=""):
    config = {} if server_round is None else {"server-round": server_round}
    return Message(RecordDict({"config": ConfigRecord(config)}), node, kind, group_id=group)


def echo(msg, context):
    return Message(RecordDict(), reply_to=msg)


@pytest.fixture
def grid():
    app = make_app(route=register_client_id_query)

    def client(msg, context):
        return app(msg, context) if msg.metadata.message_type.startswith("query") else echo(
            msg, context)

    return AvailabilityGrid(InProcessGrid(client, num_nodes=N, run_config={}), scenario())


def online_clients(grid) -> set[int]:
    return {int(c) for c in np.flatnonzero(grid.online_clients())}


def node_of(grid, client: int) -> int:
    return grid.directory.online(grid.inner)[client]


def test_the_round_advances_after_training_at_the_evaluate_or_empty_exchange(grid):
    assert online_clients(grid) == ONLINE[0]
    nodes = list(grid.get_node_ids())
    grid.send_and_receive([message(n, server_round=1) for n in nodes])  # train
    grid.send_and_receive([message(n, server_round=1) for n in nodes])  # e.g. a SecAgg stage
    grid.send_and_receive([message(n, "query.status") for n in nodes])  # a query
    assert grid.server_round == 1
    replies = grid.send_and_receive([message(n, "evaluate", 1) for n in nodes])
    assert not any(r.has_error() for r in replies)  # evaluated with round 1's clients
    assert grid.server_round == 2 and online_clients(grid) == ONLINE[1]
    grid.send_and_receive([])  # an evaluate step with no messages changes nothing more
    assert grid.server_round == 2
    grid.send_and_receive([message(n, server_round=2) for n in grid.get_node_ids()])
    grid.send_and_receive([])  # ... but closes a round after its training
    assert grid.server_round == 3


def test_a_round_with_nobody_to_train_still_closes(grid):
    grid.send_and_receive([])  # train: nobody selected
    grid.send_and_receive([])  # evaluate: nothing
    assert grid.server_round == 2


def test_a_later_rounds_message_moves_the_grid_there_before_delivery(grid):
    offline_in_3 = node_of(grid, 1)
    online_in_3 = node_of(grid, 0)
    replies = grid.send_and_receive([message(offline_in_3, group="3"),
                                     message(online_in_3, group="3")])
    assert grid.server_round == 3
    errors = [r for r in replies if r.has_error()]
    assert len(errors) == 1 and "offline in round 3" in errors[0].error.reason
    grid.send_and_receive([message(online_in_3, server_round=2)])  # an older round: no effect
    assert grid.server_round == 3


def test_set_round_overrides_inference(grid):
    grid.set_round(4)
    nodes = list(grid.get_node_ids())
    client_of = {n: c for c, n in grid.directory.online(grid.inner).items()}
    assert {client_of[n] for n in nodes} == ONLINE[3]
    grid.send_and_receive([message(n, server_round=4) for n in nodes])
    grid.send_and_receive([message(n, "evaluate", 4) for n in nodes])
    grid.send_and_receive([message(n, group="6") for n in nodes])
    assert grid.server_round == 4


@pytest.mark.parametrize("group, config, want", [
    ("5", {"server-round": 2}, 5),
    ("", {"server-round": 2}, 2),
    ("", {}, None),
    ("abc", {"server-round": True}, None),
    ("0", {"server-round": 0}, None),
])
def test_the_round_of_a_message(group, config, want):
    msg = Message(RecordDict({"config": ConfigRecord(config)}), 1, "train", group_id=group)
    assert message_round(msg) == want
