"""The ``fedkit`` command.

``fedkit simulate`` runs one experiment from a ``simulations/*.toml`` file (plus ``--set``
overrides) on fedkit's in-process grid or under Flower's Simulation Engine, shows a progress
line, writes ``runs/<name>/results.json`` and ``accuracy.png``, and prints a summary table.
``fedkit bench`` runs a benchmark suite (a grid of runs, resumable) and ``fedkit report``
rebuilds a suite's summary and plots from its files (``docs/benchmarks.md``). ``fedkit
deploy`` starts SuperLink/SuperNodes and runs on Flower's Deployment Engine
(``docs/deployment.md``).

Exit status: 0 on success; 1 when a run fails (a run error, missing data, a Flower run that
did not complete); 2 on a configuration error (a bad option, config key, value or file),
reported as one line ``fedkit: configuration error: <message>`` before anything runs
(:class:`~fedkit.config.ConfigError`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from fedkit.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    config_keys,
    load_config_file,
)
from fedkit.flower.runtime.flwr_cli import FlowerRunError

if TYPE_CHECKING:
    from fedkit.flower.runtime.ray_cluster import RayOptions

__all__ = ["main", "build_parser", "list_keys_toml"]

DEFAULT_ENGINE = "batched"
EXIT_FAILED = 1

_EPILOG = f"""examples:
  fedkit simulate                                    # the embedded demo (Synthetic(1,1), logreg)
  fedkit simulate --config simulations/cifar10_fedavg.toml --set rounds=3
  fedkit simulate --config simulations/demo.toml --runtime flower --set rounds=2
  fedkit simulate --list-keys > my_run.toml          # every key, its meaning and values
  fedkit bench simulations/availability_zoo.toml --jobs 2
  fedkit simulate --runtime flower --ray-address 10.0.0.5:6379   # on a Ray cluster
  fedkit report runs/availability_zoo

exit status:
  0  success
  {EXIT_FAILED}  the run failed (a run error, missing data, a Flower run that did not complete)
  {ConfigError.EXIT_STATUS}  configuration error (a bad option, config key, value or file); nothing
     ran. Always one line on stderr: "fedkit: configuration error: <what is wrong, what
     was expected>", e.g. "... unknown config key 'algoritm' (did you mean 'algorithm'?)"
