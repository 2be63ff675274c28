"""Cost of the private set union (PSU) of secure federated submodel learning: Bloom filters
against index vectors, over synthetic vocabularies of 10^4 to 10^7 items.

Workload (docs/submodel.md, "Private set union"): n = 100 clients per round, each holding
100 distinct items drawn uniformly from a vocabulary of V items (Niu et al.'s code caps a
history at 100 items, a public bound). Two encodings of a client's set, both random-valued
``uint32`` vectors (fresh values in [1, 2^32) at the set positions, so the sum hides per-item
counts):

* **Bloom filter** (``fedkit.submodel.random_valued_filter``) sized by
  ``bloom_size(min(n * 100, V), 1%)``: the server's public upper bound on the union size;
  m = 95,851 ring elements and k = 7 for every V >= 10^4;
* **index vector** (``fedkit.submodel.index_vector``): V ring elements, as in the released code.

Per V and encoding: the masked-vector upload per client (4 bytes per ring element; the
secure-aggregation key and share messages come on top, see ``benchmarks/secagg.py``), the
client's encoding time (median over the 100 clients), the plain modular sum of the 100
vectors (uint32 wrap-around: the value secure aggregation outputs, **without** its masking
cost), the server's decoding time (Bloom: every one of the V ids is a candidate; index
vector: non-zero positions), the filter's fill (fraction of non-zero positions; the
false-positive rate given the filter is about fill^k), and the decoded union checked
against the true one (a superset with false positives only, for the Bloom filter; exact
for index vectors).

Secure-aggregation time of the union phase: ``fedkit.privacy.secagg.run_secagg`` with
SecAgg+ (k = 8 neighbours) for **n = 10** clients on vectors of the same length (up to
10^7 elements). ``run_secagg``
takes real vectors and quantises them, so the secure run sums the clients' 0/1 filters (its
cost depends on the length and n only; a random-valued filter would need an integer-input
path). Every secure run checks its sum against the plaintext sum.

Usage:
    python benchmarks/submodel_union.py [--quick] [--output PATH]

Writes benchmarks/results/submodel_union.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from fedkit.submodel import (
    bloom_filter,
    bloom_size,
    decode_index_vector,
    decode_union,
    expected_fpr,
    index_vector,
    murmur3_32,
    random_valued_filter,
)

RESULT = Path(__file__).parent / "results" / "submodel_union.json"
VOCABS = (10**4, 10**5, 10**6, 10**7)
NUM_CLIENTS, SET_SIZE, FPR = 100, 100, 0.01
SECAGG_CLIENTS, SECAGG_MAX_LENGTH = 10, 10**7
BYTES_PER_ELEMENT = 4  # Z_{2^32}


def _union_phase(sets, encode_fn, decode_fn, length: int) -> dict:
    """Encode every client's set, sum mod 2^32, decode; times in seconds."""
    total = np.zeros(length, dtype=np.uint32)
    encode_s, sum_s = [], 0.0
    for ids in sets:
        start = time.perf_counter()
        vector = encode_fn(ids)
        encode_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        total += vector  # uint32 wrap-around: the ring sum
        sum_s += time.perf_counter() - start
    start = time.perf_counter()
    decoded = decode_fn(total)
    decode_s = time.perf_counter() - start
    return {"encode_ms_median": 1e3 * statistics.median(encode_s), "sum_s": sum_s,
            "decode_s": decode_s, "fill": float(np.count_nonzero(total) / length),
            "decoded": decoded}


def _secagg(vectors: list[np.ndarray]) -> dict:
    """One SecAgg+ round over 0/1 vectors; raises unless the sum is exact."""
    from fedkit.privacy.secagg import SecAggConfig, run_secagg

    config = SecAggConfig.secagg_plus(num_clients=len(vectors), vector_length=vectors[0].size)
    start = time.perf_counter()
    total, report = run_secagg([v.astype(np.float64) for v in vectors], None, config,
                               rng=np.random.default_rng(0))
    wall = time.perf_counter() - start
    plain = np.sum(vectors, axis=0, dtype=np.int64)
    if report.rejected or not np.array_equal(np.rint(total).astype(np.int64), plain):
        raise RuntimeError("secure sum of the 0/1 filters differs from the plaintext sum")
    return {
        "num_clients": len(vectors),
        "num_neighbours": config.num_neighbours,
        "threshold": config.threshold,
        "client_ms_median": 1e3 * statistics.median(report.client_seconds.values()),
        "server_s": sum(report.server_seconds.values()),
        "bytes_up_per_client": statistics.median(
            sum(stages.values()) for stages in report.bytes_up.values()),
        "wall_s": wall,
    }


