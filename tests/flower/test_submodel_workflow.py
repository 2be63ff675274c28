"""The submodel task over Flower messages: secure equals plaintext averaging, dropouts,
aborts, what the server sees, the RR memo, and Flower's Simulation Engine."""

import json
from pathlib import Path

import numpy as np
import pytest
from submodel_helpers import (
    all_arrays,
    dropping,
    floor_off,
    phase_of,
    recording,
    run,
    small_config,
)

from fedkit.config import ConfigError, RunConfig
from fedkit.flower.apps.client_app import app as fedkit_app
from fedkit.flower.submodel.client import MEMO_KEY, SUBMODEL_KEY, _user_vector
from fedkit.flower.submodel.records import NEGATIVE_WEIGHTS, Phase, read_phase
from fedkit.flower.submodel.task import (
    dense_vector,
    initial_model,
    load_rec_data,
    local_update,
    real_set,
)
from fedkit.privacy.secagg import decode_message
from fedkit.privacy.submodel import decode_row_set, decode_submodel_message, row_average
from fedkit.submodel import PermanentMemo, UnionFrequency, succinct_set
from fedkit.submodel.aggregate import row_sums, weighted_sum

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-100k"
SECURE_PHASES = [Phase.PSU_KEYS, Phase.PSU_SHARES, Phase.PSU_INPUT, Phase.PSU_UNMASK,
                 Phase.REPORT, Phase.DOWNLOAD, Phase.TRAIN, Phase.UNMASK]


def _initial(cfg):
    items, dense = initial_model(cfg, load_rec_data(cfg).num_items)
    return {"items": items, **dense}


def test_secure_with_exact_sets_gives_the_plain_model_within_quantisation(tmp_path):
    # p1 = 1, p2 = 0, p3 = 1, p4 = 0: S'' = S, so the only difference is clip + quantisation.
    # The row floor is off (server and nodes): plain averaging updates rows of one holder too
    # (tests/submodel/test_row_crowds.py compares with the floor on).
    secure = small_config(tmp_path / "s", submodel_preset="cpp1", rounds=2,
                          submodel_min_row_holders=1)
    plain = small_config(tmp_path / "p", submodel_mode="plain", rounds=2)
    _, slog, smodel = run(secure, floor_off(fedkit_app))
    _, plog, pmodel = run(plain)
    for key in ("items", "w", "c"):
        np.testing.assert_allclose(smodel[key], pmodel[key], atol=1e-5)
    assert [r["rows_updated"] for r in slog.rounds] == [r["rows_updated"] for r in plog.rounds]
    assert [r["clients"] for r in slog.rounds] == [r["clients"] for r in plog.rounds]
    assert not np.allclose(smodel["items"], _initial(secure)["items"])  # it did learn
    assert [r["round_trips"] for r in slog.rounds] == [8, 8]
    assert [r["round_trips"] for r in plog.rounds] == [2, 2]


