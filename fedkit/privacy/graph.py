"""The SecAgg+ communication graph: a randomly labelled Harary (circulant) graph.

Each client shares secrets with, and masks against, only its ``k`` graph neighbours, so its
cost is O(k) with ``k = O(log n)`` instead of O(n); ``k >= n - 1`` is Bonawitz et al.'s full
SecAgg. Roster ids are ordered by ``SHA-256(seed | id)`` on a ring and each is linked to the
``ceil(k / 2)`` clients on either side (degree ``k`` rounded up to even, at most ``n - 1``).
The seed (:func:`graph_seed`) hashes every advertised key pair's :func:`key_digest`, after all
keys are published, so a semi-honest server cannot choose the graph, and a client that gets
full keys of its neighbours only and digests of the rest can still recompute it. See
docs/secagg.md, "Graph (SecAgg+)".

References:
    Bell, Bonawitz, Gascon, Lepoint, Raykova, "Secure Single-Server Aggregation with
    (Poly)Logarithmic Overhead", CCS 2020, §3 (Harary graph, unbiased randomness).
    F. Harary, "The maximum connectivity of a graph", PNAS 48(7), 1962.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence

from fedkit.privacy.hazmat.keys import PROTOCOL, PROTOCOL_VERSION

__all__ = ["DIGEST_SIZE", "communication_graph", "graph_seed", "key_digest",
           "neighbourhood_size"]

DIGEST_SIZE = 16


def key_digest(enc_public: bytes, mask_public: bytes) -> bytes:
    """Return the 16-byte digest of a client's key pair: truncated SHA-256 of both keys."""
    return hashlib.sha256(PROTOCOL + b"/key" + bytes(enc_public) + bytes(mask_public)).digest()[
        :DIGEST_SIZE
    ]


def graph_seed(digests: Mapping[int, bytes], *, run_id: int, round_id: int) -> bytes:
    """Return the 32-byte graph seed: SHA-256 over the round and every roster key digest.

    Args:
        digests: ``client id -> key_digest(encryption public key, masking public key)``.
        run_id: Run identifier.
        round_id: Round identifier.

    Returns:
        32 bytes that change if any id or key changes.
    """
    digest = hashlib.sha256(
        PROTOCOL + b"/graph" + struct.pack(">BQQ", PROTOCOL_VERSION, run_id, round_id)
    )
    for cid in sorted(digests):
        digest.update(struct.pack(">Q", cid) + bytes(digests[cid]))
    return digest.digest()


def neighbourhood_size(num_clients: int, num_neighbours: int | None) -> int:
    """Return the number of neighbours of each client (excluding itself).

    ``None`` or ``num_neighbours >= num_clients - 1`` means the complete graph.
    """
    if num_neighbours is None:
        return num_clients - 1
    half = -(-num_neighbours // 2)
    return min(2 * half, num_clients - 1)


def communication_graph(
    client_ids: Sequence[int], num_neighbours: int | None, seed: bytes
) -> dict[int, frozenset[int]]:
    """Return each client's neighbours (itself excluded) in the SecAgg+ graph.

    Args:
        client_ids: Distinct client ids (order does not matter).
        num_neighbours: Target degree ``k`` (rounded up to even); ``None`` = complete graph.
        seed: 32 bytes from :func:`graph_seed`.

    Returns:
        ``id -> frozenset of neighbour ids``; the relation is symmetric.

    Raises:
        ValueError: On duplicate ids, a degree below 1, or a seed that is not 32 bytes.

    Example:
        >>> g = communication_graph([1, 2, 3, 4, 5], 2, bytes(32))
        >>> sorted(len(v) for v in g.values())
        [2, 2, 2, 2, 2]
    """
    ids = sorted(client_ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"client ids must be distinct, got {len(ids) - len(set(ids))} duplicates")
    if num_neighbours is not None and num_neighbours < 1:
        raise ValueError(f"num_neighbours={num_neighbours!r} must be at least 1 (or None)")
    if len(seed) != 32:
        raise ValueError(f"graph seed must be 32 bytes, got {len(seed)} bytes")
    n = len(ids)
    degree = neighbourhood_size(n, num_neighbours)
    if degree >= n - 1:
        everyone = frozenset(ids)
        return {cid: everyone - {cid} for cid in ids}
    ring = sorted(ids, key=lambda cid: hashlib.sha256(seed + struct.pack(">Q", cid)).digest())
    half = degree // 2
    graph: dict[int, frozenset[int]] = {}
    for position, cid in enumerate(ring):
        graph[cid] = frozenset(
            ring[(position + offset) % n] for offset in range(-half, half + 1) if offset != 0
        )
    return graph
