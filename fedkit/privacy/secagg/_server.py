"""The server state machine of fedkit's secure aggregation (see ``secagg``)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from fedkit.privacy.graph import (
    committed_graph_seed,
    communication_graph,
    graph_seed,
    key_digest,
    nonce_commitment,
    roster_root,
)
from fedkit.privacy.hazmat import shamir
from fedkit.privacy.hazmat.keys import KeyPair, derive_key
from fedkit.privacy.hazmat.prg import MaskExpander, ring_dtype
from fedkit.privacy.quantize import dequantize
from fedkit.privacy.secagg._client import check_round
from fedkit.privacy.secagg._config import (
    SecAggAbort,
    SecAggConfig,
    SecAggConfigError,
    SecAggProtocolError,
    SecAggStateError,
    Stage,
)
from fedkit.privacy.secagg._messages import (
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencySignature,
    KeysBroadcast,
    MaskedInput,
    RevealNonce,
    RosterCommitment,
    ShareKeys,
    SharesBroadcast,
    UnmaskRequest,
    UnmaskResponse,
)
from fedkit.privacy.secagg.signing import KeyList, roster_statement

__all__ = ["SecAggResult", "SecAggServer"]

logger = logging.getLogger(__name__)
_EXPECTED = {
    Stage.ADVERTISE_KEYS: AdvertiseKeys,
    Stage.REVEAL_NONCE: RevealNonce,
    Stage.SHARE_KEYS: ShareKeys,
    Stage.MASKED_INPUT: MaskedInput,
    Stage.CONSISTENCY_CHECK: ConsistencySignature,
    Stage.UNMASK: UnmaskResponse,
}


@dataclass(frozen=True)
class SecAggResult:
    """The unmasked aggregate of one round.

    Attributes:
        ring_sum: Sum of the survivors' quantised vectors in Z_{2^bits} (weight last).
        weighted_sum: ``sum_u w_u * clip(x_u)`` (float64, up to quantisation error).
        total_weight: ``sum_u w_u``.
        survivors: Ids whose input is in the sum (sent a masked input), sorted.
        dropped: Ids that shared keys but sent no masked input, sorted.
    """

    ring_sum: np.ndarray
    weighted_sum: np.ndarray
    total_weight: float
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]

    @property
    def mean(self) -> np.ndarray:
        """``weighted_sum / total_weight`` (the server divides after unmasking).

        Raises:
            ZeroDivisionError: If the total weight is zero.
        """
        return divide_by_weight(self.weighted_sum, self.total_weight)


def divide_by_weight(weighted_sum: np.ndarray, total_weight: float) -> np.ndarray:
    """``weighted_sum / total_weight``; refuses a zero total weight.

    Raises:
        ZeroDivisionError: If the total weight is zero.
    """
    if total_weight <= 0:
        raise ZeroDivisionError(f"total weight is {total_weight}; no weighted mean")
    return weighted_sum / total_weight


class SecAggServer:
    """The server of one secure-aggregation round.

    For each stage, pass every client message to :meth:`receive` (an invalid one raises
    :class:`SecAggProtocolError` and is not counted: that client is treated as dropped), then
    close the stage with :meth:`broadcast_keys`, :meth:`route_shares`,
    :meth:`request_unmask` and finally :meth:`aggregate`. Each closes once, in order. With
    ``committed_graph``, :meth:`commit_roster` closes advertise-keys and
    :meth:`broadcast_keys` the reveal-nonce stage. With ``consistency_check``,
    :meth:`request_consistency` closes masked-input (each survivor's
    :meth:`consistency_request_for` carries the survivors set U3) and :meth:`request_unmask`
    the consistency stage; the server relays the clients' signatures and a client that does
    not sign is out of the unmask stage.

    The key list is the clients' business: each client checks every roster entry against its
    own. Given the operator's (public) ``key_list`` too, the server refuses in advertise keys
    an entry whose id the list does not hold or whose signature does not verify under the
    listed key (the statement the clients check,
    :func:`~fedkit.privacy.secagg.signing.roster_statement`), so one bad client is left out
    of the roster instead of making every honest client refuse it. This is robustness only:
    clients never rely on the server's check (docs/secagg.md, "Consistency round").

    Args:
        config: The round's configuration.
        client_ids: The cohort; when given, keys from other ids are rejected.
        key_list: The operator's key list, used only with ``config.consistency_check``;
            accepted and unused without it, so that one server setup serves both
            configurations.

    Raises:
        SecAggProtocolError: A cohort larger than ``num_clients``.
        SecAggConfigError: A ``key_list`` that is not a
            :class:`~fedkit.privacy.secagg.signing.KeyList`.
    """

    _MESSAGE_TYPES = MappingProxyType(_EXPECTED)  # stage -> the message class it receives

    def __init__(self, config: SecAggConfig, client_ids: Iterable[int] | None = None, *,
                 key_list: KeyList | None = None) -> None:
        self.config = config
        self._cohort = None if client_ids is None else frozenset(client_ids)
        if self._cohort is not None and len(self._cohort) > config.num_clients:
            raise SecAggProtocolError(
                f"cohort of {len(self._cohort)} clients exceeds num_clients={config.num_clients}"
            )
        if key_list is not None and not isinstance(key_list, KeyList):
            raise SecAggConfigError(f"SecAggServer key_list is a {type(key_list).__name__}, "
                                    "expected a KeyList (or None)")
        self._key_list = key_list if config.consistency_check else None
        self._stage = 0  # index into config.stages
        self._keys: dict[int, tuple[bytes, bytes]] = {}
        self._commitments: dict[int, bytes] = {}
        self._nonces: dict[int, bytes] = {}
        self._root = b""
        self._nonce_view: MappingProxyType = MappingProxyType({})  # shared by keys_for
        self._graph: dict[int, frozenset[int]] = {}
        self._digests: dict[int, bytes] = {}
        self._position: dict[int, int] = {}
        self._shares: dict[int, MappingProxyType] = {}
        self._sum = np.zeros(config.wire_length, dtype=ring_dtype(config.bits))
        self._masked: set[int] = set()
        self._alive: frozenset[int] = frozenset()
        self._dropped: frozenset[int] = frozenset()
        self._responses: dict[int, UnmaskResponse] = {}
        # consistency round: roster signatures, then the signatures of U3
        self._key_signatures: dict[int, bytes] = {}
        self._signature_view: MappingProxyType = MappingProxyType({})  # shared by keys_for
        self._consistency: dict[int, bytes] = {}
        self._consistency_view: MappingProxyType | None = None  # complete graph: shared
        self._survivor_ids: tuple[int, ...] = ()

    @property
    def stage(self) -> Stage | None:
        """The stage whose messages are being received, ``None`` once aggregated."""
        order = self.config.stages
        return order[self._stage] if self._stage < len(order) else None

    def _finish(self) -> None:
        self._stage = len(self.config.stages)

    def _close(self, stage: Stage, received: int) -> None:
        if self.stage is not stage:
            now = "finished" if self.stage is None else f"is in {self.stage.value}"
            raise SecAggStateError(f"server cannot close {stage.value}: it {now}")
        self._stage += 1
        if received < self.config.threshold:
            self._finish()
            raise SecAggAbort(
                f"round {self.config.round_id} aborted at {stage.value}: {received} clients "
                f"responded, below threshold t={self.config.threshold}"
            )

    def receive(self, message) -> None:
        """Validate and record one client message of the current stage.

        Raises:
            SecAggProtocolError: Wrong stage (out of order or replayed), wrong round, unknown
                or duplicate sender, wrong shape. The server state is unchanged.
            SecAggStateError: After the round finished.
        """
        stage = self.stage
        if stage is None:
            raise SecAggStateError("server finished this round; no more messages accepted")
        expected = self._MESSAGE_TYPES[stage]
        if not isinstance(message, expected):
            raise SecAggProtocolError(
                f"server expected {expected.__name__} during {stage.value}, got "
                f"{type(message).__name__} (out-of-order or replayed message); rejected"
            )
        check_round(message, self.config, "server")
        cid = message.client_id
        if stage is Stage.ADVERTISE_KEYS:
            self._receive_keys(message)
            return
        previous = {
            Stage.REVEAL_NONCE: self._keys,
            Stage.SHARE_KEYS: self._keys,
            Stage.MASKED_INPUT: self._shares,
            Stage.CONSISTENCY_CHECK: self._masked,
            Stage.UNMASK: self._consistency if self.config.consistency_check else self._masked,
        }[stage]
        done = {
            Stage.REVEAL_NONCE: self._nonces,
            Stage.SHARE_KEYS: self._shares,
            Stage.MASKED_INPUT: self._masked,
            Stage.CONSISTENCY_CHECK: self._consistency,
            Stage.UNMASK: self._responses,
        }[stage]
        if cid in done:
            raise SecAggProtocolError(f"duplicate {expected.__name__} from client {cid} (replayed)")
        if cid not in previous:
            raise SecAggProtocolError(
                f"{expected.__name__} from unknown client id {cid}: not among the "
                f"{len(previous)} clients that completed the previous stage; rejected"
            )
        if stage is Stage.REVEAL_NONCE:
            self._receive_nonce(message)
        elif stage is Stage.SHARE_KEYS:
            if frozenset(message.ciphertexts) != self._graph[cid]:
                raise SecAggProtocolError(
                    f"ShareKeys from client {cid} addresses clients {sorted(message.ciphertexts)}"
                    f", expected its graph neighbours {sorted(self._graph[cid])}"
                )
            self._shares[cid] = message.ciphertexts
        elif stage is Stage.MASKED_INPUT:
            self._add_masked(message)
            self._masked.add(cid)
        elif stage is Stage.CONSISTENCY_CHECK:
            self._consistency[cid] = bytes(message.signature)
        else:
            self._check_response(message)
            self._responses[cid] = message

    def _add_masked(self, message: MaskedInput) -> None:
        """Check one masked vector and add it to the running sum (raise before any change)."""
        cid, masked = message.client_id, message.masked
        if masked.shape != (self.config.wire_length,) or masked.dtype != self._sum.dtype:
            raise SecAggProtocolError(
                f"masked vector from client {cid} has shape {masked.shape} dtype "
                f"{masked.dtype}, expected ({self.config.wire_length},) {self._sum.dtype} "
                f"(vector_length {self.config.vector_length} + weight); rejected"
            )
        np.add(self._sum, masked, out=self._sum)

    def _receive_keys(self, message: AdvertiseKeys) -> None:
        cid = message.client_id
        if self._cohort is not None and cid not in self._cohort:
            raise SecAggProtocolError(
                f"AdvertiseKeys from unknown client id {cid}: not in the cohort"
            )
        if cid in self._keys:
            raise SecAggProtocolError(f"duplicate AdvertiseKeys from client {cid} (replayed)")
        if len(self._keys) >= self.config.num_clients:
            raise SecAggProtocolError(
                f"AdvertiseKeys from client {cid} rejected: already num_clients="
                f"{self.config.num_clients} clients"
            )
        # a variant's advertise message without the field (the submodel one) carries none
        commitment = bytes(getattr(message, "commitment", b""))
        if self.config.committed_graph and not commitment:
            raise SecAggProtocolError(
                f"AdvertiseKeys from client {cid} has no nonce commitment, but this instance "
                "has a committed graph; rejected"
            )
        if commitment and not self.config.committed_graph:
            raise SecAggProtocolError(
                f"AdvertiseKeys from client {cid} carries a nonce commitment, but this "
                "instance has no committed graph; rejected"
            )
        signature = bytes(getattr(message, "signature", b""))
        if bool(signature) != self.config.consistency_check:
            has = "carries a key signature, but this instance has no" if signature else (
                "has no key signature, but this instance runs the")
            raise SecAggProtocolError(
                f"AdvertiseKeys from client {cid} {has} consistency check; rejected")
        if self._key_list is not None:
            self._check_key_signature(self._key_list, message, commitment, signature)
        self._keys[cid] = (bytes(message.enc_public), bytes(message.mask_public))
        if commitment:
            self._commitments[cid] = commitment
        if signature:
            self._key_signatures[cid] = signature

    def _check_key_signature(self, key_list: KeyList, message: AdvertiseKeys,
                             commitment: bytes, signature: bytes) -> None:
        """Refuse an entry the server's key list does not vouch for (robustness only)."""
        cid = message.client_id
        if cid not in key_list:
            raise SecAggProtocolError(
                f"AdvertiseKeys from client {cid} rejected: client {cid} is not in the "
                f"server's {key_list.source}; the round continues without it")
        digest = key_digest(bytes(message.enc_public), bytes(message.mask_public))
        statement = roster_statement(self.config, cid, digest, commitment)
        if not key_list.verify(cid, signature, statement):
            raise SecAggProtocolError(
                f"AdvertiseKeys from client {cid} rejected: its key signature does not verify "
                f"under the key the server's {key_list.source} lists for it (wrong key, or "
                "keys or signature altered); the round continues without it")

    def _receive_nonce(self, message: RevealNonce) -> None:
        cid, c = message.client_id, self.config
        expected = nonce_commitment(message.nonce, client_id=cid, run_id=c.run_id,
                                    round_id=c.round_id)
        if not hmac.compare_digest(expected, self._commitments[cid]):
            raise SecAggProtocolError(
                f"RevealNonce from client {cid} does not match the nonce commitment it "
                "advertised; rejected (every member of the committed roster must reveal, so "
                "the instance aborts)"
            )
        self._nonces[cid] = bytes(message.nonce)

    def _check_response(self, message: UnmaskResponse) -> None:
        cid = message.client_id
        holder_of = (self._graph[cid] & frozenset(self._shares)) | {cid}
        want_self = holder_of & self._alive
        want_keys = (holder_of - {cid}) & self._dropped
        for name, got, want in (
            ("self-mask", message.self_mask_shares, want_self),
            ("key", message.key_shares, want_keys),
        ):
            if frozenset(got) != want:
                raise SecAggProtocolError(
                    f"UnmaskResponse from client {cid} has {name} shares for clients "
                    f"{sorted(got)}, expected {sorted(want)}; rejected"
                )
            for owner, blob in got.items():
                try:
                    shamir.Share.from_bytes(self._position[cid], blob)
                except shamir.ShamirError as exc:
                    raise SecAggProtocolError(
                        f"UnmaskResponse from client {cid}: {name} share for client {owner} "
                        f"malformed: {exc}"
                    ) from exc

    def commit_roster(self) -> bytes:
        """Close advertise-keys of a committed-graph instance: fix the roster U1 and return
        its 32-byte root (:func:`fedkit.privacy.graph.roster_root` over every member's id,
        key digest and nonce commitment); each member's :meth:`roster_commitment_for` carries
        it.

        Raises:
            SecAggStateError: The instance has no committed graph (use
                :meth:`broadcast_keys`), or not in advertise-keys.
            SecAggAbort: Fewer than ``threshold`` clients advertised keys.
        """
        if not self.config.committed_graph:
            raise SecAggStateError("commit_roster: this instance has no committed graph; "
                                   "broadcast_keys closes advertise-keys")
        self._close(Stage.ADVERTISE_KEYS, len(self._keys))
        c = self.config
        self._digests = {cid: key_digest(*pair) for cid, pair in self._keys.items()}
        entries = {cid: (self._digests[cid], self._commitments[cid]) for cid in self._keys}
        self._root = roster_root(entries, run_id=c.run_id, round_id=c.round_id)
        return self._root

    def roster_commitment_for(self, client_id: int) -> RosterCommitment:
        """After :meth:`commit_roster`: the reveal-nonce request of roster member
        ``client_id`` (the root and the roster size, 66 bytes).

        Raises:
            SecAggProtocolError: For a client not in the roster.
        """
        if client_id not in self._keys or not self._root:
            raise SecAggProtocolError(
                f"roster_commitment_for: client {client_id} is not in a committed roster")
        c = self.config
        return RosterCommitment(c.run_id, c.round_id, client_id, len(self._keys), self._root)

    def broadcast_keys(self) -> KeysBroadcast:
        """Close the stage before share-keys (advertise-keys, or reveal-nonce with
        ``committed_graph``): fix the graph; return the keys broadcast for all clients.

        With ``committed_graph`` the seed hashes the committed root and every member's
        revealed nonce (:func:`fedkit.privacy.graph.committed_graph_seed`), and every member
        must have revealed: were a missing nonce skipped, the server -- who sees the nonces
        first -- could choose the graph by choosing whose nonce counts.

        Raises:
            SecAggAbort: Fewer than ``threshold`` clients advertised keys, or a member of the
                committed roster did not reveal a nonce matching its commitment.
        """
        c = self.config
        if c.committed_graph:
            missing = sorted(set(self._keys) - set(self._nonces))
            if missing and self.stage is Stage.REVEAL_NONCE:
                self._finish()
                raise SecAggAbort(
                    f"round {c.round_id} aborted at {Stage.REVEAL_NONCE.value}: clients "
                    f"{missing} of the committed roster did not reveal a nonce matching their "
                    "commitment; every member must reveal, otherwise the server could choose "
                    "the graph by choosing whose nonce counts"
                )
            self._close(Stage.REVEAL_NONCE, len(self._nonces))
            seed = committed_graph_seed(self._root, self._nonces, run_id=c.run_id,
                                        round_id=c.round_id)
            self._nonce_view = MappingProxyType(dict(self._nonces))
        else:
            self._close(Stage.ADVERTISE_KEYS, len(self._keys))
            self._digests = {cid: key_digest(*pair) for cid, pair in self._keys.items()}
            seed = graph_seed(self._digests, run_id=c.run_id, round_id=c.round_id)
        self._graph = communication_graph(list(self._keys), c.num_neighbours, seed)
        self._position = {cid: i + 1 for i, cid in enumerate(sorted(self._keys))}
        self._signature_view = MappingProxyType(dict(self._key_signatures))
        blobs = {cid: enc + mask for cid, (enc, mask) in self._keys.items()}
        return KeysBroadcast(c.run_id, c.round_id, MappingProxyType(blobs),
                             nonces=self._nonce_view, signatures=self._signature_view)

    @property
    def roster(self) -> tuple[int, ...]:
        """After advertise-keys closed (:meth:`broadcast_keys` or :meth:`commit_roster`):
        the ids whose keys are in the roster, sorted."""
        return tuple(sorted(self._digests))

    @property
    def signers(self) -> tuple[int, ...]:
        """With ``consistency_check``: the survivors whose signature of U3 arrived, sorted
        (the clients asked to unmask)."""
        return tuple(sorted(self._consistency))

    def keys_for(self, client_id: int) -> KeysBroadcast:
        """After :meth:`broadcast_keys`: client ``client_id``'s own roster message.

        Full keys of the client and its graph neighbours, 16-byte key digests of everyone
        else: all it needs to recompute the graph and mask, in O(k) keys + O(n) digests
        (24 + 76 k + 28 n bytes against 76 n for the full roster; on the complete graph the
        two are the same). With ``committed_graph``, also every member's nonce (4 + 16 n
        bytes): the client recomputes the commitments, hence the committed root, from them.
        With ``consistency_check``, every member's key signature (4 + 64 n bytes).
        """
        if client_id not in self._graph:
            raise SecAggProtocolError(f"keys_for: client {client_id} is not in the roster")
        c, near = self.config, self._graph[client_id] | {client_id}
        blobs = {cid: self._keys[cid][0] + self._keys[cid][1] for cid in sorted(near)}
        digests = {cid: d for cid, d in sorted(self._digests.items()) if cid not in near}
        return KeysBroadcast(c.run_id, c.round_id, MappingProxyType(blobs),
                             MappingProxyType(digests), self._nonce_view, self._signature_view)

    def route_shares(self) -> dict[int, SharesBroadcast]:
        """Close stage 1: return, per client that shared keys, the ciphertexts addressed to it.

        Raises:
            SecAggAbort: Fewer than ``threshold`` clients shared keys.
        """
        self._close(Stage.SHARE_KEYS, len(self._shares))
        c = self.config
        inbox: dict[int, dict[int, bytes]] = {cid: {} for cid in self._shares}
        for sender, ciphertexts in self._shares.items():
            for receiver, blob in ciphertexts.items():
                if receiver in inbox:
                    inbox[receiver][sender] = blob
        return {
            cid: SharesBroadcast(c.run_id, c.round_id, cid, MappingProxyType(box))
            for cid, box in sorted(inbox.items())
        }

    def _fix_survivors(self) -> None:
        """Close masked-input: U3 (alive) and the clients that shared keys but not (dropped)."""
        self._close(Stage.MASKED_INPUT, len(self._masked))
        self._alive = frozenset(self._masked)
        self._dropped = frozenset(self._shares) - self._alive
        self._survivor_ids = tuple(sorted(self._alive))

    def request_consistency(self) -> tuple[int, ...]:
        """Close masked-input of a consistency-check instance: fix U3, the clients whose
        masked input arrived, and return it; each member's :meth:`consistency_request_for`
        carries it.

        Raises:
            SecAggStateError: The instance has no consistency check (use
                :meth:`request_unmask`), or not in masked-input.
            SecAggAbort: Fewer than ``threshold`` masked inputs.
        """
        if not self.config.consistency_check:
            raise SecAggStateError("request_consistency: this instance has no consistency "
                                   "check; request_unmask closes masked-input")
        self._fix_survivors()
        return self._survivor_ids

    def consistency_request_for(self, client_id: int) -> ConsistencyRequest:
        """After :meth:`request_consistency`: survivor ``client_id``'s request, U3 in full
        (8 bytes per survivor: every client signs the same set).

        Raises:
            SecAggProtocolError: For a client whose masked input did not arrive.
        """
        if client_id not in self._alive or self.stage is not Stage.CONSISTENCY_CHECK:
            raise SecAggProtocolError(f"consistency_request_for: client {client_id} is not a "
                                      "survivor of a closed masked-input stage")
        c = self.config
        return ConsistencyRequest(c.run_id, c.round_id, client_id, self._survivor_ids)

    def request_unmask(self) -> UnmaskRequest:
        """Close the stage before unmask (masked-input, or the consistency stage with
        ``consistency_check``): return the alive (sent a masked input) and dropped lists.

        With ``consistency_check`` the clients that signed U3 are the ones asked to unmask
        (a survivor that did not sign is dropped from the instance; its input stays in the
        sum, which every signer agreed on).

        Raises:
            SecAggAbort: Fewer than ``threshold`` masked inputs (or signers).
        """
        if self.config.consistency_check:
            self._close(Stage.CONSISTENCY_CHECK, len(self._consistency))
        else:
            self._fix_survivors()
        c = self.config
        return UnmaskRequest(
            c.run_id, c.round_id, tuple(sorted(self._alive)), tuple(sorted(self._dropped))
        )

    def unmask_request_for(self, client_id: int) -> UnmaskRequest:
        """After :meth:`request_unmask`: the lists restricted to ``client_id``'s neighbourhood.

        A client holds shares of its graph neighbours only, and its threshold check is per
        neighbourhood (Bell et al., CCS 2020, §3), so the alive and dropped clients among
        itself and its neighbours are all it needs: O(k) ids instead of O(n). On the complete
        graph this is the full request.

        Raises:
            SecAggStateError: Before :meth:`request_unmask` or after :meth:`aggregate`.
            SecAggProtocolError: For a client not in the roster.
        """
        if self.stage is not Stage.UNMASK:
            raise SecAggStateError("unmask_request_for: the server is not collecting unmask "
                                   f"responses (stage {getattr(self.stage, 'value', None)})")
        if client_id not in self._graph:
            raise SecAggProtocolError(f"unmask_request_for: client {client_id} is not in the "
                                      "roster")
        near = self._graph[client_id] | {client_id}
        c = self.config
        return UnmaskRequest(c.run_id, c.round_id, tuple(sorted(self._alive & near)),
                             tuple(sorted(self._dropped & near)), self._signatures_for(near))

    def _signatures_for(self, near: frozenset[int]) -> MappingProxyType:
        """The consistency signatures a client with closed neighbourhood ``near`` checks:
        those of the neighbourhoods of its share owners, i.e. of everyone within two hops
        (every signer on the complete graph)."""
        if not self.config.consistency_check:
            return MappingProxyType({})
        if len(near) == len(self._graph):  # complete graph: one map for every client
            if self._consistency_view is None:
                self._consistency_view = MappingProxyType(dict(sorted(self._consistency.items())))
            return self._consistency_view
        reach = set(near)
        for v in near:
            reach |= self._graph[v]
        return MappingProxyType({cid: self._consistency[cid] for cid in sorted(reach)
                                 if cid in self._consistency})

    def aggregate(self) -> SecAggResult:
        """Close stage 3: reconstruct secrets, remove all masks and decode the weighted sum.

        Raises:
            SecAggAbort: Too few unmask responses, fewer than ``threshold`` shares for some
                client's secret, or a recovered masking key that does not match its
                published public key (a corrupted share).

        References:
            Bonawitz et al., CCS 2017, Fig. 4 (Unmasking); Bell et al., CCS 2020, §3.
        """
        self._close(Stage.UNMASK, len(self._responses))
        c = self.config
        total = self._sum.copy()
        expander = MaskExpander(c.wire_length, bits=c.bits)
        self_seeds, pair_seeds = self._mask_seeds()
        for _owner, seed in self_seeds:
            expander.add_into(total, seed, sign=-1)
        for _owner, _v, seed, sign in pair_seeds:
            expander.add_into(total, seed, sign=sign)
        decoded = dequantize(total, scale=c.resolved_scale, bits=c.bits) * c.max_weight
        logger.info(
            "secagg round %s: %s inputs summed, %s dropped",
            c.round_id,
            len(self._alive),
            len(self._dropped),
        )
        return SecAggResult(
            total,
            decoded[:-1],
            float(decoded[-1]),
            tuple(sorted(self._alive)),
            tuple(sorted(self._dropped)),
        )

    def _mask_seeds(
        self,
    ) -> tuple[list[tuple[int, bytes]], list[tuple[int, int, bytes, int]]]:
        """Reconstruct every seed whose mask is still in the sum (after the unmask stage).

        Returns:
            ``(self_seeds, pair_seeds)``: ``(owner, PRG seed)`` of the self mask of every alive
            client, and ``(dropped owner, alive neighbour v, PRG seed, sign)`` of every
            pairwise mask v added for a dropped owner; adding ``sign * PRG(seed)`` removes it.

        Raises:
            SecAggAbort: Fewer than ``threshold`` shares for a secret, or a recovered masking
                key that does not reproduce its published public key.
        """
        c = self.config
        coefficient_cache: dict[tuple[int, ...], list[int]] = {}
        self_seeds = []
        for owner in sorted(self._alive):
            seed = self._recover(owner, "self-mask", coefficient_cache)
            mask_seed = derive_key(
                seed, purpose="self-mask", run_id=c.run_id, round_id=c.round_id, u=owner, v=owner
            )
            self_seeds.append((owner, mask_seed))
        pair_seeds = []
        for owner in sorted(self._dropped):
            private = self._recover(owner, "key", coefficient_cache)
            pair = KeyPair.from_private_bytes(private)
            if not hmac.compare_digest(pair.public, self._keys[owner][1]):
                self._finish()
                raise SecAggAbort(
                    f"round {c.round_id} aborted: the masking key recovered for dropped client "
                    f"{owner} does not match its published public key (a share was corrupted)"
                )
            for v in sorted(self._graph[owner] & self._alive):
                seed = derive_key(
                    pair.exchange(self._keys[v][1]),
                    purpose="mask",
                    run_id=c.run_id,
                    round_id=c.round_id,
                    u=owner,
                    v=v,
                )
                pair_seeds.append((owner, v, seed, -1 if v < owner else +1))
        return self_seeds, pair_seeds

    def _recover(self, owner: int, kind: str, cache: dict[tuple[int, ...], list[int]]) -> bytes:
        c = self.config
        holders = sorted(
            cid
            for cid, r in self._responses.items()
            if owner in (r.self_mask_shares if kind == "self-mask" else r.key_shares)
        )
        if len(holders) < c.threshold:
            self._finish()
            raise SecAggAbort(
                f"round {c.round_id} aborted: {len(holders)} {kind} shares for client {owner}, "
                f"below threshold t={c.threshold}"
            )
        chosen = holders[: c.threshold]  # canonical responder set: the t smallest ids
        xs = tuple(self._position[h] for h in chosen)
        if xs not in cache:
            cache[xs] = shamir.lagrange_coefficients(xs)
        ys = [
            int.from_bytes(
                (
                    self._responses[h].self_mask_shares
                    if kind == "self-mask"
                    else self._responses[h].key_shares
                )[owner],
                "big",
            )
            for h in chosen
        ]
        try:
            return shamir.combine_with(cache[xs], ys)
        except shamir.ShamirError as exc:
            self._finish()
            raise SecAggAbort(
                f"round {c.round_id} aborted: {kind} secret of client {owner}: {exc}"
            ) from exc