@pytest.mark.parametrize("negatives", ["fixed", "downloaded"])
def test_secure_row_average_equals_plaintext_average_of_individual_updates(tmp_path, negatives):
    # Recompute each client's update from what it downloaded (training is deterministic in
    # (seed, round, client)) and average in clear. Client 2 (the only user of taste group 2)
    # drops before training, so its rows are in U but used by nobody; with cpp3 (P6 = 0.22)
    # the others ask for some of them as fakes (all miss ~50 such rows w.p. ~1e-5). The row
    # floor is off: the plaintext average below covers rows of one holder too.
    cfg = small_config(tmp_path, clients_per_round=6, submodel_preset="cpp3",
                       submodel_negatives=negatives, submodel_min_row_holders=1)
    data = load_rec_data(cfg)
    expected = {}

    def capture(msg, context):
        if phase_of(msg) is Phase.TRAIN:
            pid = context.node_config["partition-id"]
            sub = {k: a.numpy() for k, a in context.state[SUBMODEL_KEY].items()}
            update = local_update(cfg, data, pid, 1, sub["ids"], sub["rows"],
                                  {"w": sub["w"], "c": sub["c"]},
                                  _user_vector(context, cfg, pid),
                                  trainable=succinct_set(real_set(cfg, data, pid),
                                                         sub["ids"]),
                                  row_weights=sub.get(NEGATIVE_WEIGHTS))
            assert (NEGATIVE_WEIGHTS in sub) == (negatives == "downloaded")
            expected[pid] = (sub["ids"], update)
        return fedkit_app(msg, context)

    _, log, model = run(cfg, floor_off(dropping(capture, {Phase.TRAIN: {2}})))
    start = _initial(cfg)
    assert sorted(expected) == log.rounds[0]["clients"] == [0, 1, 3, 4, 5]
    sums, counts = row_sums(80, 4, [(ids, u.row_values, u.row_counts)
                                    for ids, u in expected.values()])
    want_items = start["items"] + row_average(sums, counts)
    dense, total = weighted_sum([u.dense for _, u in expected.values()],
                                [u.num_samples for _, u in expected.values()])
    np.testing.assert_allclose(model["items"], want_items, atol=1e-6)
    np.testing.assert_allclose(dense_vector(model) - dense_vector(start), dense / total,
                               atol=1e-6)
    # Rows no client truly used -- fake rows of some S'' included -- are unchanged exactly.
    perturbed = np.unique(np.concatenate([ids for ids, _ in expected.values()]))
    fake_only = np.setdiff1d(perturbed, np.flatnonzero(counts))
    if negatives == "fixed":  # ("downloaded" clients train their fakes as negatives)
        assert fake_only.size > 0
    unused = counts == 0
    np.testing.assert_array_equal(model["items"][unused], start["items"][unused])
    assert log.rounds[0]["rows_updated"] == int(np.count_nonzero(counts))
    for pid, (ids, update) in expected.items():
        trained = ids[update.row_counts == 1]
        positives = np.intersect1d(trained, data.positives[pid])
        others = np.setdiff1d(trained, positives)
        assert positives.size > 0
        if negatives == "fixed":  # S = positives + fixed negatives; S'' \ S never trained
            assert np.isin(others, data.negatives[pid]).all()
        else:  # S = positives; negatives are S'' rows the user never interacted with
            assert not np.isin(others, data.seen(pid)).any()
            assert np.isin(others, ids).all() and others.size > 0
            assert others.size <= cfg.negatives_per_positive * positives.size


@pytest.mark.parametrize("phase", SECURE_PHASES, ids=lambda p: p.value)
def test_a_client_dropping_at_any_secure_phase_is_tolerated(tmp_path, phase):
    cfg = small_config(tmp_path)
    _, log, model = run(cfg, dropping(fedkit_app, {phase: {2}}))
    record = log.rounds[0]
    assert 2 in record["selected"] and record["aborted"] is None and record["model_updated"]
    assert phase.value in record["dropped"]["2"]
    if phase is not Phase.UNMASK:  # a client that sent its masked input is in the sum
        assert 2 not in record["clients"]
    assert len(record["clients"]) >= 4
    assert not np.array_equal(model["items"], _initial(cfg)["items"])


@pytest.mark.parametrize("phase", [Phase.PSU_INPUT, Phase.TRAIN], ids=lambda p: p.value)
def test_below_the_threshold_the_round_aborts_and_the_model_is_unchanged(tmp_path, phase):
    # 5 selected, threshold floor(0.5 * 5) + 1 = 3: three dropouts leave 2.
    cfg = small_config(tmp_path, rounds=2, eval_every=1)
    _, log, model = run(cfg, dropping(fedkit_app, {phase: {0, 1, 2, 3, 4, 5}}))
    start = _initial(cfg)
    for record in log.rounds:
        assert record["model_updated"] is False
        assert "aborted" in record["aborted"] and record["clients"] == []
    for key in ("items", "w", "c"):
        np.testing.assert_array_equal(model[key], start[key])
    doc = log.to_dict()
    assert doc["summary"]["aborted_rounds"] == [1, 2]
    assert doc["rounds"][0]["test_auc"] is not None  # evaluation still ran, on the old model


