"""What the row floor releases and what exact counts still expose, from the MovieLens data.

Issue 18, attack 4 (docs/submodel.md, "Rows released only in crowds"). For rounds of the
MovieLens submodel task (``simulations/submodel_movielens.toml``: users sampled as the server
samples them, each user's real set S, the union U of the cohort, S'' by double randomized
response with eps2 from a seeded generator, the SecAgg+ graph on random keys), this counts,
for floors F = 1 (off), 2, 3, ... and the threshold t, without running the protocol:

* ``blocks_released``: the fraction of (client, row of S'') blocks that reach the sums -- a
  crowd is a connected group of holders of the row in the graph, released when every member
  has at least F - 1 neighbours holding the row (the rule of ``fedkit.privacy.submodel``,
  spelled out again here);
* ``true_released``: the same over the blocks the client truly used (j in S ∩ S''): the
  share of the training signal that reaches the model;
* ``rows_withheld``: rows some client held that no released crowd covers;
* ``bits_exposed``: the fraction of blocks whose client's true bit a server learns exactly
  from its crowd's count because the count is 0 or the crowd's size (every member used the
  row, or none did) -- what exact counts still reveal under the floor.

No dropouts (every client survives). Usage: ``python benchmarks/submodel_crowds.py
[--rounds R]``; writes ``benchmarks/results/submodel_crowds.json``.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "submodel_crowds.json"
DATA = ROOT.parent / "shared" / "data" / "movielens-100k"
SETTINGS = [  # (clients per round, SecAgg+ degree k; None = complete graph)
    (100, 14), (100, None), (10, None),
]


def _crowds(holders: list[int], graph: dict[int, frozenset[int]]) -> list[list[int]]:
    """Connected groups of ``holders`` in ``graph``."""
    left, out = set(holders), []
    while left:
        stack = [left.pop()]
        crowd = list(stack)
        while stack:
            for v in graph[stack.pop()] & left:
                left.discard(v)
                stack.append(v)
                crowd.append(v)
        out.append(crowd)
    return out


def one_round(reals, perturbed, graph, floors) -> dict[int, dict[str, float]]:
    """The four fractions per floor for one cohort."""
    by_row: dict[int, list[int]] = {}
    for c, rows in perturbed.items():
        for j in rows.tolist():
            by_row.setdefault(j, []).append(c)
    used = {c: set(np.intersect1d(perturbed[c], reals[c]).tolist()) for c in perturbed}
    blocks = sum(rows.size for rows in perturbed.values())
    true_blocks = sum(len(u) for u in used.values())
    out = {}
    for floor in floors:
        released = released_true = exposed = withheld_rows = 0
        for j, holders in by_row.items():
            any_released = False
            for crowd in _crowds(holders, graph):
                members = set(crowd)
                if all(1 + len(graph[c] & members) >= floor for c in crowd):
                    any_released = True
                    released += len(crowd)
                    count = sum(j in used[c] for c in crowd)
                    released_true += count
                    if count in (0, len(crowd)):
                        exposed += len(crowd)
            withheld_rows += not any_released
        out[floor] = {"blocks_released": released / blocks,
                      "true_released": released_true / max(true_blocks, 1),
                      "rows_withheld": withheld_rows / max(len(by_row), 1),
                      "bits_exposed": exposed / blocks}
    return out


def main() -> None:
    from fedkit.algorithms.sampling import sample_uniform
    from fedkit.config import RunConfig
    from fedkit.flower.submodel.task import load_rec_data, real_set
    from fedkit.privacy.graph import communication_graph, neighbourhood_size
    from fedkit.submodel import PRESETS, PermanentMemo, perturb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    values = tomllib.loads((ROOT / "simulations" / "submodel_movielens.toml").read_text())
    values["data_dir"] = str(args.data_dir)
    cfg = RunConfig.from_mapping(values)
    data = load_rec_data(cfg)
    rng = np.random.default_rng(cfg.seed)
    report = {"preset": "eps2", "rounds": args.rounds, "negatives": cfg.submodel_negatives,
              "settings": []}
    for n, k in SETTINGS:
        degree = neighbourhood_size(n, k)
        t = min(degree + 1, (degree + 1) // 2 + 1)
        floors = sorted({1, 2, 3, 4, 6, t})
        sums: dict[int, dict[str, float]] = {f: {} for f in floors}
        for r in range(1, args.rounds + 1):
            cohort = sample_uniform(list(range(cfg.num_clients)), n, seed=cfg.seed,
                                    server_round=r)
            reals = {c: real_set(cfg, data, c) for c in cohort}
            union = np.unique(np.concatenate(list(reals.values())))
            perturbed = {c: perturb(reals[c], union, PermanentMemo(), PRESETS["eps2"], rng)[0]
                         for c in cohort}
            graph = communication_graph(cohort, k, rng.bytes(32))
            for f, figures in one_round(reals, perturbed, graph, floors).items():
                for key, value in figures.items():
                    sums[f][key] = sums[f].get(key, 0.0) + value / args.rounds
        report["settings"].append({"clients_per_round": n, "num_neighbours": k,
                                   "threshold": t, "floors": {str(f): sums[f] for f in floors}})
        print(f"n = {n}, k = {k}, t = {t}")
        for f in floors:
            print(f"  F = {f}: " + ", ".join(f"{key} {v:.3f}" for key, v in sums[f].items()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