def _row(vocab: int, with_secagg: bool) -> dict:
    rng = np.random.default_rng(vocab)
    sets = [rng.choice(vocab, SET_SIZE, replace=False) for _ in range(NUM_CLIENTS)]
    union = np.unique(np.concatenate(sets))
    m, k = bloom_size(min(NUM_CLIENTS * SET_SIZE, vocab), FPR)
    candidates = np.arange(vocab)

    bloom = _union_phase(sets, lambda ids: random_valued_filter(ids, m, k, rng),
                         lambda total: decode_union(total, candidates, k), m)
    decoded = bloom.pop("decoded")
    if not np.isin(union, decoded).all():
        raise RuntimeError(f"V={vocab}: the Bloom union misses a real item")
    false_positives = int(decoded.size - union.size)
    bloom.update({"m": m, "k": k, "upload_bytes": BYTES_PER_ELEMENT * m,
                  "false_positives": false_positives,
                  "measured_fpr": false_positives / (vocab - union.size),
                  "expected_fpr": expected_fpr(m, k, int(union.size)),
                  "fill_pow_k": bloom["fill"] ** k})

    index = _union_phase(sets, lambda ids: index_vector(ids, vocab, rng), decode_index_vector,
                         vocab)
    if not np.array_equal(index.pop("decoded"), union):
        raise RuntimeError(f"V={vocab}: the index-vector union is not exact")
    index["upload_bytes"] = BYTES_PER_ELEMENT * vocab

    if with_secagg:
        few = sets[:SECAGG_CLIENTS]
        bloom["secagg"] = _secagg([bloom_filter(ids, m, k) for ids in few])
        index["secagg"] = (
            _secagg([index_vector(ids, vocab, random_valued=False) for ids in few])
            if vocab <= SECAGG_MAX_LENGTH else None)
    return {"vocab_size": vocab, "union_size": int(union.size), "bloom": bloom, "index": index,
            "upload_ratio_index_over_bloom": vocab / m}


def _hashing(num_keys: int = 100_000) -> dict:
    """Vectorised MurmurHash3 against a per-key mmh3 loop."""
    import mmh3

    keys = np.arange(num_keys, dtype=np.uint64)
    m, k = bloom_size(num_keys, FPR)

    def best_ms(fn) -> float:  # best of 5: the machine is shared
        times = []
        for _ in range(5):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1e3 * min(times)

    return {
        "num_keys": num_keys, "m": m, "k": k,
        "murmur3_vectorised_ms": best_ms(lambda: murmur3_32(keys, 0)),
        "mmh3_loop_ms": best_ms(lambda: [mmh3.hash(key.to_bytes(8, "little"), 0, signed=False)
                                         for key in keys.tolist()]),
        "bloom_insert_ms": best_ms(lambda: bloom_filter(keys, m, k)),
    }


def _table(rows: list[dict]) -> str:
    lines = ["| V | union | Bloom up (KiB) | index up (KiB) | encode ms B/I | sum s B/I "
             "| decode s B/I | FPR meas./exp. | SecAgg n=10 client ms B/I |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, i = r["bloom"], r["index"]
        sec_b = f"{b['secagg']['client_ms_median']:.0f}" if b.get("secagg") else "-"
        sec_i = f"{i['secagg']['client_ms_median']:.0f}" if i.get("secagg") else "-"
        lines.append(
            f"| {r['vocab_size']:.0e} | {r['union_size']} | {b['upload_bytes'] / 1024:.0f} "
            f"| {i['upload_bytes'] / 1024:.0f} | {b['encode_ms_median']:.2f} / "
            f"{i['encode_ms_median']:.2f} | {b['sum_s']:.3f} / {i['sum_s']:.3f} "
            f"| {b['decode_s']:.3f} / {i['decode_s']:.3f} "
            f"| {100 * b['measured_fpr']:.3f}% / {100 * b['expected_fpr']:.3f}% "
            f"| {sec_b} / {sec_i} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="V up to 10^5, no SecAgg")
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    from fedkit.bench import environment_info

    start = time.perf_counter()
    vocabs = VOCABS[:2] if args.quick else VOCABS
    rows = []
    for vocab in vocabs:
        rows.append(_row(vocab, with_secagg=not args.quick))
        print(f"V={vocab:.0e} done after {time.perf_counter() - start:.1f} s", flush=True)
    report = {
        "machine": environment_info(),
        "setup": {"num_clients": NUM_CLIENTS, "set_size": SET_SIZE, "target_fpr": FPR,
                  "sets": "uniform without replacement over the vocabulary, seed = V",
                  "bloom_sizing": "bloom_size(min(num_clients * set_size, V), target_fpr)",
                  "encoding": "random-valued uint32 (fresh values in [1, 2^32))",
                  "sum": "plain uint32 sum of the clients' vectors (no masking)",
                  "secagg": f"run_secagg, SecAgg+, n = {SECAGG_CLIENTS}, 0/1 vectors, "
                            f"lengths <= {SECAGG_MAX_LENGTH}",
                  "quick": args.quick},
        "rows": rows,
        "hashing": _hashing(),
        "wall_seconds": time.perf_counter() - start,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(_table(rows))
    print(f"hashing: {report['hashing']}")
    print(f"wrote {args.output} ({report['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