def test_the_server_never_receives_a_real_index_set(tmp_path):
    cfg = small_config(tmp_path, rounds=2)
    seen: list = []
    run(cfg, recording(fedkit_app, seen))
    data = load_rec_data(cfg)
    psu_inputs = 0
    for pid, phase, request, reply in seen:
        real = data.index_set(pid)
        for array in all_arrays(reply.content):
            assert not (array.shape == real.shape and np.array_equal(array, real))
        if phase is Phase.PSU_INPUT:
            _, record = read_phase(reply, Phase.PSU_INPUT)
            masked = decode_message(record["payload"]).masked
            # A plain index vector is zero off S (here most of the 80 positions); the masked
            # one is uniform in Z_2^32: no zeros, and S's positions look like the others.
            assert masked.size == 81 and np.count_nonzero(masked == 0) == 0
            psu_inputs += 1
        if phase is Phase.REPORT:
            rows = decode_submodel_message(read_phase(reply, Phase.REPORT)[1]["payload"]).rows
            union = decode_row_set(read_phase(request)[1]["union"])
            assert not np.array_equal(union[rows], real)  # S'' reported (as positions in U)
    assert psu_inputs == 10


def test_the_permanent_rr_memo_persists_across_rounds_and_stays_on_the_client(tmp_path):
    cfg = small_config(tmp_path, rounds=3, clients_per_round=6)
    memos: dict[int, list[PermanentMemo]] = {}

    def capture(msg, context):
        reply = fedkit_app(msg, context)
        if phase_of(msg) is Phase.REPORT:
            state = {k: a.numpy() for k, a in context.state[MEMO_KEY].items()}
            memos.setdefault(context.node_config["partition-id"], []).append(
                PermanentMemo.from_state_dict(state))
        return reply

    grid, _, _ = run(cfg, capture)
    assert sorted(memos) == list(range(6))
    for history in memos.values():
        assert len(history) == 3
        for before, after in zip(history, history[1:], strict=False):
            old = before.seen
            assert np.array_equal(np.intersect1d(after.included, old), before.included)
            assert np.array_equal(np.intersect1d(after.excluded, old), before.excluded)
    for context in grid.contexts.values():
        assert MEMO_KEY in context.state and SUBMODEL_KEY not in context.state


def test_full_mode_downloads_the_whole_model_and_averages_by_data_size(tmp_path):
    cfg = small_config(tmp_path, submodel_mode="full")
    _, log, model = run(cfg)
    record = log.rounds[0]
    assert record["round_trips"] == 1 and record["rows_updated"] > 0
    secure = run(small_config(tmp_path / "s"))[1].rounds[0]
    assert record["download_bytes"] > 0 and secure["download_bytes"] > 0
    assert log.to_dict()["submodel"]["privacy"] is None


def test_privacy_ledger_is_written_per_client(tmp_path):
    cfg = small_config(tmp_path, rounds=2, clients_per_round=6)
    _, log, _ = run(cfg)
    section = log.to_dict()["submodel"]
    assert section["preset"] == "eps2" and section["epsilon_round"] == pytest.approx(2.019, 1e-3)
    assert [p["rounds"] for p in section["privacy"]] == [[1, 2]] * 6
    assert all(p["epsilon_round"] <= p["epsilon_spent"] <= p["epsilon_long_term"]
               for p in section["privacy"])


def _strict_json(path: Path) -> dict:
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_preset_without_privacy_writes_strict_json_with_null_epsilons(tmp_path):
    cfg = small_config(tmp_path, submodel_preset="cpp1")
    run(cfg)
    section = _strict_json(cfg.results_dir / "results.json")["submodel"]
    assert section["epsilon_round"] is None and section["epsilon_long_term"] is None
    assert section["epsilon_unbounded"] is True
    assert all(p["epsilon_spent"] is None for p in section["privacy"])
    eps2 = small_config(tmp_path / "eps2")
    run(eps2)
    section = _strict_json(eps2.results_dir / "results.json")["submodel"]
    assert section["epsilon_unbounded"] is False
    assert section["epsilon_round"] == pytest.approx(2.019, abs=1e-3)


def test_bloom_filter_psu_finds_every_real_row_and_the_round_completes(tmp_path):
    # 8 clients over 3 000 items, the Bloom filter forced (sized for a union bound of 1 000
    # at 1 %: m = 9 586, k = 7); decoding over every item gives U ⊇ the union of the real
    # sets plus about 1 % of the other items as false positives.
    cfg = small_config(tmp_path, num_items=3000, num_clients=8, clients_per_round=8,
                       submodel_psu="bloom", submodel_union_bound=1000, rounds=2)
    data = load_rec_data(cfg)
    unions: list[np.ndarray] = []

    def capture(msg, context):
        if phase_of(msg) is Phase.REPORT:
            unions.append(decode_row_set(read_phase(msg)[1]["union"]))
        return fedkit_app(msg, context)

    _, log, model = run(cfg, capture)
    real = np.unique(np.concatenate([data.index_set(c) for c in range(8)]))
    for record in log.rounds:
        assert record["psu_encoding"] == ["bloom", 9586, 7]
        assert record["aborted"] is None and len(record["clients"]) == 8
        assert record["union_size"] >= real.size
    assert len(unions) == 2 * 8
    for union in unions:
        assert np.isin(real, union).all()  # no false negatives
        assert union.size - real.size < 0.05 * (3000 - real.size)  # FPR about 1 %
    assert not np.array_equal(model["items"], _initial(cfg)["items"])


