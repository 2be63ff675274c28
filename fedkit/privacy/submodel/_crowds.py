"""Rows released only in crowds: the per-row floor of submodel-aware secure aggregation.

**The attack** (issue 18, attack 4). The server learns, per row j, the sum of the updates and
of the 0/1 "truly used" counts over the surviving holders of j (clients with j in their
public S''). With one holder the sum *is* that client's update and the count its true
membership bit, which randomized response was meant to hide. An honest server sees this for
every row held by one survivor; a malicious one makes it happen by declaring the other
holders of a row dropped: it rebuilds their masking keys from the other clients' shares,
strips their pairwise masks and is left with one client's row. On a SecAgg+ graph the same
holds per *crowd*: a row's pairwise masks join only holders that are graph neighbours, so
the server can unmask the sum of each connected group of holders separately.

**The rule.** A row block of client u leaves the protocol only inside a crowd of at least
``min_row_holders`` (F) surviving holders, and only when every member of the crowd agreed:

* *client* (:func:`crowd_sizes`): at unmask time u counts, for each row j of S''_u, itself
  plus the neighbours v that are alive in the unmask request, sent u their shares (so a
  pairwise mask joins them) and hold j (the rows S''_v ∩ S''_u the keys broadcast gave it).
  It reveals the seed of its row mask for j only if that count is at least F.
* *server* (:func:`released_slots`): a crowd is a connected group of alive holders of j in
  the graph; it is released when every member revealed its seed for j, else the server
  drops the members' blocks of j from the sums. Withheld blocks are **dropped, not carried**:
  the row keeps its value this round (the averaging rule leaves a row with no released
  count unchanged) and the round reports ``rows_withheld`` and ``row_slots_withheld``.

**Why per-row keys.** The server must not be able to unmask a row without the holders'
consent, whatever it claims about liveness, so the floor cannot be a filter the server
applies after unmasking. In SecAgg the self mask PRG(b_u) is rebuilt from Shamir shares by
the neighbours, all or nothing, so it cannot be withheld per row. Here b_u masks only the
dense part and weight (the tail); each row block of u carries its own mask PRG(seed_uj), with
``seed_uj = AES_{k_u}(j)`` under a fresh row key k_u that is never shared
(:func:`fedkit.privacy.hazmat.prg.row_seeds`). Revealing some seeds says nothing of the
others. Per-row Shamir shares would also survive u's dropping out during unmasking, but cost
|S''_u| shares per neighbour (tens of KB per client and round) and would put the floor check
in the neighbours' hands, who know only S''_u ∩ S''_v; a threshold PRF needs a group with
point addition that fedkit's primitives do not offer. The price of the simple choice: a
client that sends its masked input and then drops out before unmasking reveals no seed, so
the crowds it belongs to are withheld for that round (its dense part is still recovered).

**Why the check is sound.** Everything u counts is what it can check itself or what binds the
server: the graph is recomputed from the key digests; a neighbour v counts only if its shares
reached u, so a pairwise mask PRG(s_uv) covers j in u's block; if the server lies that v holds
j or is alive, that mask cannot be removed (v's key is only rebuilt for clients declared
dropped, and a client refuses to reveal both secrets of anyone) and the crowd's sum stays
masked. So the only sums the server can unmask are over whole crowds whose members all
revealed, each of whom saw at least F - 1 alive neighbour holders: at least F holders.

**What remains.** (1) Split views: a server that tells u that v is alive while telling v's
neighbours that v dropped can rebuild s_uv and learn u's row once u has revealed its seed;
that is attack 1, which the consistency round (every client signs the alive set) closes for
plain SecAgg; the submodel protocol does not have that round yet. (2) Collusion: clients that
collude with the server count towards F. (3) Exact counts: a released count that is 0 or the
crowd's size still tells every member's bit; the floor makes a single client's bit or update
indistinguishable within a crowd of F, it does not restore the ledger's epsilon (that would
need noise on the counts). (4) A server that declares holders dropped can still shrink a
crowd to exactly F. See docs/submodel.md, "Rows released only in crowds".

References:
    C. Niu et al., "Secure Federated Submodel Learning", arXiv 1911.02254 (MobiCom 2020), §5.
    K. Bonawitz et al., CCS 2017, §4 (self masks against late-declared dropouts).
    J. Bell et al., CCS 2020, §3 (masks joining graph neighbours only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["DEFAULT_MIN_ROW_HOLDERS", "crowd_sizes", "released_slots"]

DEFAULT_MIN_ROW_HOLDERS = 2
"""Default floor F: the smallest that hides one client's row update and true bit in a crowd.

