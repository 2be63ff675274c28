"""The consistency round on Flower (issue 18, attack 1): the consistency stage runs through
``secagg_mod`` and the workflow, each node signs with the key and key list of its own node
config (simulated nodes without them with the run seed's simulation keys), a run with
``secagg_consistency_check = true`` ends with the model of the same run without it, dropouts
at every stage keep the sum exact, a node whose policy requires the option refuses a round
without it, and with ``secagg_key_list`` the server drops a node whose key does not match the
operator's list instead of the round aborting."""

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

from fedkit.bench import read_results
from fedkit.config import ConfigError, RunConfig
from fedkit.flower import InProcessGrid, run_inprocess
from fedkit.flower.apps.client_app import app as client_app
from fedkit.flower.secagg.identity import KEY_LIST_KEY, SIGNING_KEY_KEY, node_identity
from fedkit.flower.secagg.policy import node_policy
from fedkit.flower.secagg.workflow import SecureAggregationSettings
from fedkit.privacy.secagg import SecAggConfig, SecAggConfigError, SigningKey, Stage
from fedkit.privacy.secagg.signing import KeyList, write_signing_keys
from fedkit.privacy.submodel import SubmodelSecAggConfig

ON = dict(consistency_check=True)


def _key_files(tmp_path):
    """A key set on disk, as an operator distributes it: each node's key file and the list,
    named in its node config."""
    paths, list_path = write_signing_keys(tmp_path, N)
    files = {cid: {SIGNING_KEY_KEY: str(path), KEY_LIST_KEY: str(list_path)}
             for cid, path in paths.items()}
    return files, KeyList.load(list_path)


@pytest.mark.parametrize("graph", [{}, PLUS], ids=["complete", "secagg+"])
def test_a_round_with_the_option_runs_the_consistency_stage_and_sums_exactly(graph):
    outcome = node_round(toy_app, SecureAggregationSettings(**graph, **ON))
    assert_exact_sum(outcome, CLIENTS)
    assert list(outcome.stage_seconds) == [s.value for s in SecAggConfig(
        num_clients=N, vector_length=DIM, threshold=3, consistency_check=True).stages]
    assert outcome.bytes_up[Stage.CONSISTENCY_CHECK.value] == N * (22 + 8 + 64)
    assert outcome.bytes_down[Stage.CONSISTENCY_CHECK.value] == N * (22 + 8 + 4 + 8 * N)
    plain = node_round(toy_app, SecureAggregationSettings(**graph))
    assert Stage.CONSISTENCY_CHECK.value not in plain.stage_seconds  # off: as before
    np.testing.assert_allclose(outcome.weighted_sum, plain.weighted_sum, rtol=0,
                               atol=2 * rounding_step(CLIENTS))


@pytest.mark.parametrize("committed", [False, True], ids=["alone", "with-committed-graph"])
@pytest.mark.parametrize("stage", [Stage.SHARE_KEYS, Stage.MASKED_INPUT,
                                   Stage.CONSISTENCY_CHECK, Stage.UNMASK])
def test_dropouts_at_every_stage_keep_the_sum_exact(stage, committed):
    dropped = {2, 5}
    outcome = node_round(dropping(toy_app, {stage: dropped}),
                     SecureAggregationSettings(**PLUS, **ON, committed_graph=committed))
    inputs_in = stage in (Stage.CONSISTENCY_CHECK, Stage.UNMASK)
    assert_exact_sum(outcome, CLIENTS if inputs_in else set(CLIENTS) - dropped)
    assert set(outcome.failed) == dropped
    assert all(stage.value in outcome.failed[c] for c in dropped)


def test_nodes_sign_with_the_key_files_of_their_node_config(tmp_path):
    files, key_list = _key_files(tmp_path)
    assert_exact_sum(node_round(toy_app, SecureAggregationSettings(**PLUS, **ON), files), CLIENTS)
    # a node checks the roster against its own key list, not anything the server sends: a
    # list that gives client 5 another key makes that node refuse the roster
    forged = KeyList({**dict(key_list), 5: SigningKey.generate().public})
    forged.save(tmp_path / "forged.json")
    files[1] = {**files[1], KEY_LIST_KEY: str(tmp_path / "forged.json")}
    outcome = node_round(toy_app, SecureAggregationSettings(**ON), files)
    assert "the roster entry of client 5 has no valid signature" in outcome.failed[1]
    assert_exact_sum(outcome, [c for c in CLIENTS if c != 1])


