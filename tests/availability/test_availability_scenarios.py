"""Scenario files: every shipped one builds; every validation branch has its message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from availability_helpers import mixed_client_info

import fedkit
from fedkit.availability import (
    MODELS,
    SCENARIO_DIR,
    AlternatingAvailability,
    FedAUAvailability,
    TraceAvailability,
    availability_schedule,
    build_availability,
    list_scenarios,
    load_scenario,
)

REQUIRED = {"always", "bernoulli", "class_correlated", "fedau", "alternating", "markov",
            "flgo_ymf", "flgo_sln", "trace"}
INFO = mixed_client_info()


def test_required_scenarios_are_shipped():
    assert REQUIRED <= set(list_scenarios())
    # Package data of fedkit itself (importlib.resources), not a folder of the checkout.
    assert Path(str(SCENARIO_DIR)) == Path(fedkit.__file__).resolve().parent / "scenarios"


@pytest.mark.parametrize("name", list_scenarios())
def test_every_shipped_scenario_builds_and_runs(name):
    spec = load_scenario(name)
    model = build_availability(spec, INFO, seed=0)
    assert model.describe()["model"] == spec["model"].replace("_", "-")
    assert availability_schedule(model, 30).shape == (30, INFO.num_clients)


def test_scenario_values():
    assert load_scenario("bernoulli") == {"model": "bernoulli", "p": 0.5}
    assert load_scenario("class_correlated") == {"model": "class-correlated", "p_min": 0.1}
    alt = build_availability(load_scenario("alternating"), INFO, seed=0)
    assert isinstance(alt, AlternatingAvailability) and alt.lengths == (10, 5)
    fedau = build_availability(load_scenario("fedau"), INFO, seed=0)
    assert isinstance(fedau, FedAUAvailability)
    assert (fedau.mean_p, fedau.p_floor, fedau.alpha_w) == (0.1, 0.02, 0.1)
    assert load_scenario("markov") == {"model": "markov", "mean_on": 5, "mean_off": 10}
    assert load_scenario("flgo_ymf")["mode"] == "YMF" and load_scenario("flgo_sln")["mode"] == "SLN"


def test_trace_path_is_relative_to_the_scenario_file(tmp_path, monkeypatch):
    spec = load_scenario("trace")
    shipped = Path(str(SCENARIO_DIR.joinpath("traces", "example_trace.json")))
    assert Path(spec["path"]) == shipped.resolve()
    monkeypatch.chdir(tmp_path)  # the working directory does not matter
    model = build_availability(load_scenario(str(SCENARIO_DIR / "trace.toml")), INFO, seed=0)
    assert isinstance(model, TraceAvailability) and model.finish_time == 48


def test_search_dir_and_explicit_paths(tmp_path):
    (tmp_path / "mine.toml").write_text('model = "bernoulli"\np = 0.25\n')
    assert load_scenario("mine", search_dir=tmp_path) == {"model": "bernoulli", "p": 0.25}
    assert load_scenario(tmp_path / "mine.toml")["p"] == 0.25
    assert load_scenario(str(tmp_path / "mine.toml"))["p"] == 0.25
    assert list_scenarios(tmp_path) == ["mine"]


def test_underscores_in_model_names_are_accepted():
    model = build_availability({"model": "class_correlated", "p_min": 0.5}, INFO, seed=0)
    assert model.describe()["model"] == "class-correlated"


def test_spec_is_not_mutated():
    spec = {"model": "alternating", "groups": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]], "lengths": [3, 2]}
    before = repr(spec)
    build_availability(spec, INFO, seed=0)
    assert repr(spec) == before


def test_missing_scenario_lists_the_available_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"scenario 'nope': no file .*available scenarios "
                       r"in .*: alternating, always, bernoulli"):
        load_scenario("nope")
    with pytest.raises(FileNotFoundError, match="available scenarios in .*: none"):
        load_scenario("nope", search_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no file .*other.toml"):
        load_scenario(tmp_path / "other.toml")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('p = 0.5\n', "model = None, expected a model name \\(one of: always, bernoulli"),
        ('model = 3\n', "model = 3, expected a model name"),
        ('model = "bernoulli"\n[extra]\np = 1\n', r"\[extra\] is a table, expected flat keys"),
        ('model = "bernoulli\n', "is not valid TOML"),
    ],
)
def test_invalid_scenario_files(tmp_path, text, match):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(ValueError, match=match):
        load_scenario("bad", search_dir=tmp_path)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"p": 0.5}, "has no 'model' key, expected one of: always, bernoulli, class-correlated"),
        ({"model": "weekly"}, "unknown availability model 'weekly', expected one of: always, "
         "bernoulli, class-correlated, fedau, alternating, markov, flgo, trace"),
        ({"model": "bernoulli", "q": 0.5}, "model 'bernoulli': unknown parameter 'q', expected one "
                                           "of: p, probabilities"),
        ({"model": "always", "p": 1.0}, "model 'always': unknown parameter 'p', expected one of: "
                                        "none"),
        ({"model": "markov", "mean_on": 5, "seed": 3}, "unknown parameter 'seed', expected one of: "
                                                       "mean_off, mean_on"),
        ({"model": "alternating", "E": 10}, "unknown parameter 'E', expected one of: alpha, "
         "groups, lengths, period_e"),
        ({"model": "fedau", "pattern": "markov", "speed": 0.1}, "unknown parameter 'speed'"),
        ({"model": "flgo", "mode": "YMF", "alpha": 0.1}, "unknown parameter 'alpha', expected one "
                                                         "of: beta, mode"),
        ({"model": "trace", "file": "x.json"}, "unknown parameter 'file', expected one of: path"),
        ({"model": "trace"}, "model 'trace': path = None, expected the trace file's path"),
        ({"model": "bernoulli", "p": 1.5}, r"bernoulli.p = 1.5, expected a probability in \["),
        ({"model": "class-correlated", "p_min": -0.5}, "class-correlated.p_min = -0.5"),
        ({"model": "alternating", "lengths": [10, 0]}, r"alternating.lengths\[1\] = 0, expected"),
        ({"model": "alternating", "lengths": [10]}, "has 1 entries, expected one per group"),
        ({"model": "markov", "mean_on": 0.5}, "markov.mean_on = 0.5"),
        ({"model": "fedau", "pattern": "weekly"}, "fedau.pattern = 'weekly'"),
        ({"model": "flgo", "mode": "XYZ"}, "flgo.mode = 'XYZ', expected one of"),
    ],
)
def test_invalid_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        build_availability(spec, INFO, seed=0)


def test_missing_trace_file_and_wrong_client_info(tmp_path):
    with pytest.raises(FileNotFoundError, match="trace file .*absent.json' does not exist"):
        build_availability({"model": "trace", "path": str(tmp_path / "absent.json")}, INFO, seed=0)
    with pytest.raises(TypeError, match="client_info is a ndarray, expected a ClientInfo"):
        build_availability({"model": "always"}, np.zeros((3, 2)), seed=0)


def test_registry_names_and_keys():
    assert list(MODELS) == ["always", "bernoulli", "class-correlated", "fedau", "alternating",
                            "markov", "flgo", "trace"]
    for name, cls in MODELS.items():
        assert cls.NAME == name and isinstance(cls.SPEC_KEYS, tuple)
