"""A broken message contract fails the run loudly; anything else keeps it going.

Properties: a round whose every reply broke the contract raises ContractError naming the
missing piece and the fix -- a ClientApp without the client-id query, a model where FedLaAvg's
client-delta mode expects ΔG_i, a reply without ``num-examples`` -- under Flower's
``Strategy.start``, fedkit's loop and fedkit's ServerApp (so ``fedkit simulate`` exits
non-zero); a round where only some clients break it, or where every client is offline,
continues (logged).
"""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.supercore.task_identity import TaskIdentity
from quickstart_client import INITIAL, quickstart_app

from fedkit.algorithms import ContractError, FedAvg, FedLaAvg
from fedkit.config import RunConfig
from fedkit.flower import InProcessGrid, run_inprocess, run_rounds
from fedkit.flower.apps import client_app as fedkit_client

NO_QUERY = (r"add fedkit\.flower\.mods\.client_id_mod to your ClientApp's mods.*"
            r"First rejection: node \d+: .*No query function registered with name 'client_id'")
MODEL_NOT_DELTA = (r"add fedkit\.flower\.mods\.fedlaavg_mod to your ClientApp's mods \(it "
                   r"turns the trained model into FedLaAvg's ΔG_i\)")
NO_WEIGHT = (r"the reply's MetricRecord 'metrics' needs 'num-examples', an integer > 0.*"
             r"First rejection: client \d+: metric 'num-examples' = None")


def _grid(app, num_nodes=4):
    TaskIdentity.task_id = TaskIdentity.run_id = TaskIdentity.node_id = 1
    return InProcessGrid(app, num_nodes=num_nodes, run_config={})


def _both_loops(make, app, match):
    """The run fails with ``match`` under Strategy.start and under run_rounds."""
    config = ConfigRecord({"lr": 0.1})
    with pytest.raises(ContractError, match=match) as under_start:
        make().start(_grid(app), INITIAL, num_rounds=2, train_config=config)
    with pytest.raises(ContractError, match=match) as under_loop:
        run_rounds(make(), _grid(app), INITIAL, num_rounds=2, timeout=None,
                   train_config_fn=lambda r: config)
    assert str(under_start.value) == str(under_loop.value)
    return str(under_start.value)


def test_a_clientapp_without_the_client_id_query_fails_the_run():
    message = _both_loops(lambda: FedAvg(clients_per_round=2, num_clients=4),
                          quickstart_app(client_id_query=False), NO_QUERY)
    assert message.startswith("round 1: every reply broke the message contract of fedkit's "
                              "client directory ('query.client_id') (4 of 4)")
    assert "docs/flower.md" in message


def test_model_arrays_instead_of_a_delta_fail_fedlaavg_client_delta():
    message = _both_loops(lambda: FedLaAvg(clients_per_round=2, num_clients=4),
                          quickstart_app(), MODEL_NOT_DELTA)
    assert "round 1: every reply broke the message contract of FedLaAvg (2 of 2)" in message
    assert "dtype float32, expected shape (3, 2) and dtype float64" in message
    # The same ClientApp is a correct client of FedLaAvg's server-table mode.
    result = FedLaAvg(clients_per_round=2, num_clients=4, mode="server-table").start(
        _grid(quickstart_app()), INITIAL, num_rounds=2, train_config=ConfigRecord({"lr": 0.1}))
    assert all(m["num-replies"] == 2 for m in result.train_metrics_clientapp.values())


def test_a_reply_without_num_examples_fails_the_run():
    message = _both_loops(lambda: FedAvg(clients_per_round=2, num_clients=4),
                          quickstart_app(send_num_examples=False), NO_WEIGHT)
    assert "MetricRecord({'num-examples': len(trainset), ...})" in message
    with pytest.raises(ContractError, match=r"needs 'weight', an integer > 0"):
        FedAvg(weighted_by_key="weight").start(_grid(quickstart_app()), INITIAL, num_rounds=1)


def test_a_clientapp_without_a_train_handler_fails_the_run():
    app = ClientApp()

    @app.query("client_id")
    def query(msg, context):
        client = ConfigRecord({"client-id": int(context.node_config["partition-id"])})
        return Message(RecordDict({"client": client}), reply_to=msg)

    with pytest.raises(ContractError, match=r"no 'train' handler; register one with "
                                            r"@app.train\(\)"):
        FedAvg(fraction_evaluate=0.0).start(_grid(app), INITIAL, num_rounds=1)