def test_a_node_without_a_usable_identity_refuses_with_the_reason(tmp_path):
    files, _ = _key_files(tmp_path)
    deployed = {0: {"client-id": 0}}  # a deployed node must have the files
    outcome = node_round(toy_app, SecureAggregationSettings(**ON), deployed)
    assert ("this node has no signing key: set secagg-signing-key and secagg-key-list"
            in outcome.failed[0])
    half = {1: {SIGNING_KEY_KEY: files[1][SIGNING_KEY_KEY]}}
    outcome = node_round(toy_app, SecureAggregationSettings(**ON), half)
    assert "node config secagg-key-list = None" in outcome.failed[1]
    swapped = {2: files[3]}  # node 2 holds client 3's key: not the key its list gives 2
    outcome = node_round(toy_app, SecureAggregationSettings(**ON), {**files, **swapped})
    assert "client 2: its signing key is not the key its key list file" in outcome.failed[2]
    assert_exact_sum(outcome, [c for c in CLIENTS if c != 2])


# -- whole runs ----------------------------------------------------------------------------
SMALL = {"num_clients": 12, "clients_per_round": 8, "rounds": 3, "eval_every": 3,
         "progress": False, "checkpoint_every": 3, "secure_aggregation": True,
         "secagg_neighbours": 4}


@pytest.mark.parametrize("engine", ["sequential", "batched"])
def test_a_run_with_secagg_consistency_check_ends_with_the_model_of_the_run_without(
        tmp_path, engine):
    without, plain = final_model(tmp_path, SMALL, "without", engine)
    checked, results = final_model(tmp_path, SMALL, "checked", engine,
                                    secagg_consistency_check=True)
    assert all(r["secagg_aborted"] is False and r["num_replies"] == 8
               for r in results["rounds"])
    # each of the 8 clients sent its key signature and its consistency signature every round
    assert [r["secagg_bytes_up"] - p["secagg_bytes_up"] for r, p in zip(
        results["rounds"], plain["rounds"], strict=True)] == [8 * (64 + 22 + 8 + 64)] * 3
    np.testing.assert_allclose(checked, without, rtol=0, atol=1e-5)


def test_the_submodel_task_refuses_the_option():
    with pytest.raises(ConfigError, match="'secagg_consistency_check' = true is not supported "
                                          "by task 'submodel'"):
        RunConfig(task="submodel", dataset="synthetic-rec", submodel_mode="secure",
                  secagg_consistency_check=True)
    with pytest.raises(SecAggConfigError, match="consistency_check=True is not supported by "
                                                "submodel-aware secure aggregation"):
        SubmodelSecAggConfig(num_clients=10, num_rows=100, row_width=4, vector_length=3,
                             threshold=6, consistency_check=True)


# -- a node that requires the option --------------------------------------------------------
def test_a_node_that_requires_the_consistency_check_refuses_a_round_without_it(tmp_path):
    require = {"secagg-require-consistency-check": True}
    outcome = node_round(toy_app, SecureAggregationSettings(**PLUS), {3: require})
    assert ("client 3 refuses the round: the consistency check is off (consistency_check), "
            "but this client requires it (secagg-require-consistency-check)"
            in outcome.failed[3])
    assert_exact_sum(outcome, [c for c in CLIENTS if c != 3])
    # every node requires it: no round without the option; with it, a requiring node signs
    # with its key files only, never with simulation keys
    everyone = dict.fromkeys(CLIENTS, require)
    refused = node_round(toy_app, SecureAggregationSettings(**PLUS), everyone)
    assert refused.weighted_sum is None and "below threshold" in refused.aborted
    no_files = node_round(toy_app, SecureAggregationSettings(**PLUS, **ON), everyone)
    assert no_files.weighted_sum is None
    assert "it requires the consistency check, which simulation keys would not protect" in (
        no_files.failed[0])
    files, _ = _key_files(tmp_path)
    with_files = {cid: {**require, **files[cid]} for cid in CLIENTS}
    assert_exact_sum(node_round(toy_app, SecureAggregationSettings(**PLUS, **ON), with_files),
                  CLIENTS)


