"""The `fedkit` command: help, a full simulate run, and clear errors."""

import io
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fedkit.cli import main
from fedkit.config import ConfigError, RunConfig, config_keys, load_config_file
from fedkit.flower.apps.progress import ProgressLine, is_progress_line

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_subcommand_option():
    out = subprocess.run([sys.executable, "-m", "fedkit.cli", "simulate", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--config", "--set", "--runtime", "--data-dir", "--output-dir", "--quiet",
                 "--list-keys", "inprocess", "flower"):
        assert flag in out
    top = subprocess.run([sys.executable, "-m", "fedkit.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "simulate" in top and "--version" in top


def test_simulate_writes_results_and_prints_summary(tmp_path, capsys):
    code = main(["simulate", "--config", "simulations/demo.toml", "--set", "rounds=3",
                 "--set", "num_clients=12", "--output-dir", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "final test accuracy" in out and "rounds                       3" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["num_clients"] == 12
    assert len(results["rounds"]) == 3
    assert (tmp_path / "run" / "accuracy.png").stat().st_size > 1000


def test_simulate_summary_of_a_submodel_run_names_its_own_figures(tmp_path, capsys):
    code = main(["simulate", "--config", "simulations/submodel_movielens.toml",
                 "--set", "dataset=synthetic-rec", "--set", "num_items=80",
                 "--set", "num_clients=6", "--set", "clients_per_round=5", "--set", "rounds=1",
                 "--set", "embedding_dim=3", "--set", "eval_every=1",
                 "--output-dir", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "task / mode" in out and "submodel / secure" in out
    assert "eps2 (epsilon per round 2.019, long-term 2.708)" in out
    assert "final test AUC / HR@10" in out and "mean bytes down / up per client" in out
    for absent in ("accuracy", "algorithm", "plot", "partition"):
        assert absent not in out


def test_bad_override_exits_2_with_the_key_named(capsys):
    assert main(["simulate", "--set", "rounds=zero"]) == 2
    err = capsys.readouterr().err
    assert "'rounds' = 'zero' has type str, expected int" in err


def test_unknown_key_gets_the_closest_key_not_the_whole_list(capsys):
    assert main(["simulate", "--set", "algoritm=fedlaavg"]) == ConfigError.EXIT_STATUS
    err = capsys.readouterr().err
    assert err == ("fedkit: configuration error: unknown config key 'algoritm' (did you mean "
                   "'algorithm'?); `fedkit simulate --list-keys` lists every key\n")


@pytest.mark.parametrize("argv", [
    ["simulate", "--set", "algoritm=fedlaavg"],                       # unknown key
    ["simulate", "--set", "rounds=0"],                                # out of range
    ["simulate", "--set", "model=resnet"],                            # not one of the choices
    ["simulate", "--config", "no/such/file.toml"],                    # missing file
    ["simulate", "--set", "availability=nosuch"],                     # unknown scenario
    ["simulate", "--compare", "algorithm=fedavg"],                    # one value to compare
    ["simulate", "--runtime", "ray"],                                 # bad option (argparse)
    ["bench", "simulations/availability_zoo.toml", "--only", "algoritm=fedavg"],  # bench
    ["deploy", "local", "--set", "roundz=3"],                          # deploy
])
def test_every_configuration_error_has_one_format_and_exit_status(argv, tmp_path):
    # In a subprocess: argparse exits the process; nothing may run before the error.
    argv = [a.replace("simulations/", f"{ROOT}/simulations/") for a in argv]
    done = subprocess.run([sys.executable, "-m", "fedkit.cli", *argv], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == ConfigError.EXIT_STATUS == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("fedkit: configuration error: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing was written


def test_unknown_scenario_names_the_shipped_ones(capsys):
    assert main(["simulate", "--set", "availability=markow"]) == 2
    err = capsys.readouterr().err
    assert "config key 'availability' = 'markow'" in err and "markov" in err


def test_missing_cifar10_folder_exits_1_with_where_to_put_it(tmp_path, capsys, monkeypatch):
    # Make the fallback download fail fast and offline.
    import torchvision

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_network)
    code = main(["simulate", "--config", "simulations/cifar10_fedavg.toml", "--set", "rounds=1",
                 "--data-dir", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "CIFAR-10 not found" in err and "FEDKIT_DATA" in err and "--data-dir" in err


def test_list_keys_is_toml_equal_to_the_defaults_with_description_and_values(capsys, tmp_path):
    assert main(["simulate", "--list-keys"]) == 0
    out = capsys.readouterr().out
    assert tomllib.loads(out) == RunConfig().to_dict()
    lines = out.splitlines()
    for info in config_keys():
        (i,) = [i for i, line in enumerate(lines) if line.startswith(f"{info.name} = ")]
        assert lines[i - 1] == f"# {info.description}"
        assert lines[i].endswith(f"  # {info.accepted}")
    assert 'algorithm = "fedavg"  # one of "fedavg", "fedlaavg", "mifa", "fedau", "fedvarp"' \
        in lines
    assert "mifa_wait_for_all = true  # boolean" in lines and "rounds = 30  # integer > 0" in lines
    # It is a valid --config file.
    (tmp_path / "keys.toml").write_text(out)
    assert RunConfig.from_mapping(load_config_file(tmp_path / "keys.toml")) == RunConfig()


def test_progress_lines_are_told_apart_from_other_log_lines():
    stream = io.StringIO()
    ProgressLine(2, stream=stream, every_s=0.0).update(1, loss=0.5, accuracy=0.25)
    assert is_progress_line(stream.getvalue())
    assert not is_progress_line("INFO :      [ROUND 1]\n")
    assert not is_progress_line("round 1/2\n")


@pytest.mark.parametrize("tty", [False, True])
def test_progress_line_shows_round_loss_accuracy_and_eta(tty):
    stream = io.StringIO()
    stream.isatty = lambda: tty  # type: ignore[method-assign]
    bar = ProgressLine(4, stream=stream, every_s=0.0)
    bar.update(2, loss=0.5, accuracy=0.25)
    bar.update(4, loss=0.25, accuracy=0.5)
    text = stream.getvalue()
    assert "round 2/4" in text and "loss 0.5000" in text and " 25.0%" in text and "ETA" in text
    assert text.endswith("\n") and "round 4/4" in text


def test_compare_runs_each_value_and_prints_the_gap_table(tmp_path, capsys):
    code = main(["simulate", "--config", "simulations/demo.toml", "--set", "rounds=4",
                 "--set", "num_clients=20", "--set", "clients_per_round=4", "--quiet",
                 "--output-dir", str(tmp_path), "--compare", "algorithm=fedavg,fedlaavg"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| fedavg | alternating | 4 |" in out and "| fedlaavg | alternating | 4 |" in out
    assert "final - fedavg" in out
    for algorithm in ("fedavg", "fedlaavg"):
        results = json.loads((tmp_path / f"algorithm={algorithm}" / "results.json").read_text())
        assert results["config"]["algorithm"] == algorithm
    assert (tmp_path / "comparison.md").read_text().startswith("| algorithm |")
    assert (tmp_path / "comparison.png").stat().st_size > 1000


def test_compare_needs_two_values(capsys):
    assert main(["simulate", "--compare", "algorithm=fedavg"]) == 2
    assert "expected at least two" in capsys.readouterr().err