"""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, reporting a bad command line as fedkit's configuration error."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ConfigError.EXIT_STATUS, ConfigError(message).line() + "\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fedkit`` command and its subcommands."""
    parser = _Parser(
        prog="fedkit",
        description="Federated learning under intermittent client availability, on Flower.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fedkit {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at INFO level; --runtime flower: show Flower's whole log")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sim = sub.add_parser(
        "simulate",
        help="run one federated experiment and write its results",
        description=(
            "Run one federated experiment. The run config is read from --config (flat TOML "
            "keys; see fedkit/config.py or `fedkit simulate --list-keys`), then --set "
            "overrides are applied. Results go to runs/<name>/results.json and accuracy.png."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("--config", "-c", type=Path, default=None,
                     help="experiment file (TOML); default: the built-in demo settings")
    sim.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override one config key (repeatable), e.g. --set rounds=3")
    sim.add_argument("--runtime", choices=("inprocess", "flower"), default="inprocess",
                     help="inprocess: fedkit's grid, no Ray (default); flower: `flwr run` "
                          "under Flower's Simulation Engine (Ray)")
    sim.add_argument("--engine", choices=("batched", "sequential"), default=DEFAULT_ENGINE,
                     help="--runtime inprocess: train each round's clients together (batched, "
                          "torch.func) or one message at a time (sequential); default "
                          f"{DEFAULT_ENGINE}")
    sim.add_argument("--device", default="cpu",
                     help="--engine batched: torch device of the batched computation "
                          "(cpu, cuda, cuda:1, ...); default cpu")
    sim.add_argument("--data-dir", type=Path, default=None,
                     help="folder holding cifar-10-batches-py/ (default: $FEDKIT_DATA or "
                          "the per-user cache folder); same as --set data_dir=...")
    sim.add_argument("--output-dir", type=Path, default=None,
                     help="results folder (default: runs/<name>)")
    sim.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    _add_ray_arguments(sim)
    sim.add_argument("--compare", metavar="KEY=V1,V2,...", default=None,
                     help="run once per value of KEY (into runs/<name>/<KEY>=<value>/) and "
                          "print a side-by-side table and comparison.png, e.g. "
                          "--compare algorithm=fedavg,fedlaavg")
    sim.add_argument("--list-keys", action="store_true",
                     help="print every config key as TOML (a valid --config file): its "
                          "default, a one-line description and the accepted values; exit")
    _add_bench_parsers(sub)
    from fedkit.deploy.cli import add_parser as add_deploy_parser

    add_deploy_parser(sub)
    return parser


def _add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``--runtime flower``: where the virtual clients run (docs/scaling.md)."""
    parser.add_argument("--cpus-per-client", type=float, default=1.0,
                        help="--runtime flower: CPUs Ray reserves per virtual client, a whole "
                             "number (default 1)")
    parser.add_argument("--gpus-per-client", type=float, default=0.0,
                        help="--runtime flower: GPUs Ray reserves per virtual client; 0.25 "
                             "puts four clients on one GPU (default 0)")
    parser.add_argument("--ray-address", default=None, metavar="HOST:PORT|auto",
                        help="--runtime flower: run the virtual clients on this running Ray "
                             "cluster (its head node's address, or auto: $RAY_ADDRESS or the "
                             "cluster `ray start` recorded here) instead of a Ray of their "
                             "own; run fedkit on a node of that cluster (docs/scaling.md)")


def _ray_options(args: argparse.Namespace) -> RayOptions | None:
    """The validated :class:`~fedkit.flower.runtime.ray_cluster.RayOptions` of the command
    line, or None for the in-process runtime (which takes none of them).

    Raises:
        ConfigError: If a value is malformed, or a Ray option is given without --runtime
            flower.
    """
    from fedkit.flower.runtime.ray_cluster import RayOptions

    if args.runtime != "flower":
        given = [flag for flag, value, default in (
            ("--ray-address", args.ray_address, None),
            ("--cpus-per-client", args.cpus_per_client, 1.0),
            ("--gpus-per-client", args.gpus_per_client, 0.0)) if value != default]
        if given:
            raise ConfigError(f"{given[0]} applies to --runtime flower only (the runtime is "
                              f"{args.runtime!r}); add --runtime flower or drop it")
        return None
    return RayOptions(address=args.ray_address, num_cpus_per_client=args.cpus_per_client,
                      num_gpus_per_client=args.gpus_per_client)


def _add_bench_parsers(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "bench", help="run a benchmark suite (a grid of runs), resumable, and summarise it",
        description=(
            "Run every run of a suite file (a base config and a grid of swept keys; see "
            "docs/benchmarks.md) into <output-dir>/runs/<run>/, skipping finished runs and "
            "resuming interrupted ones from their checkpoints, then write summary.csv, "
            "summary.md and plots into <output-dir>."
        ),
    )
    bench.add_argument("suite", type=Path, help="suite file (TOML)")
    bench.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE",
                       help="override one run-config key in every run (repeatable), e.g. "
                            "--set rounds=3000")
    bench.add_argument("--jobs", "-j", type=int, default=None,
                       help="runs at once, each in its own process with its share of the "
                            "CPU threads (default: the suite's jobs, else 1)")
    bench.add_argument("--output-dir", type=Path, default=None,
                       help="suite folder (default: the suite's output_dir, else "
                            "runs/<suite name>)")
    bench.add_argument("--runtime", choices=("inprocess", "flower"), default="inprocess",
                       help="inprocess: fedkit's grid (default); flower: each run with `flwr "
                            "run` under Flower's Simulation Engine (Ray), one run at a time")
    bench.add_argument("--engine", choices=("batched", "sequential"), default=DEFAULT_ENGINE,
                       help=f"in-process engine (default {DEFAULT_ENGINE})")
    bench.add_argument("--device", default="cpu",
                       help="--engine batched: torch device (cpu, cuda, ...); default cpu")
    bench.add_argument("--quiet", "-q", action="store_true", help="no per-round progress line")
    bench.add_argument("--only", action="append", default=[], metavar="KEY=V1,V2",
                       help="run only the runs whose KEY is one of the values (repeatable), "
                            "e.g. --only algorithm=fedavg,fedlaavg --only availability=alternating")
    _add_ray_arguments(bench)
    report = sub.add_parser(
        "report", help="rebuild a suite folder's summary and plots from its results files",
        description="Write summary.csv, summary.md and the plots of a suite folder from its "
                    "suite.json and runs/*/results.json, without running anything.",
    )
    report.add_argument("folder", type=Path, help="suite folder (the bench --output-dir)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fedkit")
    except PackageNotFoundError:
        return "unknown"


def _resolve_config(args: argparse.Namespace) -> RunConfig:
    values = load_config_file(args.config) if args.config is not None else {}
    values = apply_overrides(values, args.overrides)
    if args.data_dir is not None:
        values["data_dir"] = str(args.data_dir)
    if args.output_dir is not None:
        values["output_dir"] = str(args.output_dir)
    if args.quiet:
        values["progress"] = False
    cfg = RunConfig.from_mapping(values)
    if cfg.availability_enforce == "server":  # under "client" the name is the devices' own
        _check_scenario(cfg.availability)
    # Other processes (Flower's ServerApp) resolve paths elsewhere: make them absolute.
    changes = {"output_dir": str(cfg.results_dir.resolve())}
    if cfg.data_dir:
        changes["data_dir"] = str(Path(cfg.data_dir).expanduser().resolve())
    return cfg.replace(**changes)


def _check_scenario(name: str) -> None:
    from fedkit.availability import load_scenario

    try:
        load_scenario(name)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"config key 'availability' = {name!r}: {exc}") from None


def list_keys_toml() -> str:
    """Every run-config key as TOML: a comment line with its description above it, the
    accepted values after it. Parsed back, it equals ``RunConfig().to_dict()``."""
    import tomli_w

    lines = ["# fedkit run config: every key with its default (fedkit simulate --list-keys).",
             "# Use it as a --config file, or set single keys with --set KEY=VALUE.",
             "# Above each key what it means, after it the values fedkit accepts."]
    for info in config_keys():
        value = tomli_w.dumps({info.name: info.default}).rstrip("\n")
        lines += ["", f"# {info.description}".rstrip(), f"{value}  # {info.accepted}"]
    return "\n".join(lines) + "\n"


def _print_summary(cfg: RunConfig, results: dict) -> None:
    rows = _submodel_rows(cfg, results) if cfg.task == "submodel" else _classification_rows(
        cfg, results)
    width = max(len(k) for k, _ in rows)
    print("-" * (width + 40))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("-" * (width + 40))


def _classification_rows(cfg: RunConfig, results: dict) -> list[tuple[str, str]]:
    summary = results["summary"]

    def pct(x: float | None) -> str:
        return f"{100 * x:.2f}%" if x is not None else "-"

    return [
        ("run", cfg.name),
        ("runtime", results["runtime"]),
        ("algorithm / model", f"{cfg.algorithm} / {cfg.model}"),
        ("dataset / partition", f"{cfg.dataset} / {cfg.partition}"),
        ("clients (N) / per round (K)", f"{cfg.num_clients} / {cfg.clients_per_round}"),
        ("rounds", str(summary["rounds"])),
        ("final test accuracy", pct(summary["final_accuracy"])),
        ("availability", cfg.availability),
        ("best test accuracy", f"{pct(summary['best_accuracy'])} "
                               f"(round {summary.get('best_round', '-')})"),
        ("final test loss", f"{summary['final_loss']:.4f}" if summary["final_loss"] else "-"),
        ("rejected replies", str(summary["total_rejected"])),
        ("mean seconds / round", f"{summary['mean_round_seconds']:.3f}"),
        ("results", str(cfg.results_dir / "results.json")),
        ("plot", str(cfg.results_dir / "accuracy.png")),
    ]


def _submodel_rows(cfg: RunConfig, results: dict) -> list[tuple[str, str]]:
    """The summary of a submodel run: no classifier, algorithm, accuracy or plot apply."""
    summary = results["summary"]
    section = results.get("submodel") or {}

    def num(x: float | None, fmt: str = ".4f") -> str:
        return "-" if x is None else format(x, fmt)

    mode = cfg.submodel_mode
    privacy = "-" if mode != "secure" else (
        f"{cfg.submodel_preset} (epsilon per round {num(section.get('epsilon_round'), '.3f')}"
        f", long-term {num(section.get('epsilon_long_term'), '.3f')})"
        if section.get("epsilon_round") is not None
        else f"{cfg.submodel_preset} (no privacy: epsilon unbounded)")
    return [
        ("run", cfg.name),
        ("runtime", results["runtime"]),
        ("task / mode", f"submodel / {mode}"),
        ("privacy preset", privacy),
        ("dataset / embedding dim", f"{cfg.dataset} / {cfg.embedding_dim}"),
        ("clients (N) / per round (K)", f"{cfg.num_clients} / {cfg.clients_per_round}"),
        ("rounds", str(summary["rounds"])),
        ("final test AUC / HR@10", f"{num(summary.get('final_auc'))} / "
                                   f"{num(summary.get('final_hr10'))}"),
        ("best test AUC", num(summary.get("best_auc"))),
        ("mean bytes down / up per client", f"{num(summary.get('mean_download_bytes'), '.0f')}"
                                            f" / {num(summary.get('mean_upload_bytes'), '.0f')}"),
        ("aborted rounds", str(summary.get("aborted_rounds") or "-")),
        ("mean seconds / round", f"{summary['mean_round_seconds']:.3f}"),
        ("results", str(cfg.results_dir / "results.json")),
    ]


def _run_one(cfg: RunConfig, args: argparse.Namespace) -> None:
    ray = _ray_options(args)
    if args.runtime == "inprocess":
        from fedkit.flower import run_inprocess

        run_inprocess(cfg.to_dict(), num_nodes=cfg.num_clients, seed=cfg.seed,
                      engine=args.engine, device=args.device)
    else:
        from fedkit.flower.runtime.simulation import run_flower_simulation

        # -v: Flower's whole log; otherwise the SuperLink line and the progress lines (round,
        # loss, accuracy) unless --quiet.
        run_flower_simulation(
            cfg, num_cpus_per_client=ray.num_cpus_per_client,
            num_gpus_per_client=ray.num_gpus_per_client, ray_address=ray.address,
            stream_to=sys.stderr if args.verbose else None,
            progress_to=None if args.quiet else sys.stderr,
        )


def _compare(cfg: RunConfig, args: argparse.Namespace) -> int:
    from fedkit.bench import read_results
    from fedkit.bench.compare import comparison_table, plot_comparison
    from fedkit.config import parse_override

    key, _ = parse_override(args.compare)
    raw = args.compare.partition("=")[2]
    choices = [parse_override(f"{key}={v}")[1] for v in raw.split(",") if v.strip()]
    if len(choices) < 2:
        raise ConfigError(f"--compare {args.compare!r} names {len(choices)} value(s), "
                          "expected at least two separated by commas")
    results = []
    for value in choices:
        run_cfg = cfg.replace(**{key: value,
                                 "output_dir": str(cfg.results_dir / f"{key}={value}")})
        print(f"== {key} = {value}", file=sys.stderr)
        _run_one(run_cfg, args)
        results.append(read_results(run_cfg.results_dir))
    table = comparison_table(results, key)
    (cfg.results_dir / "comparison.md").write_text(table + "\n")
    plot = plot_comparison(results, key, cfg.results_dir / "comparison.png")
    print(table)
    print(f"\nresults: {cfg.results_dir}/{key}=*/results.json; plot: {plot}")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    if args.list_keys:
        sys.stdout.write(list_keys_toml())
        return 0
    cfg = _resolve_config(args)
    _ray_options(args)  # a bad Ray option is a configuration error before anything runs
    if args.compare:
        return _compare(cfg, args)
    from fedkit.bench import read_results

    _run_one(cfg, args)
    _print_summary(cfg, read_results(cfg.results_dir))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from fedkit.bench.runner import run_suite
    from fedkit.bench.suite import load_suite

    suite = load_suite(args.suite, args.overrides, output_dir=args.output_dir)
    if args.only:
        suite = suite.only(args.only)
    outcomes = run_suite(suite, jobs=args.jobs, engine=args.engine, device=args.device,
                         quiet=args.quiet, ray=_ray_options(args))
    failed = [o.name for o in outcomes if o.status == "failed"]
    print(f"summary: {suite.output_dir / 'summary.md'}; "
          f"{len(outcomes) - len(failed)} of {len(outcomes)} runs have results"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _report(args: argparse.Namespace) -> int:
    from fedkit.bench.report import write_report

    for path in write_report(args.folder):
        print(path)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from fedkit.deploy.cli import main as deploy_main

    return deploy_main(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fedkit`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {"simulate": _simulate, "bench": _bench, "report": _report,
                "deploy": _deploy}
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print(exc.line(), file=sys.stderr)
        return ConfigError.EXIT_STATUS
    except FileNotFoundError as exc:  # e.g. the dataset is not where the config says
        print(f"fedkit: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FlowerRunError as exc:
        print(f"fedkit: run failed: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
