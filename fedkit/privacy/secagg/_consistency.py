"""The client's checks of the consistency round (``SecAggConfig.consistency_check``).

Bonawitz et al. (CCS 2017, §4, Fig. 4) protect clients against an active server with two
additions to the semi-honest protocol, both checked here on the client:

1. **Signed keys.** Each client signs its roster entry with its long-term key
   (:func:`~fedkit.privacy.secagg.signing.roster_statement`); a client uses a roster only if
   every entry carries a valid signature under the key the operator's key list gives its id
   (:func:`check_roster_signatures`). The server can neither invent clients (Sybils) nor
   replace an honest client's keys.
2. **ConsistencyCheck.** After the masked inputs the server sends every client the set U3 of
   clients whose input it received; the client checks it (:func:`check_survivors`) and signs
   it. Before it reveals a single share, the client checks that, for every client whose
   share it is about to reveal, at least t members of that client's neighbourhood signed
   the very U3 it signed (:func:`check_consistency_signatures`), and it derives who is alive
   and who dropped from U3 itself (:func:`agreed_lists`). An honest client signs one U3 per
   instance, so two clients revealing shares of the same client v under different U3 would
   need 2t signers in v's neighbourhood of k + 1 -- impossible when 2t > k + 1 plus the
   colluders among them: the server can no longer tell some holders "v is alive" (they
   reveal its self-mask seed share) and others "v dropped" (they reveal its key share).

Order inside the client: share keys -> :func:`check_roster_signatures` before anything is
shared; consistency check -> :func:`check_survivors` then sign; unmask ->
:func:`agreed_lists` and :func:`check_consistency_signatures` before any share leaves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fedkit.privacy.secagg._config import SecAggAbort, SecAggConfig, SecAggProtocolError
from fedkit.privacy.secagg.signing import (
    SigningIdentity,
    roster_statement,
    survivors_statement,
)

__all__ = ["agreed_lists", "check_consistency_signatures", "check_roster_signatures",
           "check_survivors"]


def check_roster_signatures(identity: SigningIdentity, config: SecAggConfig, me: int,
                            digests: Mapping[int, bytes], commitments: Mapping[int, bytes],
                            signatures: Mapping[int, bytes]) -> None:
    """Refuse a roster unless every entry is signed by the key the key list gives its id.

    Args:
        identity: This client's signing identity (its key list is what counts).
        config: The instance (bound into every statement).
        me: This client's id (named in errors).
        digests: Every roster client's key digest.
        commitments: Every roster client's nonce commitment (committed graph), else empty.
        signatures: Every roster client's signature, from the keys broadcast.

    Raises:
        SecAggProtocolError: A roster client outside the key list, a missing signature or
            one that does not verify (keys substituted, an entry replayed from another
            instance, or a client the key list does not know); nothing is shared.
    """
    key_list = identity.key_list
    strangers = sorted(set(digests) - set(key_list))
    if strangers:
        raise SecAggProtocolError(
            f"client {me}: roster clients {strangers} are not in its {key_list.source}; "
            "refusing the roster (clients the operator did not list)")
    unsigned = sorted(set(digests) - set(signatures))
    if unsigned:
        raise SecAggProtocolError(
            f"client {me}: roster entries of clients {unsigned} carry no signature; refusing "
            "the roster")
    for cid in sorted(digests):
        statement = roster_statement(config, cid, digests[cid], commitments.get(cid, b""))
        if not key_list.verify(cid, signatures[cid], statement):
            raise SecAggProtocolError(
                f"client {me}: the roster entry of client {cid} has no valid signature under "
                f"its key in the {key_list.source} (keys substituted or an entry replayed "
                "from another instance); refusing the roster")


def check_survivors(config: SecAggConfig, me: int, survivors: Iterable[int],
                    roster: frozenset[int], neighbours: frozenset[int],
                    senders: frozenset[int]) -> frozenset[int]:
    """Check the set U3 the server says sent a masked input; return it.

    Bonawitz et al.'s U3 ⊆ U2 and |U3| >= t, per neighbourhood (Bell et al. 2020): every
    listed neighbour must have shared keys with this client -- it then masked against it --
    and at least t of this client's share holders (itself and its senders) must be listed.

    Raises:
        SecAggProtocolError: An id outside the roster, this client not listed, or a
            neighbour listed that never shared keys with it.
        SecAggAbort: Fewer than t of itself and its senders listed.
    """
    u3 = frozenset(survivors)
    unknown = sorted(u3 - roster)
    if unknown:
        raise SecAggProtocolError(
            f"client {me}: the survivors set names clients {unknown} that are not in the "
            "roster")
    if me not in u3:
        raise SecAggProtocolError(
            f"client {me}: the survivors set does not list this client, which sent its "
            "masked input")
    silent = sorted((u3 & neighbours) - senders)
    if silent:
        raise SecAggProtocolError(
            f"client {me}: the survivors set lists neighbours {silent} that never shared "
            "keys with this client (it did not mask against them)")
    holders = len(u3 & (senders | {me}))
    if holders < config.threshold:
        raise SecAggAbort(
            f"client {me}: only {holders} of its neighbourhood survived, below threshold "
            f"t={config.threshold}")
    return u3


def agreed_lists(me: int, alive: Iterable[int], dropped: Iterable[int],
                 survivors: frozenset[int], senders: frozenset[int]
                 ) -> tuple[frozenset[int], frozenset[int]]:
    """The alive and dropped share owners this client derives from the U3 it signed.

    Alive: itself and the senders in U3; dropped: the senders not in U3. The server's lists
    must say exactly that.

    Raises:
        SecAggProtocolError: The request's lists disagree with the agreed U3.
    """
    want_alive = (senders | {me}) & survivors
    want_dropped = senders - survivors
    if frozenset(alive) != want_alive or frozenset(dropped) != want_dropped:
        raise SecAggProtocolError(
            f"client {me}: the unmask request's alive/dropped lists disagree with the "
            "survivors set it signed; refusing to reveal any share")
    return want_alive, want_dropped


def check_consistency_signatures(identity: SigningIdentity, config: SecAggConfig, me: int,
                                 survivors: frozenset[int], signatures: Mapping[int, bytes],
                                 groups: Mapping[int, frozenset[int]]) -> None:
    """Refuse to reveal unless, for every client whose share is about to leave, at least t
    members of its neighbourhood signed exactly ``survivors``.

    Args:
        identity: This client's signing identity.
        config: The instance.
        me: This client's id.
        survivors: The U3 this client signed.
        signatures: Signer id -> signature, as the server forwarded them.
        groups: Per share owner about to be revealed, its closed neighbourhood (the owner
            and its graph neighbours); on the complete graph every group is the roster.

    Raises:
        SecAggProtocolError: A signer outside U3, or this client's own signature missing or
            not on ``survivors`` (the server sent another set).
        SecAggAbort: Fewer than t valid signatures in some owner's neighbourhood.
    """
    stray = sorted(set(signatures) - survivors)
    if stray:
        raise SecAggProtocolError(
            f"client {me}: consistency signatures from clients {stray}, which are not in the "
            "survivors set it signed; refusing to reveal any share")
    statement = survivors_statement(config, survivors)
    verified: dict[int, bool] = {}

    def valid(cid: int) -> bool:
        if cid not in verified:
            verified[cid] = identity.key_list.verify(cid, signatures[cid], statement)
        return verified[cid]

    if me not in signatures or not valid(me):
        raise SecAggProtocolError(
            f"client {me}: its own consistency signature is missing or not on the survivors "
            "set it signed; refusing to reveal any share")
    checked: set[frozenset[int]] = set()
    for owner in sorted(groups):
        group = groups[owner]
        if group in checked:  # the complete graph: one group, checked once
            continue
        count = 0
        for cid in sorted(set(signatures) & group):
            count += valid(cid)
            if count >= config.threshold:
                break
        if count < config.threshold:
            raise SecAggAbort(
                f"client {me}: only {count} valid consistency signatures on the survivors set "
                f"it signed from the neighbourhood of client {owner}, below threshold "
                f"t={config.threshold}; reveals nothing")
        checked.add(group)