def test_the_node_keys_are_read():
    for raw, expected in ((True, True), ("true", True), ("FALSE", False), (1, True), (0, False)):
        key = {"secagg-require-consistency-check": raw}
        assert node_policy(key).require_consistency_check is expected
    with pytest.raises(SecAggConfigError, match="secagg-require-consistency-check = 'maybe' "
                                                "is invalid"):
        node_policy({"secagg-require-consistency-check": "maybe"})


def test_simulated_nodes_derive_their_keys_from_the_run_seed():
    grid = InProcessGrid(toy_app, num_nodes=4, run_config={"seed": 11})
    identities = [node_identity(c) for c in grid.contexts.values()]
    assert len({i.signing_key.public for i in identities}) == 4
    assert all(dict(i.key_list) == dict(identities[0].key_list) for i in identities)
    other = InProcessGrid(toy_app, num_nodes=4, run_config={"seed": 12})
    assert dict(node_identity(next(iter(other.contexts.values()))).key_list) != dict(
        identities[0].key_list)


# -- the server's copy of the key list (secagg_key_list) -------------------------------------
def _mismatched_node(tmp_path, bad: int):
    """Key files for nodes 0..N-1 and the operator's list; node ``bad`` holds another key and
    a list of its own that names it (a node set up from another key set)."""
    files, key_list = _key_files(tmp_path)
    other = SigningKey.generate()
    other.save(tmp_path / "other.pem")
    KeyList({**dict(key_list), bad: other.public}).save(tmp_path / "other-list.json")
    files[bad] = {SIGNING_KEY_KEY: str(tmp_path / "other.pem"),
                  KEY_LIST_KEY: str(tmp_path / "other-list.json")}
    return files, tmp_path / "key-list.json"


def _with_node_files(files):
    """fedkit's ClientApp on nodes whose node config holds ``files[partition id]``."""

    def client(msg, context):
        context.node_config.update(files[context.node_config["partition-id"]])
        return client_app(msg, context)

    return client


def test_a_run_with_secagg_key_list_drops_the_node_that_does_not_match_it(tmp_path):
    files, list_path = _mismatched_node(tmp_path, bad=5)
    base = {**SMALL, "num_clients": N, "clients_per_round": N, "rounds": 2, "eval_every": 2,
            "checkpoint_every": 0, "secagg_consistency_check": True}

    def run(name, **changes):
        cfg = RunConfig(name=name, output_dir=str(tmp_path / name), **{**base, **changes})
        run_inprocess(cfg.to_dict(), num_nodes=N, seed=cfg.seed, engine="sequential",
                      client_app=_with_node_files(files))
        return read_results(cfg.results_dir)["rounds"]

    # without the server's list it relays node 5's entry and every other node refuses it
    assert all(r["secagg_aborted"] is True for r in run("relayed"))
    # with it the server drops node 5 at advertise keys; each round sums the 7 others
    rounds = run("checked", secagg_key_list=str(list_path))
    assert all(r["secagg_aborted"] is False and r["num_replies"] == N - 1 for r in rounds)
    assert all(r["rejected_clients"] == [5] and r["model_updated"] for r in rounds)


def test_secagg_key_list_is_checked_at_the_boundary(tmp_path):
    with pytest.raises(ConfigError, match="'secagg_key_list' = 'keys.json' is used only with "
                                          "secagg_consistency_check = true"):
        RunConfig(secure_aggregation=True, secagg_key_list="keys.json")
    cfg = RunConfig(secure_aggregation=True, secagg_consistency_check=True,
                    secagg_key_list=str(tmp_path / "missing.json"))
    with pytest.raises(SecAggConfigError, match="key list file .*missing.json: cannot be read"):
        SecureAggregationSettings.from_run_config(cfg)
    _, list_path = _mismatched_node(tmp_path, bad=1)
    settings = SecureAggregationSettings.from_run_config(
        cfg.replace(secagg_key_list=str(list_path)))
    assert sorted(settings.key_list) == CLIENTS
    assert SecureAggregationSettings.from_run_config(RunConfig()).key_list is None