def test_client_id_answers_without_a_valid_id_fail_the_run():
    app = quickstart_app()

    def no_id(msg, context):
        if msg.metadata.message_type == "query.client_id":
            return Message(RecordDict({"client": ConfigRecord({"id": 1})}), reply_to=msg)
        return app(msg, context)

    with pytest.raises(ContractError, match=r"answers hold no valid client id \(an integer "
                                            r"in \[0, 4\) as 'client-id'.*add fedkit\.flower"
                                            r"\.mods\.client_id_mod.*reported client id None"):
        FedAvg(clients_per_round=2, num_clients=4).start(_grid(no_id), INITIAL, num_rounds=1)


def test_a_round_where_only_some_clients_break_the_contract_continues(caplog):
    good, bad = quickstart_app(), quickstart_app(send_num_examples=False)

    def mixed(msg, context):
        return (bad if context.node_config["partition-id"] == 0 else good)(msg, context)

    with caplog.at_level(logging.WARNING):
        result = FedAvg().start(_grid(mixed), INITIAL, num_rounds=2)
    assert all(list(m["clients"]) == [1, 2, 3] and list(m["rejected-clients"]) == [0]
               for m in result.train_metrics_clientapp.values())
    assert any("reply from client 0 rejected: metric 'num-examples' = None" in r.getMessage()
               for r in caplog.records)


def test_a_round_with_every_client_offline_is_logged_not_fatal(caplog):
    app = quickstart_app()

    def offline_in_round_2(msg, context):
        if (msg.metadata.message_type == "train"
                and msg.content["config"]["server-round"] == 2):
            raise RuntimeError("client offline in round 2")
        return app(msg, context)

    with caplog.at_level(logging.WARNING):
        result = FedAvg(fraction_evaluate=0.0).start(_grid(offline_in_round_2), INITIAL,
                                                     num_rounds=3)
    assert [m["num-replies"] for m in result.train_metrics_clientapp.values()] == [4, 0, 4]
    assert any("round 2: the global model is unchanged (0 valid replies)" in r.getMessage()
               for r in caplog.records)


def _fedkit_app_without_query() -> ClientApp:
    """fedkit's own train handler in a ClientApp that lacks the client-id query."""
    app = ClientApp()
    app.train()(fedkit_client.train)
    return app


def test_fedkits_serverapp_fails_on_a_broken_contract(tmp_path):
    cfg = RunConfig(rounds=2, progress=False, output_dir=str(tmp_path))
    with pytest.raises(ContractError, match=NO_QUERY):
        run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients,
                      client_app=_fedkit_app_without_query())


def test_fedkit_simulate_exits_non_zero_on_a_broken_contract(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import fedkit.flower.apps.client_app as fedkit_client
        from test_contract import _fedkit_app_without_query
        fedkit_client.app = _fedkit_app_without_query()
        from fedkit.cli import main
        sys.exit(main(["simulate", "--set", "rounds=2", "--set", "progress=false",
                       "--set", "output_dir={tmp_path}"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ}, timeout=300)
    assert done.returncode != 0
    assert "ContractError" in done.stderr
    assert "add fedkit.flower.mods.client_id_mod to your ClientApp's mods" in done.stderr


def test_strategies_that_divide_by_n_refuse_a_learned_n():
    with pytest.raises(ValueError, match=r"FedLaAvg needs num_clients, the size N of the "
                                         r"federation: its update steps along g_bar"):
        FedLaAvg(clients_per_round=2)


def test_fedlaavg_needs_the_learning_rate_in_the_train_config():
    with pytest.raises(ValueError, match=r"needs the round's learning rate as 'lr' in the "
                                         r"train config .* pass train_config="):
        FedLaAvg(clients_per_round=2, num_clients=4).start(_grid(quickstart_app()), INITIAL,
                                                           num_rounds=1)


def test_an_error_reply_mentioning_nothing_known_is_not_a_contract_error(caplog):
    def crashing(msg, context):
        if msg.metadata.message_type == "train":
            raise KeyError("lr")
        return quickstart_app()(msg, context)

    with caplog.at_level(logging.WARNING):
        result = FedAvg(fraction_evaluate=0.0).start(_grid(crashing), INITIAL, num_rounds=1)
    assert result.train_metrics_clientapp[1]["num-rejected"] == 4
