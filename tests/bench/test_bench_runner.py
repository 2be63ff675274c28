"""Running a suite: one results folder per run, a summary computed from the results files,
`fedkit report` reproducing it, plots, and resuming without redoing finished runs."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
import textwrap
from pathlib import Path

import matplotlib.image
import pytest

from fedkit.bench.results import read_results
from fedkit.bench.runner import run_state, run_suite
from fedkit.bench.suite import load_suite
from fedkit.cli import main
from fedkit.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ["scenario", "algorithm", "seed", "rounds", "final_acc", "max_acc",
            "mean_last10_acc"]
SUITE = """
    [suite]
    name = "tiny"
    description = "A tiny suite for the tests."
    checkpoint_every = 1
    accuracy_targets = [0.3, 0.5]

    [base]
    include = "{demo}"
    num_clients = 10
    clients_per_round = 3
    rounds = 3

    [grid]
    availability = ["alternating"]
    algorithm = ["fedavg", "fedlaavg"]
    seed = [0, 1]
"""


def write_suite(folder: Path, text: str = SUITE) -> Path:
    path = folder / "tiny.toml"
    path.write_text(textwrap.dedent(text.format(demo=ROOT / "simulations" / "demo.toml")))
    return path


def bench(path: Path, out: Path, *overrides: str, jobs: int = 1):
    suite = load_suite(path, list(overrides), output_dir=out)
    return suite, run_suite(suite, jobs=jobs, quiet=True, stream=io.StringIO())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def png_ok(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(
        path).ndim == 3


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("suite")
    suite, outcomes = bench(write_suite(folder), folder / "out")
    assert [o.status for o in outcomes] == ["ran"] * 4
    return suite.output_dir


def test_every_run_has_its_results_folder(suite_dir):
    runs = sorted(p.name for p in (suite_dir / "runs").iterdir())
    assert runs == sorted(f"availability=alternating__algorithm={a}__seed={s}"
                          for a in ("fedavg", "fedlaavg") for s in (0, 1))
    for name in runs:
        results = read_results(suite_dir / "runs" / name)
        assert results["config"]["name"] == name and len(results["rounds"]) == 3
        assert (suite_dir / "runs" / name / "checkpoint" / "state.json").is_file()


def test_summary_csv_holds_the_values_of_the_results_files(suite_dir):
    rows = read_csv(suite_dir / "summary.csv")
    assert len(rows) == 4
    assert set(REQUIRED + ["rounds_to_0.3", "rounds_to_0.5", "participation_mean",
                           "staleness_mean", "staleness_max", "wall_s"]) <= set(rows[0])
    for row in rows:
        res = read_results(suite_dir / "runs" / row["name"])
        accs = [(r["round"], r["test_accuracy"]) for r in res["rounds"]
                if r.get("test_accuracy") is not None]
        assert (row["scenario"], row["algorithm"]) == ("alternating", res["config"]["algorithm"])
        assert int(row["seed"]) == res["config"]["seed"] and int(row["rounds"]) == 3
        assert float(row["final_acc"]) == accs[-1][1]
        assert float(row["max_acc"]) == max(a for _, a in accs)
        assert float(row["mean_last10_acc"]) == accs[-1][1]  # 3 evaluations: the last one
        for target in (0.3, 0.5):
            reached = [r for r, a in accs if a >= target]
            assert row[f"rounds_to_{target}"] == (str(reached[0]) if reached else "")
        card = res["scenario_card"]
        assert float(row["participation_mean"]) == card["participation_rate_summary"]["mean"]
        assert float(row["staleness_mean"]) == card["staleness"]["mean"]
        assert float(row["wall_s"]) == sum(r["seconds"] for r in res["rounds"])


def test_summary_md_shows_mean_and_std_over_seeds(suite_dir):
    rows = read_csv(suite_dir / "summary.csv")
    text = (suite_dir / "summary.md").read_text()
    assert "A tiny suite for the tests." in text
    assert "Rounds actually run: 3 (configured: 3)" in text
    for algorithm in ("fedavg", "fedlaavg"):
        final = [100 * float(r["final_acc"]) for r in rows if r["algorithm"] == algorithm]
        cell = f"{statistics.fmean(final):.2f} ± {statistics.stdev(final):.2f}"
        assert f"| alternating | {algorithm} | 2 | 3 | {cell} |" in text


def test_plots_are_valid_pngs(suite_dir):
    for name in ("accuracy_alternating.png", "participation_alternating.png"):
        assert png_ok(suite_dir / name)
        assert f"]({name})" in (suite_dir / "summary.md").read_text()


def test_report_rebuilds_the_summary_from_the_files_alone(suite_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(suite_dir, copy)  # elsewhere: the report must not need the old paths
    for name in ("summary.csv", "summary.md", "accuracy_alternating.png",
                 "participation_alternating.png"):
        (copy / name).unlink()
    assert main(["report", str(copy)]) == 0
    assert (copy / "summary.csv").read_text() == (suite_dir / "summary.csv").read_text()
    assert (copy / "summary.md").read_text() == (suite_dir / "summary.md").read_text()
    assert png_ok(copy / "participation_alternating.png")
    assert "summary.csv" in capsys.readouterr().out


def test_report_of_a_folder_without_a_suite_fails_saying_why(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 1
    assert "no suite.json" in capsys.readouterr().err


def test_finished_runs_are_skipped_and_untouched(suite_dir):
    suite = load_suite(write_suite(suite_dir.parent), output_dir=suite_dir)
    files = [run.config.results_dir / "results.json" for run in suite.runs]
    before = [f.stat().st_mtime_ns for f in files]
    outcomes = run_suite(suite, quiet=True, stream=io.StringIO())
    assert [o.status for o in outcomes] == ["skipped"] * 4
    assert [f.stat().st_mtime_ns for f in files] == before


def test_a_run_started_with_another_config_is_refused(suite_dir):
    suite = load_suite(write_suite(suite_dir.parent), ["lr=0.1"], output_dir=suite_dir)
    with pytest.raises(ConfigError, match=r"records lr = 0.05, the suite now says 0.1"):
        run_suite(suite, quiet=True, stream=io.StringIO())


def test_interrupted_runs_resume_from_their_checkpoints(tmp_path):
    path = write_suite(tmp_path, SUITE.replace("seed = [0, 1]", "seed = [0]"))
    suite, _ = bench(path, tmp_path / "out", "rounds=2")
    done, lost = (run.config.results_dir for run in suite.runs)
    first = {d: read_results(d)["rounds"] for d in (done, lost)}
    done_mtime = (done / "results.json").stat().st_mtime_ns
    # Interrupted after its last checkpoint, before results.json was written:
    (lost / "results.json").unlink()
    assert [run_state(run) for run in suite.runs] == ["finished", "resume"]
    _, outcomes = bench(path, tmp_path / "out", "rounds=2")
    assert [(o.state, o.status) for o in outcomes] == [("finished", "skipped"),
                                                       ("resume", "ran")]
    assert (done / "results.json").stat().st_mtime_ns == done_mtime
    # No round was re-run: the records (their timings included) are the checkpoint's.
    assert read_results(lost)["rounds"] == first[lost]
    # Longer runs continue from round 3, two at a time in worker processes.
    _, outcomes = bench(path, tmp_path / "out", "rounds=4", jobs=2)
    assert [(o.state, o.status) for o in outcomes] == [("resume", "ran")] * 2
    for folder in (done, lost):
        rounds = read_results(folder)["rounds"]
        assert [r["round"] for r in rounds] == [1, 2, 3, 4]
        assert rounds[:2] == first[folder]
    rows = read_csv(tmp_path / "out" / "summary.csv")
    assert [row["rounds"] for row in rows] == ["4", "4"]


def test_report_shows_runs_in_progress_from_their_interim_results(tmp_path):
    # A suite extended to 4 rounds whose runs have done 2 (as while `fedkit bench --set
    # rounds=4` is still running: its manifest already says 4).
    path = write_suite(tmp_path, SUITE.replace("seed = [0, 1]", "seed = [0]"))
    bench(path, tmp_path / "out", "rounds=2")
    manifest_path = tmp_path / "out" / "suite.json"
    manifest = json.loads(manifest_path.read_text())
    for run in manifest["runs"]:
        run["config"]["rounds"] = 4
    manifest_path.write_text(json.dumps(manifest))
    from fedkit.bench.report import write_report

    write_report(tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "summary.csv")
    assert [(row["rounds"], row["rounds_configured"]) for row in rows] == [("2", "4")] * 2
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "2 run(s) in progress or interrupted" in text
    assert all(f"{run['name']} (2 of 4)" in text for run in manifest["runs"])


def test_bench_command_runs_a_suite_and_writes_the_summary(tmp_path, capsys):
    path = write_suite(tmp_path, SUITE.replace("seed = [0, 1]", "seed = [0]")
                       .replace('["fedavg", "fedlaavg"]', '["fedau"]'))
    code = main(["bench", str(path), "--set", "rounds=2", "--output-dir", str(tmp_path / "o"),
                 "--engine", "sequential", "--quiet"])
    assert code == 0
    assert "1 of 1 runs have results" in capsys.readouterr().out
    (row,) = read_csv(tmp_path / "o" / "summary.csv")
    assert (row["algorithm"], row["rounds"], row["rounds_configured"]) == ("fedau", "2", "2")
    manifest = json.loads((tmp_path / "o" / "suite.json").read_text())
    assert manifest["runs"][0]["name"] == row["name"]


def test_runs_selected_with_only_add_to_the_summary_of_earlier_selections(tmp_path):
    # `--only` picks what to run now; runs an earlier selection finished stay in the suite.
    path = write_suite(tmp_path, SUITE.replace("seed = [0, 1]", "seed = [0]"))
    out = tmp_path / "out"
    for algorithm in ("fedavg", "fedlaavg"):
        suite = load_suite(path, ["rounds=2"], output_dir=out).only([f"algorithm={algorithm}"])
        (outcome,) = run_suite(suite, quiet=True, stream=io.StringIO())
        assert outcome.status == "ran"
    manifest = json.loads((out / "suite.json").read_text())
    assert sorted(run["config"]["algorithm"] for run in manifest["runs"]) == ["fedavg",
                                                                               "fedlaavg"]
    rows = read_csv(out / "summary.csv")
    assert sorted(row["algorithm"] for row in rows) == ["fedavg", "fedlaavg"]


def test_results_file_keeps_one_round_per_line_and_reads_back_unchanged(suite_dir):
    from fedkit.bench.results import dumps_results

    path = next(suite_dir.glob("runs/*/results.json"))
    document = json.loads(path.read_text())
    assert dumps_results(document) == path.read_text()
    lines = path.read_text().splitlines()
    round_lines = [line for line in lines if line.startswith('{"round":')]
    assert len(round_lines) == len(document["rounds"]) == 3
    assert json.loads(dumps_results(document)) == document
