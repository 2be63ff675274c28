"""The run config: one validator, defaults in sync with pyproject, every experiment file valid."""

import tomllib
from pathlib import Path

import pytest

from fedkit.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    check_keys,
    config_keys,
    load_config_file,
    parse_override,
)

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_flower_config_lists_every_key_with_its_default():
    # Flower only accepts --run-config overrides of keys declared in pyproject.toml.
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert declared == RunConfig().to_dict()


def _is_suite(path):
    return {"suite", "grid", "group"} & set(tomllib.loads(path.read_text()))


SIMULATIONS = sorted((ROOT / "simulations").glob("*.toml"))


@pytest.mark.parametrize("path", [p for p in SIMULATIONS if not _is_suite(p)], ids=str)
def test_every_experiment_file_validates(path):
    cfg = RunConfig.from_mapping(load_config_file(path))
    assert cfg.name == path.stem


@pytest.mark.parametrize("path", [p for p in SIMULATIONS if _is_suite(p)], ids=str)
def test_every_suite_file_expands_to_valid_runs(path):
    from fedkit.bench.suite import load_suite

    suite = load_suite(path)
    assert suite.runs and all(isinstance(r.config, RunConfig) for r in suite.runs)


def test_unknown_key_is_rejected_with_the_closest_valid_key():
    with pytest.raises(ConfigError, match=r"unknown config key 'roundz' \(did you mean 'rounds'\?\)"
                       r"; `fedkit simulate --list-keys` lists every key$"):
        RunConfig.from_mapping({"roundz": 3})
    with pytest.raises(ConfigError, match=r"'algoritm' \(did you mean 'algorithm'\?\)"):
        RunConfig.from_mapping({"algoritm": "fedlaavg"})


def test_unknown_keys_without_a_close_one_are_named_without_a_guess():
    with pytest.raises(ConfigError, match=r"unknown config keys 'zzz', 'secagg_clips' "
                                          r"\(did you mean 'secagg_clip'\?\);"):
        check_keys(["rounds", "zzz", "secagg_clips"])
    with pytest.raises(ConfigError, match=r"^--only 'x=1': unknown config key 'x';"):
        check_keys(["x"], where="--only 'x=1'")
    check_keys(RunConfig().to_dict())  # every real key passes


def test_every_key_is_described_with_the_values_validation_accepts():
    infos = {info.name: info for info in config_keys()}
    assert list(infos) == list(RunConfig().to_dict())
    for info in infos.values():
        assert info.description and "\n" not in info.description, info.name
        assert info.default == getattr(RunConfig(), info.name)
    assert infos["rounds"].accepted == "integer > 0"
    assert infos["seed"].accepted == "integer >= 0"
    assert infos["secagg_threshold"].accepted == "float, a fraction in (0, 1)"
    assert infos["secagg_bits"].accepted == "one of 32, 64"
    assert infos["progress"].accepted == "boolean"
    assert infos["algorithm"].description.startswith("Server algorithm")
    assert infos["synthetic_beta"].description == "Heterogeneity of Synthetic(alpha, beta)."


@pytest.mark.parametrize("key", ["algorithm", "model", "partition", "submodel_preset",
                                 "secagg_bits"])
def test_listed_choices_are_exactly_what_validation_accepts(key):
    accepted = next(info.accepted for info in config_keys() if info.name == key)
    choices = [tomllib.loads(f"v = {c}")["v"] for c in accepted.removeprefix("one of ").split(", ")]
    for value in choices:
        assert getattr(RunConfig.from_mapping({key: value}), key) == value
    with pytest.raises(ConfigError, match=f"'{key}' = .* is not one of {choices}".replace(
            "[", r"\[").replace("]", r"\]")):
        RunConfig.from_mapping({key: "nope" if isinstance(choices[0], str) else 16})


def test_wrong_type_names_key_value_and_expected_type():
    with pytest.raises(ConfigError, match=r"'rounds' = '3' has type str, expected int"):
        RunConfig.from_mapping({"rounds": "3"})
    with pytest.raises(ConfigError, match=r"'progress' = 1 has type int, expected bool"):
        RunConfig.from_mapping({"progress": 1})
    with pytest.raises(ConfigError, match=r"'num_clients' = True has type bool, expected int"):
        RunConfig.from_mapping({"num_clients": True})


def test_int_is_accepted_for_float_keys():
    assert RunConfig.from_mapping({"lr": 1}).lr == 1.0


@pytest.mark.parametrize("key", ["dataset", "partition", "model", "algorithm", "weighting"])
def test_choice_keys_reject_unknown_values(key):
    with pytest.raises(ConfigError, match=rf"'{key}' = 'nope' is not one of"):
        RunConfig.from_mapping({key: "nope"})


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"rounds": 0}, r"'rounds' = 0, expected > 0"),
        ({"lr": -0.1}, r"'lr' = -0.1, expected > 0"),
        ({"eval_every": -1}, r"'eval_every' = -1, expected >= 0"),
        ({"local_steps": 0, "local_epochs": 0}, r"both 0"),
        ({"clients_per_round": 31, "num_clients": 30}, r"'clients_per_round' = 31 exceeds"),
        ({"dataset": "cifar10", "partition": "natural"}, r"'natural' needs dataset 'synthetic'"),
    ],
)
def test_range_checks(changes, pattern):
    with pytest.raises(ConfigError, match=pattern):
        RunConfig.from_mapping(changes)


def test_learning_rate_decays_per_round():
    cfg = RunConfig(lr=0.01, lr_decay=0.9999)
    assert cfg.lr_at(1) == 0.01
    assert cfg.lr_at(101) == pytest.approx(0.01 * 0.9999**100)


def test_overrides_are_parsed_as_toml_values_with_bare_strings_allowed():
    assert parse_override("rounds=3") == ("rounds", 3)
    assert parse_override("lr=0.5") == ("lr", 0.5)
    assert parse_override("progress=false") == ("progress", False)
    assert parse_override("dataset=cifar10") == ("dataset", "cifar10")
    assert parse_override("name='a b'") == ("name", "a b")
    with pytest.raises(ConfigError, match="not of the form key=value"):
        parse_override("rounds")


def test_apply_overrides_does_not_mutate_its_input():
    values = {"rounds": 5}
    merged = apply_overrides(values, ["rounds=7", "seed=3"])
    assert merged == {"rounds": 7, "seed": 3}
    assert values == {"rounds": 5}


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("rounds = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(bad)
    nested = tmp_path / "nested.toml"
    nested.write_text("[model]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"\['model'\] hold tables"):
        load_config_file(nested)