@pytest.mark.parametrize("changes, match", [
    ({"task": "submodel", "dataset": "cifar10"}, r"'dataset' = 'cifar10' does not fit task"),
    ({"task": "submodel", "dataset": "movielens", "submodel_preset": "eps3"},
     r"'submodel_preset' = 'eps3' is not one of"),
    ({"task": "submodel", "dataset": "movielens", "submodel_mode": "fast"},
     r"'submodel_mode' = 'fast' is not one of \['full', 'plain', 'secure'\]"),
    ({"task": "submodel", "dataset": "movielens", "clients_per_round": 1},
     r"'submodel_mode' = 'secure' needs clients_per_round >= 2"),
    ({"task": "submodel", "dataset": "movielens", "secure_aggregation": True},
     r"'secure_aggregation' = true does not apply to task 'submodel'"),
    ({"task": "submodel", "dataset": "movielens", "availability": "bernoulli"},
     r"'availability' = 'bernoulli' is not supported by task 'submodel'"),
    ({"dataset": "movielens"}, r"'dataset' = 'movielens' does not fit task 'classification'"),
    ({"submodel_bloom_fpr": 1.5}, r"'submodel_bloom_fpr' = 1.5, expected a fraction"),
    ({"task": "submodel", "dataset": "movielens", "submodel_mode": "plain",
      "submodel_negatives": "downloaded"},
     r"'submodel_negatives' = 'downloaded' needs submodel_mode 'secure' or 'full'"),
    ({"task": "submodel", "dataset": "movielens", "submodel_negatives": "sampled"},
     r"'submodel_negatives' = 'sampled' is not one of \['fixed', 'downloaded'\]"),
])
def test_bad_submodel_config_values_are_named(changes, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_mapping(changes)


@pytest.mark.skipif(not (SHARED / "u.data").is_file(), reason="no offline MovieLens copy")
def test_movielens_subset_secure_round_downloads_less_than_the_full_model(tmp_path):
    common = dict(dataset="movielens", data_dir=str(SHARED), num_clients=12,
                  clients_per_round=10, embedding_dim=4, negatives_per_positive=1,
                  secagg_max_weight=4096.0)
    secure = run(small_config(tmp_path / "s", **common))[1].rounds[0]
    full = run(small_config(tmp_path / "f", submodel_mode="full", **common))[1].rounds[0]
    assert secure["psu_encoding"] == ["index", 1682, 0]
    assert secure["aborted"] is None and len(secure["clients"]) == 10
    assert secure["perturbed_size_mean"] < secure["union_size"] < 1682
    assert sum(secure["download_bytes_by_phase"].values()) == pytest.approx(
        secure["download_bytes"])
    # The whole secure download -- PSU keys, shares and lists, the union, the keys broadcast
    # with the neighbours' S'', the rows of S'' + dense part, routed shares -- is below the
    # full model's (measured: ~18 KB against ~34 KB); the rows of S'' alone even more so.
    assert secure["submodel_download_bytes"] < secure["download_bytes"] < full["download_bytes"]
    assert secure["download_bytes_by_phase"]["report-perturbed-set"] < 1000  # U as a bitmap
    assert 0.0 <= secure["test_auc"] <= 1.0


def test_submodel_run_under_flower_simulation_engine_matches_the_inprocess_grid(tmp_path):
    # Each node keeps its user vector, RR memo and protocol state in its context between
    # ClientApp calls under Ray too. cpp1 makes RR deterministic, so the runtimes agree up to
    # the secure aggregation's stochastic rounding.
    from fedkit.bench import read_results
    from fedkit.flower import run_inprocess
    from fedkit.flower.runtime.simulation import run_flower_simulation

    cfg = small_config(tmp_path, name="flower-submodel", num_clients=4, clients_per_round=3,
                       rounds=2, submodel_preset="cpp1", eval_every=1,
                       output_dir=str(tmp_path / "flower"))
    status = run_flower_simulation(cfg)
    assert status["status"] == "finished:completed"
    got = read_results(tmp_path / "flower")
    assert got["runtime"] == "flower"
    local = cfg.replace(output_dir=str(tmp_path / "local"))
    run_inprocess(local.to_dict(), num_nodes=cfg.num_clients, seed=cfg.seed, engine="sequential")
    want = read_results(tmp_path / "local")
    for g, w in zip(got["rounds"], want["rounds"], strict=True):
        assert g["aborted"] is None and g["clients"] == w["clients"]
        assert g["union_size"] == w["union_size"] and g["rows_updated"] == w["rows_updated"]
        assert g["test_auc"] == pytest.approx(w["test_auc"], abs=1e-3)
    assert [p["rounds"] for p in got["submodel"]["privacy"]] == \
        [p["rounds"] for p in want["submodel"]["privacy"]]


def test_full_mode_downloaded_negatives_are_fresh_each_round_and_never_interacted_with(tmp_path):
    cfg = small_config(tmp_path, submodel_mode="full", submodel_negatives="downloaded",
                       negatives_per_positive=2)
    data = load_rec_data(cfg)
    start = _initial(cfg)
    ids = np.arange(start["items"].shape[0])
    user = _user_vector_of(cfg, 0)
    trained = []
    for server_round in (1, 2):
        update = local_update(cfg, data, 0, server_round, ids, start["items"],
                              {"w": start["w"], "c": start["c"]}, user)
        rows = ids[update.row_counts == 1]
        negatives = np.setdiff1d(rows, data.positives[0])
        assert not np.isin(negatives, data.seen(0)).any()
        assert negatives.size == min(2 * data.positives[0].size,
                                     ids.size - data.seen(0).size)
        assert update.num_samples == data.positives[0].size + negatives.size
        trained.append(negatives)
    assert not np.array_equal(trained[0], trained[1])
    assert np.array_equal(real_set(cfg, data, 0), data.positives[0])


def _user_vector_of(cfg, client_id):
    from fedkit.models.recommender import init_user_vector

    return init_user_vector(cfg.embedding_dim, cfg.seed, client_id)


@pytest.mark.parametrize("cap", [10.0, 0.0])
def test_downloaded_negatives_come_with_weights_from_the_unions_seen_so_far(tmp_path, cap):
    # The server counts every decoded union and sends each client, with its rows S'', the
    # weights min(cap, mean(pi)/pi_j) of UnionFrequency over the unions up to this round;
    # cap 0 sends none. The unions are read from the REPORT requests the clients received.
    cfg = small_config(tmp_path, rounds=3, submodel_negatives="downloaded",
                       submodel_preset="cpp3", submodel_negative_weight_cap=cap)
    seen: list = []
    run(cfg, recording(fedkit_app, seen))
    freq = UnionFrequency(cfg.num_items)
    checked = 0
    for r in (1, 2, 3):
        in_round = [(pid, phase, req, rep) for pid, phase, req, rep in seen
                    if phase is not None and int(read_phase(req)[1]["server-round"]) == r]
        reports = [(pid, req, rep) for pid, phase, req, rep in in_round if phase is Phase.REPORT]
        union = decode_row_set(read_phase(reports[0][1])[1]["union"])
        freq.observe(union)
        rows = {pid: union[decode_submodel_message(read_phase(rep, Phase.REPORT)[1]["payload"])
                           .rows] for pid, _, rep in reports}
        for pid, phase, request, _ in in_round:
            if phase is not Phase.DOWNLOAD:
                continue
            sub = {k: a.numpy() for k, a in request.content["submodel"].items()}
            if cap == 0:
                assert NEGATIVE_WEIGHTS not in sub
                continue
            assert sub[NEGATIVE_WEIGHTS].dtype == np.float16
            want = freq.negative_weights(rows[pid], cap)
            np.testing.assert_allclose(sub[NEGATIVE_WEIGHTS], want, rtol=1e-3)
            checked += 1
    assert checked == (0 if cap == 0 else 15)
    assert freq.rounds == 3