The floor a client holds itself to when it is not told otherwise, and the default of
:class:`~fedkit.privacy.submodel.SubmodelSecAggConfig`. F = t (the Shamir threshold) was
measured and rejected as a default: a row's verifiable crowd is its holders among one
client's neighbours, and with eps2 fakes few rows reach t of them (docs/submodel.md, "Rows
released only in crowds", gives the figures).
"""


def crowd_sizes(
    rows: np.ndarray, peer_rows: Mapping[int, np.ndarray], alive_peers: Iterable[int]
) -> np.ndarray:
    """Client side: for each row of S''_u, 1 + the alive peers that hold it.

    Args:
        rows: S''_u, strictly increasing row ids.
        peer_rows: Per neighbour v, the rows it shares with u (S''_v ∩ S''_u as the keys
            broadcast said; ids outside ``rows`` are ignored).
        alive_peers: The neighbours to count: alive in the unmask request and senders of
            shares to u (a pairwise mask joins them). Ids without a row set count as none.

    Returns:
        ``[len(rows)]`` int64: u itself plus the counted peers holding each row.

    Example:
        >>> crowd_sizes(np.array([1, 4, 6]), {7: np.array([1, 6]), 9: np.array([6])}, [7, 9])
        array([2, 1, 3])
    """
    out = np.ones(rows.size, dtype=np.int64)
    parts = [peer_rows[v] for v in sorted(set(alive_peers)) if v in peer_rows]
    if not parts or not rows.size:
        return out
    ids, counts = np.unique(np.concatenate(parts), return_counts=True)
    if not ids.size:
        return out
    at = np.minimum(np.searchsorted(ids, rows), ids.size - 1)
    found = ids[at] == rows
    out[found] += counts[at[found]]
    return out


def released_slots(
    rows: Mapping[int, np.ndarray],
    revealed: Mapping[int, np.ndarray],
    neighbours: Mapping[int, Iterable[int]],
) -> dict[int, np.ndarray]:
    """Server side: which blocks of the alive clients enter the sums.

    A crowd of row j is a connected group of alive holders of j in the graph (a pairwise
    mask on j joins two neighbours that both hold it). A block is released when every member
    of its crowd revealed its row seed for j; otherwise the whole crowd is withheld: its
    masks cannot be removed without every member's seed.

    Args:
        rows: Per alive client, its S'' (strictly increasing).
        revealed: Per alive client, the rows whose seeds it revealed (a subset of its S'';
            missing: none, e.g. it dropped out before unmasking).
        neighbours: Per alive client, its graph neighbours (others are ignored).

    Returns:
        Per alive client, a bool mask over its rows: True where its block is released.

    Example:
        >>> rows = {1: np.array([0, 5]), 2: np.array([5]), 3: np.array([0])}
        >>> graph = {1: {2, 3}, 2: {1, 3}, 3: {1, 2}}
        >>> out = released_slots(rows, {1: np.array([5]), 2: np.array([5])}, graph)
        >>> {c: m.tolist() for c, m in out.items()}
        {1: [False, True], 2: [True], 3: [False]}
    """
    held = {c: set(r.tolist()) for c, r in rows.items()}
    withheld = {
        c: held[c] - set(np.asarray(revealed.get(c, ()), dtype=np.int64).tolist()) for c in rows
    }
    stack = [(c, j) for c in sorted(withheld) for j in sorted(withheld[c])]
    while stack:  # a withheld block withholds every neighbour's block of the same row
        c, j = stack.pop()
        for v in neighbours.get(c, ()):
            if v in held and j in held[v] and j not in withheld[v]:
                withheld[v].add(j)
                stack.append((v, j))
    return {
        c: ~np.isin(rows[c], np.fromiter(withheld[c], dtype=np.int64, count=len(withheld[c])))
        for c in rows
    }
