"""The SecAgg+ communication graph: a randomly labelled Harary (circulant) graph.

Each client shares secrets with, and masks against, only its ``k`` graph neighbours, so its
cost is O(k) with ``k = O(log n)`` instead of O(n); ``k >= n - 1`` is Bonawitz et al.'s full
SecAgg. Roster ids are ordered by ``SHA-256(seed | id)`` on a ring and each is linked to the
``ceil(k / 2)`` clients on either side (degree ``k`` rounded up to even, at most ``n - 1``).
The seed (:func:`graph_seed`) hashes every advertised key pair's :func:`key_digest`, after all
keys are published, so a semi-honest server does not choose the graph, and a client that gets
full keys of its neighbours only and digests of the rest can still recompute it. A malicious
server with colluding clients can, though: a colluder whose keys come last re-rolls them until
the graph suits it. The committed seed (:func:`committed_graph_seed`) closes that by
commit-reveal: each client commits to a fresh nonce with its keys
(:func:`nonce_commitment`), the server commits to the roster (:func:`roster_root`), then
every member reveals its nonce and the seed hashes the root and all nonces -- an honest
nonce, unknown until every key and commitment is fixed, makes it uniform. See docs/secagg.md,
"Graph (SecAgg+)" and "Committed graph".

References:
    Bell, Bonawitz, Gascon, Lepoint, Raykova, "Secure Single-Server Aggregation with
    (Poly)Logarithmic Overhead", CCS 2020, §3 (Harary graph, unbiased randomness).
    M. Blum, "Coin flipping by telephone", CRYPTO 1981 (commit-reveal).
    F. Harary, "The maximum connectivity of a graph", PNAS 48(7), 1962.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence

from fedkit.privacy.hazmat.keys import PROTOCOL, PROTOCOL_VERSION

__all__ = ["COMMITMENT_SIZE", "DIGEST_SIZE", "NONCE_SIZE", "communication_graph",
           "committed_graph_seed", "graph_seed", "key_digest", "neighbourhood_size",
           "nonce_commitment", "roster_root"]

DIGEST_SIZE = 16
NONCE_SIZE = 16  # 128 bits: unpredictable until revealed
COMMITMENT_SIZE = 32


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


def _header(purpose: bytes, run_id: int, round_id: int) -> bytes:
    return PROTOCOL + purpose + struct.pack(">BQQ", PROTOCOL_VERSION, run_id, round_id)


def nonce_commitment(nonce: bytes, *, client_id: int, run_id: int, round_id: int) -> bytes:
    """Return client ``client_id``'s 32-byte commitment to its graph nonce.

    ``SHA-256("fedkit-secagg-nonce" | u8 version | u64 run | u64 round | u64 id | nonce)``:
    binding (a second nonce with the same commitment is a SHA-256 collision) and, for a
    fresh 16-byte nonce from ``secrets``, hiding.

    Raises:
        ValueError: A nonce that is not :data:`NONCE_SIZE` bytes.
    """
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"graph nonce must be {NONCE_SIZE} bytes, got {len(nonce)} bytes")
    return hashlib.sha256(
        _header(b"-nonce", run_id, round_id) + struct.pack(">Q", client_id) + bytes(nonce)
    ).digest()


def roster_root(entries: Mapping[int, tuple[bytes, bytes]], *, run_id: int,
                round_id: int) -> bytes:
    """Return the 32-byte root that commits the server to a roster, before any nonce is known.

    ``SHA-256("fedkit-secagg/roster" | u8 version | u64 run | u64 round | u32 count |
    (u64 id | key digest (16) | nonce commitment (32))*)`` in increasing id order.

    Args:
        entries: ``client id -> (key_digest of its keys, nonce_commitment of its nonce)``.
        run_id: Run identifier.
        round_id: Round identifier.
    """
    digest = hashlib.sha256(_header(b"/roster", run_id, round_id)
                            + struct.pack(">I", len(entries)))
    for cid in sorted(entries):
        key, commitment = entries[cid]
        digest.update(struct.pack(">Q", cid) + bytes(key) + bytes(commitment))
    return digest.digest()


def committed_graph_seed(root: bytes, nonces: Mapping[int, bytes], *, run_id: int,
                         round_id: int) -> bytes:
    """Return the 32-byte graph seed of a committed roster: a hash of its root and every nonce.

    ``SHA-256("fedkit-secagg/graph-committed" | u8 version | u64 run | u64 round | root |
    (u64 id | nonce)*)`` in increasing id order. The root binds every key and every nonce
    commitment, hence every nonce; one honest member's nonce, revealed only after the root is
    fixed, makes the seed uniform to everyone else (in the random-oracle model).

    Args:
        root: :func:`roster_root` of the roster.
        nonces: ``client id -> nonce`` of every roster member.
        run_id: Run identifier.
        round_id: Round identifier.

    Example:
        >>> len(committed_graph_seed(bytes(32), {1: bytes(16)}, run_id=0, round_id=0))
        32
    """
    digest = hashlib.sha256(_header(b"/graph-committed", run_id, round_id) + bytes(root))
    for cid in sorted(nonces):
        digest.update(struct.pack(">Q", cid) + bytes(nonces[cid]))
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
