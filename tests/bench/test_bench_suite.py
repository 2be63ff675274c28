"""Suite files: grid expansion, run names, validation, and the two shipped suites."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fedkit.availability.scenario import SCENARIO_DIR, list_scenarios
from fedkit.bench.suite import load_suite, scenario_label
from fedkit.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ALGORITHMS = ["fedavg", "fedlaavg", "mifa", "fedau", "fedvarp"]


def write(tmp_path: Path, text: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


GROUPS = """
    [base]
    num_clients = 10
    clients_per_round = 3
    rounds = 3

    [grid]
    seed = [0, 1]
    availability = "alternating"

    [[group]]
    algorithm = ["fedavg", "fedlaavg"]
    lr = [0.05]

    [[group]]
    algorithm = ["fedlaavg", "mifa"]
    availability = ["always", "alternating"]
"""


def test_groups_are_unioned_and_names_are_unique_and_deterministic(tmp_path):
    path = write(tmp_path, GROUPS)
    suite = load_suite(path, output_dir=tmp_path / "out")
    names = [run.name for run in suite.runs]
    assert names == [run.name for run in load_suite(path, output_dir=tmp_path / "o").runs]
    assert len(names) == len(set(names))
    # Group 1: 2 algorithms x 2 seeds; group 2: 2 x 2 x 2, of which (alternating, fedlaavg)
    # x 2 seeds repeats group 1 (lr 0.05 is the default) and is kept once.
    assert len(names) == 4 + 8 - 2
    assert suite.name_keys == ("availability", "algorithm", "lr", "seed")
    assert names[0] == "availability=alternating__algorithm=fedavg__lr=0.05__seed=0"
    assert names[1].endswith("seed=1")  # the seed varies fastest
    assert "availability=always__algorithm=mifa__lr=0.05__seed=1" in names


def test_each_run_gets_its_folder_checkpoints_and_resume(tmp_path):
    suite = load_suite(write(tmp_path, GROUPS), ["rounds=7"], output_dir=tmp_path / "out")
    for run in suite.runs:
        cfg = run.config
        assert cfg.name == run.name
        assert cfg.results_dir == (tmp_path / "out" / "runs" / run.name).resolve()
        assert cfg.resume and cfg.checkpoint_every == 50 and cfg.rounds == 7
        assert cfg.num_clients == 10


def test_names_do_not_change_when_a_list_grows(tmp_path):
    one = load_suite(write(tmp_path, GROUPS.replace("[0, 1]", "[0]"), "a.toml"))
    two = load_suite(write(tmp_path, GROUPS.replace("[0, 1]", "[0, 1, 2]"), "b.toml"))
    assert {r.name for r in one.runs} < {r.name for r in two.runs}


def test_base_file_is_read_relative_to_the_suite_file(tmp_path):
    (tmp_path / "exp.toml").write_text('num_clients = 12\nclients_per_round = 4\nname = "x"\n')
    suite = load_suite(write(tmp_path, """
        base = "exp.toml"
        [suite]
        name = "mine"
        checkpoint_every = 5
        accuracy_targets = [0.6]
        [grid]
        algorithm = ["fedavg"]
    """))
    (run,) = suite.runs
    assert run.name == "algorithm=fedavg"
    assert run.config.num_clients == 12 and run.config.checkpoint_every == 5
    assert suite.name == "mine" and suite.accuracy_targets == (0.6,)
    assert suite.output_dir == (Path("runs") / "mine").resolve()


def test_include_in_base_table_is_overridden_by_the_table(tmp_path):
    (tmp_path / "exp.toml").write_text("num_clients = 12\nclients_per_round = 4\n")
    suite = load_suite(write(tmp_path, """
        [base]
        include = "exp.toml"
        num_clients = 20
    """))
    (run,) = suite.runs
    assert (run.config.num_clients, run.config.clients_per_round) == (20, 4)


@pytest.mark.parametrize(("text", "match"), [
    ("[grids]\nseed = [0]\n", r"unknown key\(s\) \['grids'\]"),
    ("[suite]\nspeed = 1\n", r"\[suite\] holds unknown key\(s\) \['speed'\]"),
    ("[suite]\njobs = 0\n", r"\[suite\] jobs = 0, expected an integer >= 1"),
    ("[suite]\naccuracy_targets = [50]\n", r"accuracy_targets = \[50\], expected a list"),
    ("[grid]\nseed = []\n", r"seed = \[\], expected a non-empty list of scalars"),
    ("[grid]\nname = ['a', 'b']\n", r"key 'name' is set by the suite for every run"),
    ("[grid]\nalgorithm = ['fedsgd']\n", r"suite run \{'algorithm': 'fedsgd'\}: config key "
                                          r"'algorithm' = 'fedsgd' is not one of"),
    ("base = 3\n", r"'base' = 3, expected a file name or a table"),
    ("group = 3\n", r"'group' must be an array of tables"),
    ("[grid\n", r"is not valid TOML"),
])
def test_invalid_suite_files_are_rejected_naming_the_problem(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_suite(write(tmp_path, text))


def test_missing_suite_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite(tmp_path / "nope.toml")


def test_override_of_a_bad_value_names_the_run(tmp_path):
    with pytest.raises(ConfigError, match=r"'rounds' = 0, expected > 0"):
        load_suite(write(tmp_path, GROUPS), ["rounds=0"])


def test_scenario_label_is_the_file_stem_of_a_path():
    assert scenario_label("alternating") == "alternating"
    assert scenario_label("/x/y/my_trace.toml") == "my_trace"


def test_availability_zoo_is_every_scenario_times_every_algorithm_times_three_seeds():
    suite = load_suite(ROOT / "simulations" / "availability_zoo.toml")
    scenarios = list_scenarios()
    combos = {(r.config.availability, r.config.algorithm, r.config.seed) for r in suite.runs}
    assert combos == {(s, a, seed) for s in scenarios for a in ALGORITHMS for seed in (0, 1, 2)}
    assert len(suite.runs) == len(scenarios) * 5 * 3
    assert {r.config.dataset for r in suite.runs} == {"synthetic"}


def test_cifar10_suite_is_the_papers_setup():
    suite = load_suite(ROOT / "simulations" / "fedlaavg_cifar10.toml")
    combos = {(r.config.availability, r.config.algorithm) for r in suite.runs}
    assert combos == {("alternating", a) for a in ALGORITHMS} | {
        ("always", "fedavg"), ("always", "fedlaavg")}
    assert suite.accuracy_targets == (0.5, 0.55)
    for run in suite.runs:
        cfg = run.config
        assert (cfg.dataset, cfg.partition, cfg.model) == ("cifar10", "one-class", "lenet5")
        assert (cfg.num_clients, cfg.clients_per_round, cfg.rounds) == (1000, 100, 70000)
        assert (cfg.batch_size, cfg.local_steps, cfg.lr, cfg.lr_decay) == (5, 10, 0.01, 0.9999)
        assert (cfg.eval_every, cfg.seed, cfg.weighting) == (100, 0, "uniform")
    spec = SCENARIO_DIR.joinpath("alternating.toml").read_text()
    assert "period_e = 10" in spec and "alpha = 0.5" in spec


def test_only_selects_runs_without_renaming_them():
    suite = load_suite(ROOT / "simulations" / "fedlaavg_cifar10.toml")
    part = suite.only(["availability=alternating", "algorithm=fedavg,fedlaavg"])
    assert [(r.config.availability, r.config.algorithm) for r in part.runs] == [
        ("alternating", "fedavg"), ("alternating", "fedlaavg")]
    names = {r.name: r.config.results_dir for r in suite.runs}
    assert all(names[r.name] == r.config.results_dir for r in part.runs)
    with pytest.raises(ConfigError, match="no run"):
        suite.only(["algorithm=fedprox"])
    with pytest.raises(ConfigError, match="unknown config key"):
        suite.only(["colour=red"])
