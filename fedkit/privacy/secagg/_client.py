"""The client state machine of fedkit's secure aggregation (see ``secagg``)."""

from __future__ import annotations

import hmac
import json
import math
import secrets
import struct
from types import MappingProxyType

import numpy as np

from fedkit.privacy.graph import (
    NONCE_SIZE,
    committed_graph_seed,
    communication_graph,
    graph_seed,
    key_digest,
    nonce_commitment,
    roster_root,
)
from fedkit.privacy.hazmat import aead, shamir
from fedkit.privacy.hazmat.keys import KEY_SIZE, KeyAgreementError, KeyPair, derive_key
from fedkit.privacy.hazmat.prg import MaskExpander, ring_dtype
from fedkit.privacy.quantize import quantize
from fedkit.privacy.secagg._config import (
    SecAggAbort,
    SecAggConfig,
    SecAggConfigError,
    SecAggError,
    SecAggProtocolError,
    SecAggStateError,
    Stage,
)
from fedkit.privacy.secagg._consistency import (
    agreed_lists,
    check_consistency_signatures,
    check_roster_signatures,
    check_survivors,
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
from fedkit.privacy.secagg.signing import (
    SigningIdentity,
    roster_statement,
    survivors_statement,
)

__all__ = ["SecAggClient", "check_round", "share_plaintext_header"]

# 2: roster_ids; roster keys of neighbours only. 3: nonce, committed root.
# 4: survivors (U3) and neighbours' neighbourhoods of the consistency round
_STATE_VERSION = 4


def check_round(message, config: SecAggConfig, receiver: str) -> None:
    """Refuse a message of another run or round (replayed from elsewhere)."""
    if (message.run_id, message.round_id) != (config.run_id, config.round_id):
        raise SecAggProtocolError(
            f"{receiver} rejected {type(message).__name__} for run {message.run_id} round "
            f"{message.round_id}: expected run {config.run_id} round {config.round_id} "
            "(replayed or misrouted message)"
        )


def _checked_identity(config: SecAggConfig, client_id: int,
                      identity: SigningIdentity | None) -> SigningIdentity | None:
    """The identity a client of ``config`` signs with (``None`` without the consistency
    check); refuses a missing one or one whose key list lists another key for the client."""
    if not config.consistency_check:
        return identity
    if not isinstance(identity, SigningIdentity):
        raise SecAggConfigError(
            f"client {client_id}: the instance runs the consistency check (consistency_check"
            "), which needs this client's signing key and the operator's key list "
            f"(identity=SigningIdentity(...)), got {type(identity).__name__}")
    identity.check_owner(client_id)
    return identity


def share_plaintext_header(config: SecAggConfig, sender: int, receiver: int) -> bytes:
    """The 32-byte header inside every share plaintext: run, round, sender, receiver."""
    return struct.pack(">QQQQ", config.run_id, config.round_id, sender, receiver)


class SecAggClient:
    """One client of one secure-aggregation round: its stages, each callable exactly once.

    Call :meth:`advertise_keys`, (with ``committed_graph`` only) :meth:`reveal_nonce`,
    :meth:`share_keys`, :meth:`masked_input`, (with ``consistency_check`` only)
    :meth:`consistency_check`, :meth:`unmask` in this order (``config.stages``), each with
    the previous server message. A failed check raises and leaves the client stopped: every
    later call raises :class:`SecAggStateError`.

    Args:
        config: The round's configuration (identical on every party).
        client_id: This client's stable id (``0 <= id < 2^64``).
        rng: Generator for stochastic rounding (not secret); default: seeded by the OS.
        identity: This client's long-term signing key and the operator's key list, from the
            client's own configuration; required with ``consistency_check`` (else unused).

    Raises:
        SecAggConfigError: ``consistency_check`` without an identity, or an identity whose
            key list does not give ``client_id`` its public key.
    """

    config_class: type[SecAggConfig] = SecAggConfig  # what from_state rebuilds

    def __init__(
        self, config: SecAggConfig, client_id: int, *, rng: np.random.Generator | None = None,
        identity: SigningIdentity | None = None,
    ) -> None:
        if isinstance(client_id, bool) or not isinstance(client_id, int):
            raise SecAggProtocolError(f"client_id={client_id!r} must be an integer")
        if not 0 <= client_id < (1 << 64):
            raise SecAggProtocolError(f"client_id={client_id} must be in [0, 2^64)")
        self.config = config
        self.client_id = client_id
        self._identity = _checked_identity(config, client_id, identity)
        self._rng = rng if rng is not None else np.random.default_rng()
        self._next = 0  # index into config.stages; len(stages) = finished, -1 = stopped
        self._enc = KeyPair.generate()
        self._mask = KeyPair.generate()
        # committed graph: the nonce it commits to, then the server's roster commitment
        self._nonce = secrets.token_bytes(NONCE_SIZE) if config.committed_graph else b""
        self._root = b""
        self._roster_size = 0
        self._roster: dict[int, tuple[bytes, bytes]] = {}  # its own and its neighbours' keys
        self._roster_ids: frozenset[int] = frozenset()
        self._neighbours: frozenset[int] = frozenset()
        self._senders: frozenset[int] = frozenset()
        self._own_shares: tuple[int, int] = (0, 0)
        self._self_seed = b""
        self._share_keys: dict[int, bytes] = {}
        self._received: dict[int, tuple[int, int]] = {}
        # consistency round: the U3 it signed, its neighbours' neighbourhoods (SecAgg+ only)
        self._survivors: frozenset[int] = frozenset()
        self._neighbourhoods: dict[int, frozenset[int]] = {}

    @property
    def stage(self) -> Stage | None:
        """The next stage to call, or ``None`` when finished or stopped."""
        order = self.config.stages
        return order[self._next] if 0 <= self._next < len(order) else None

    def _enter(self, stage: Stage) -> None:
        if self._next < 0:
            raise SecAggStateError(
                f"client {self.client_id} stopped after a failed check; "
                f"{stage.value} refused (a new round needs a new SecAggClient)"
            )
        if stage not in self.config.stages:
            raise SecAggStateError(
                f"client {self.client_id} refused {stage.value}: not a stage of this instance "
                f"(its stages: {', '.join(s.value for s in self.config.stages)})"
            )
        expected = self.stage
        if expected is not stage:
            done = "finished" if expected is None else f"expects {expected.value} next"
            raise SecAggStateError(
                f"client {self.client_id} refused {stage.value}: it {done} "
                "(each stage runs once, in order)"
            )
        self._next = -1  # stopped unless the stage completes

    def _leave(self, stage: Stage) -> None:
        self._next = self.config.stages.index(stage) + 1

    def advertise_keys(self) -> AdvertiseKeys:
        """Stage 0: return this round's two fresh public keys (encryption, masking) and,
        with ``committed_graph``, the commitment to a fresh graph nonce; with
        ``consistency_check``, signed with the client's long-term key."""
        self._enter(Stage.ADVERTISE_KEYS)
        c = self.config
        commitment = signature = b""
        if c.committed_graph:
            commitment = nonce_commitment(self._nonce, client_id=self.client_id,
                                          run_id=c.run_id, round_id=c.round_id)
        if c.consistency_check:
            digest = key_digest(self._enc.public, self._mask.public)
            signature = self._identity.signing_key.sign(
                roster_statement(c, self.client_id, digest, commitment))
        msg = AdvertiseKeys(c.run_id, c.round_id, self.client_id, self._enc.public,
                            self._mask.public, commitment, signature)
        self._leave(Stage.ADVERTISE_KEYS)
        return msg

    def reveal_nonce(self, commitment: RosterCommitment) -> RevealNonce:
        """Reveal-nonce stage (``committed_graph`` only): keep the server's roster commitment,
        then reveal the nonce this client committed to.

        The root is checked in :meth:`share_keys`, against the roster and every nonce, before
        this client uses anything of the roster. The nonce itself is no secret: it only has to
        stay unknown until every key and commitment is fixed, which the root now ensures.

        Raises:
            SecAggProtocolError: Not a :class:`RosterCommitment`, wrong round, addressed to
                another client, or a roster larger than ``num_clients``.
            SecAggAbort: A committed roster below the threshold.
            SecAggStateError: Out of order, or ``committed_graph`` is off.
        """
        self._enter(Stage.REVEAL_NONCE)
        c, me = self.config, self.client_id
        self._check_addressed(commitment, RosterCommitment, "the roster commitment")
        if commitment.roster_size > c.num_clients:
            raise SecAggProtocolError(
                f"client {me}: committed roster has {commitment.roster_size} clients, expected "
                f"at most num_clients={c.num_clients}"
            )
        if commitment.roster_size < c.threshold:
            raise SecAggAbort(
                f"client {me}: committed roster has {commitment.roster_size} clients, below "
                f"threshold t={c.threshold}"
            )
        self._root, self._roster_size = bytes(commitment.root), commitment.roster_size
        self._leave(Stage.REVEAL_NONCE)
        return RevealNonce(c.run_id, c.round_id, me, self._nonce)

    def share_keys(self, broadcast: KeysBroadcast) -> ShareKeys:
        """Stage 1: check the roster, then Shamir-share the self-mask seed and masking key.

        With ``consistency_check`` every roster entry must carry a valid signature under
        the key the client's key list gives its id, before anything is shared.

        Raises:
            SecAggProtocolError: Wrong round, own keys not echoed, duplicate keys, too many
                clients; with ``consistency_check`` a roster client outside the key list or
                an entry without a valid signature.
            SecAggAbort: Fewer than ``threshold`` clients in this client's neighbourhood.
        """
        self._enter(Stage.SHARE_KEYS)
        c, me = self.config, self.client_id
        if not isinstance(broadcast, KeysBroadcast):
            raise SecAggProtocolError(
                f"client {me} expected a KeysBroadcast, got {type(broadcast).__name__}"
            )
        check_round(broadcast, c, f"client {me}")
        keys = {
            cid: (blob[:KEY_SIZE], blob[KEY_SIZE:]) for cid, blob in broadcast.public_keys.items()
        }
        digests = dict(broadcast.digests)
        both = sorted(set(keys) & set(digests))
        if both:
            raise SecAggProtocolError(
                f"client {me}: roster lists clients {both} both with keys and a key digest"
            )
        roster = sorted(set(keys) | set(digests))
        if len(roster) > c.num_clients:
            raise SecAggProtocolError(
                f"client {me}: roster has {len(roster)} clients, expected at most "
                f"num_clients={c.num_clients}"
            )
        own = keys.get(me)
        if own is None or not (
            hmac.compare_digest(own[0], self._enc.public)
            and hmac.compare_digest(own[1], self._mask.public)
        ):
            raise SecAggProtocolError(
                f"client {me}: its own public keys are missing or altered in the roster"
            )
        owners: dict[bytes, int] = {}
        for cid, pair in keys.items():
            for key in pair:
                if key in owners:
                    raise SecAggProtocolError(
                        f"client {me}: roster public keys are not distinct "
                        f"(clients {owners[key]} and {cid})"
                    )
                owners[key] = cid
        digests.update({cid: key_digest(*pair) for cid, pair in keys.items()})
        if len(set(digests.values())) != len(digests):
            raise SecAggProtocolError(f"client {me}: roster key digests are not distinct")
        if len(roster) < c.threshold:
            raise SecAggAbort(
                f"client {me}: roster has {len(roster)} clients, below threshold t={c.threshold}"
            )
        commitments: dict[int, bytes] = {}  # each member's nonce commitment, recomputed once
        if c.committed_graph:
            commitments = {cid: nonce_commitment(nonce, client_id=cid, run_id=c.run_id,
                                                 round_id=c.round_id)
                           for cid, nonce in broadcast.nonces.items()}
            seed = self._committed_seed(broadcast.nonces, digests, commitments)
        elif broadcast.nonces:
            raise SecAggProtocolError(
                f"client {me}: the roster carries graph nonces, but this instance has no "
                "committed graph"
            )
        else:
            seed = graph_seed(digests, run_id=c.run_id, round_id=c.round_id)
        self._check_signed_roster(broadcast, digests, commitments)
        graph = communication_graph(roster, c.num_neighbours, seed)
        self._neighbours = graph[me]
        if c.consistency_check and len(self._neighbours) < len(roster) - 1:
            self._neighbourhoods = {v: graph[v] for v in self._neighbours}
        missing = sorted(self._neighbours - set(keys))
        if missing:
            raise SecAggProtocolError(
                f"client {me}: the roster gives only key digests for its graph neighbours "
                f"{missing}; it needs their public keys"
            )
        if len(self._neighbours) + 1 < c.threshold:
            raise SecAggAbort(
                f"client {me}: neighbourhood has {len(self._neighbours) + 1} members, "
                f"below threshold t={c.threshold}"
            )
        self._roster = {cid: keys[cid] for cid in self._neighbours | {me}}
        self._roster_ids = frozenset(roster)
        position = {cid: i + 1 for i, cid in enumerate(roster)}
        holders = sorted(self._neighbours | {me})
        xs = [position[h] for h in holders]
        self._self_seed = secrets.token_bytes(32)
        b_shares = shamir.split(self._self_seed, len(holders), c.threshold, xs)
        k_shares = shamir.split(self._mask.private_bytes(), len(holders), c.threshold, xs)
        ciphertexts = {}
        for h, b, k in zip(holders, b_shares, k_shares, strict=True):
            if h == me:
                self._own_shares = (b.y, k.y)
                continue
            key = self._pair_key(self._enc, keys[h][0], h, "enc", 16)
            self._share_keys[h] = key
            plaintext = share_plaintext_header(c, me, h) + b.y_bytes() + k.y_bytes()
            ad = aead.associated_data(run_id=c.run_id, round_id=c.round_id, sender=me, receiver=h)
            ciphertexts[h] = aead.encrypt(key, plaintext, associated=ad)
        self._leave(Stage.SHARE_KEYS)
        return ShareKeys(c.run_id, c.round_id, me, MappingProxyType(ciphertexts))

    def _check_signed_roster(self, broadcast: KeysBroadcast, digests: dict[int, bytes],
                             commitments: dict[int, bytes]) -> None:
        """With ``consistency_check``: every roster entry signed (else no signatures);
        ``commitments``: the members' nonce commitments (committed graph, else empty)."""
        c, me = self.config, self.client_id
        signatures = getattr(broadcast, "signatures", {})
        if not c.consistency_check:
            if signatures:
                raise SecAggProtocolError(
                    f"client {me}: the roster carries key signatures, but this instance has "
                    "no consistency check")
            return
        check_roster_signatures(self._identity, c, me, digests, commitments, signatures)

    def _committed_seed(self, nonces, digests: dict[int, bytes],
                        commitments: dict[int, bytes]) -> bytes:
        """The graph seed from the revealed nonces, once they and the roster reproduce the
        root the server committed to before any nonce was revealed (``commitments``: each
        nonce's commitment).

        Raises:
            SecAggProtocolError: Missing nonces, this client's own nonce altered, another
                roster size than committed, or a root that does not match (a key, nonce or
                member changed after the commitment).
        """
        c, me = self.config, self.client_id
        if set(nonces) != set(digests):
            raise SecAggProtocolError(
                f"client {me}: the roster gives nonces for {len(nonces)} of its "
                f"{len(digests)} clients; a committed graph needs every member's nonce"
            )
        if not hmac.compare_digest(nonces[me], self._nonce):
            raise SecAggProtocolError(
                f"client {me}: the roster lists another nonce for this client than the one it "
                "revealed; refusing the roster"
            )
        if len(digests) != self._roster_size:
            raise SecAggProtocolError(
                f"client {me}: the roster has {len(digests)} clients, the committed roster "
                f"{self._roster_size}; refusing the roster"
            )
        entries = {cid: (digests[cid], commitments[cid]) for cid in nonces}
        root = roster_root(entries, run_id=c.run_id, round_id=c.round_id)
        if not hmac.compare_digest(root, self._root):
            raise SecAggProtocolError(
                f"client {me}: the roster's keys and revealed nonces do not reproduce the "
                "roster root the server committed to (a nonce that does not match its "
                "commitment, or a key or member changed after the commitment); refusing the "
                "roster"
            )
        return committed_graph_seed(root, nonces, run_id=c.run_id, round_id=c.round_id)

    def _pair_key(
        self, pair: KeyPair, peer_public: bytes, peer: int, purpose: str, size: int
    ) -> bytes:
        c = self.config
        try:
            secret = pair.exchange(peer_public)
        except KeyAgreementError as exc:
            raise SecAggProtocolError(
                f"client {self.client_id}: public key of client {peer} rejected: {exc}"
            ) from exc
        return derive_key(
            secret,
            purpose=purpose,
            run_id=c.run_id,
            round_id=c.round_id,
            u=self.client_id,
            v=peer,
            length=size,
        )

    def masked_input(
        self, broadcast: SharesBroadcast, vector: np.ndarray, weight: float = 1.0
    ) -> MaskedInput:
        """Stage 2: decrypt the shares sent to this client, then return the masked input.

        The vector is clipped and multiplied by ``weight / max_weight``; that fraction is
        appended as one more element; the whole is quantised and masked with the self mask
        and ``+-PRG(s_uv)`` for every neighbour v whose shares arrived (smaller id adds).

        Raises:
            SecAggProtocolError: Wrong round or recipient, a ciphertext from a non-neighbour
                or one failing authentication, a wrong-length or non-finite vector, a weight
                outside ``[0, max_weight]``.
            SecAggAbort: Fewer than ``threshold`` neighbourhood members shared keys.
        """
        self._enter(Stage.MASKED_INPUT)
        c, me = self.config, self.client_id
        self._check_shares_broadcast(broadcast)
        values = np.asarray(vector)
        if values.shape != (c.vector_length,):
            raise SecAggProtocolError(
                f"client {me}: input vector has shape {values.shape}, expected ({c.vector_length},)"
            )
        fraction = self._weight_fraction(weight)
        self._accept_shares(broadcast)
        plain = np.empty(c.wire_length, dtype=np.float64)
        body = plain[: c.vector_length]
        body[...] = values
        np.clip(body, -c.clip, c.clip, out=body)
        body *= fraction
        plain[-1] = fraction
        masked = quantize(
            plain, clip=c.element_bound, scale=c.resolved_scale, bits=c.bits, rng=self._rng
        )
        self._apply_masks(masked)
        self._leave(Stage.MASKED_INPUT)
        return MaskedInput(c.run_id, c.round_id, me, masked)

    def masked_ring_input(self, broadcast: SharesBroadcast, ring_vector: np.ndarray) -> MaskedInput:
        """Stage 2 for a vector already in Z_{2^bits}: mask it as is (no clip, no quantising).

        For inputs whose ring sum is the result, e.g. random-valued Bloom filters or index
        vectors of a private set union (docs/submodel.md): the server's
        ``SecAggResult.ring_sum`` is then the exact sum mod 2^bits (its ``weighted_sum`` and
        ``total_weight`` are meaningless). The vector has ``config.wire_length`` elements:
        the last takes the weight's place (put 1 there to count contributors, or 0).

        Args:
            broadcast: The shares routed to this client.
            ring_vector: Integers in ``[0, 2^bits)`` (any integer dtype; not modified).

        Raises:
            SecAggProtocolError: As :meth:`masked_input`, or a ring vector of the wrong
                shape, a non-integer dtype or an element outside ``[0, 2^bits)``.
            SecAggAbort: Fewer than ``threshold`` neighbourhood members shared keys.

        Example:
            A client of a round of ``vector_length=3`` submits
            ``client.masked_ring_input(shares, np.array([5, 0, 2**32 - 1, 1], np.uint32))``.
        """
        self._enter(Stage.MASKED_INPUT)
        c, me = self.config, self.client_id
        self._check_shares_broadcast(broadcast)
        values = np.asarray(ring_vector)
        length = self._masked_length()
        if values.shape != (length,):
            raise SecAggProtocolError(
                f"client {me}: ring vector has shape {values.shape}, expected ({length},)"
            )
        if values.dtype.kind not in "ui":
            raise SecAggProtocolError(
                f"client {me}: ring vector has dtype {values.dtype}, expected an integer dtype"
            )
        if values.size and (int(values.min()) < 0 or int(values.max()) >= 1 << c.bits):
            raise SecAggProtocolError(
                f"client {me}: ring vector has elements outside [0, 2^{c.bits})"
            )
        self._accept_shares(broadcast)
        masked = values.astype(ring_dtype(c.bits))  # a copy: the input is never modified
        self._apply_masks(masked)
        self._leave(Stage.MASKED_INPUT)
        return MaskedInput(c.run_id, c.round_id, me, masked)

    # -- pieces of the masked-input stage, shared with fedkit.privacy.submodel -------
    def _check_shares_broadcast(self, broadcast: SharesBroadcast) -> None:
        self._check_addressed(broadcast, SharesBroadcast, "shares")

    def _check_addressed(self, message: object, expected: type, what: str) -> None:
        """Refuse a message of another type, run or round, or addressed to another client."""
        me = self.client_id
        if not isinstance(message, expected):
            raise SecAggProtocolError(
                f"client {me} expected a {expected.__name__}, got {type(message).__name__}"
            )
        check_round(message, self.config, f"client {me}")
        if message.recipient != me:
            raise SecAggProtocolError(
                f"client {me} received {what} addressed to client {message.recipient}"
            )

    def _weight_fraction(self, weight: float) -> float:
        c = self.config
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float | np.number)
            or not (math.isfinite(weight) and 0 <= weight <= c.max_weight)
        ):
            raise SecAggProtocolError(
                f"client {self.client_id}: weight={weight!r} must be in "
                f"[0, max_weight={c.max_weight}]"
            )
        return float(weight) / c.max_weight

    def _accept_shares(self, broadcast: SharesBroadcast) -> None:
        """Check the senders, decrypt and keep their share pairs (they become ``_senders``)."""
        c, me = self.config, self.client_id
        senders = frozenset(broadcast.ciphertexts)
        stray = senders - self._neighbours
        if stray:
            raise SecAggProtocolError(
                f"client {me}: shares from non-neighbour clients {sorted(stray)}"
            )
        if len(senders) + 1 < c.threshold:
            raise SecAggAbort(
                f"client {me}: only {len(senders) + 1} neighbourhood members shared keys, "
                f"below threshold t={c.threshold}"
            )
        for v in sorted(senders):
            key = self._share_keys[v]
            ad = aead.associated_data(run_id=c.run_id, round_id=c.round_id, sender=v, receiver=me)
            try:
                plaintext = aead.decrypt(key, broadcast.ciphertexts[v], associated=ad)
            except aead.AuthenticationError as exc:
                raise SecAggProtocolError(
                    f"client {me}: share ciphertext from client {v} "
                    f"(run {c.run_id}, round {c.round_id}) "
                    f"rejected: {exc}; client {me} stops"
                ) from exc
            if len(plaintext) != 32 + 2 * shamir.SHARE_SIZE or not hmac.compare_digest(
                plaintext[:32], share_plaintext_header(c, v, me)
            ):
                raise SecAggProtocolError(
                    f"client {me}: share plaintext from client {v} names the wrong round or ids"
                )
            b = shamir.Share.from_bytes(0, plaintext[32:98]).y
            k = shamir.Share.from_bytes(0, plaintext[98:]).y
            self._received[v] = (b, k)
        self._senders = senders
        self._share_keys.clear()

    def _masked_length(self) -> int:
        """Number of ring elements of this client's masked vector."""
        return self.config.wire_length

    def _self_mask_seed(self) -> bytes:
        c = self.config
        return derive_key(
            self._self_seed,
            purpose="self-mask",
            run_id=c.run_id,
            round_id=c.round_id,
            u=self.client_id,
            v=self.client_id,
        )

    def _mask_seed(self, peer: int) -> bytes:
        """The pairwise mask seed s_uv shared with ``peer`` (a neighbour that sent shares)."""
        return self._pair_key(self._mask, self._roster[peer][1], peer, "mask", 32)

    def _apply_masks(self, masked: np.ndarray) -> None:
        """Add the self mask and +-PRG(s_uv) of every sender over the whole vector, in place."""
        c, me = self.config, self.client_id
        expander = MaskExpander(masked.size, bits=c.bits)
        expander.add_into(masked, self._self_mask_seed(), sign=+1)
        for v in sorted(self._senders):
            expander.add_into(masked, self._mask_seed(v), sign=+1 if me < v else -1)

    def consistency_check(self, request: ConsistencyRequest) -> ConsistencySignature:
        """Consistency stage (``consistency_check`` only): check the survivors set U3 the
        server sends and sign it.

        Raises:
            SecAggProtocolError: Not a :class:`ConsistencyRequest`, wrong round or recipient,
                an id outside the roster, this client not in U3, or a neighbour in U3 that
                never shared keys with it.
            SecAggAbort: Fewer than ``threshold`` of itself and its senders in U3.
            SecAggStateError: Out of order, or ``consistency_check`` is off.
        """
        self._enter(Stage.CONSISTENCY_CHECK)
        c, me = self.config, self.client_id
        self._check_addressed(request, ConsistencyRequest, "the survivors set")
        self._survivors = check_survivors(c, me, request.survivors, self._roster_ids,
                                          self._neighbours, self._senders)
        signature = self._identity.signing_key.sign(survivors_statement(c, self._survivors))
        self._leave(Stage.CONSISTENCY_CHECK)
        return ConsistencySignature(c.run_id, c.round_id, me, signature)

    def _agreed_request(self, request: UnmaskRequest) -> tuple[frozenset[int], frozenset[int]]:
        """With ``consistency_check``: the alive and dropped lists of the U3 this client
        signed, once enough signatures on that very U3 cover every share it will reveal."""
        c, me = self.config, self.client_id
        alive, dropped = agreed_lists(me, request.alive, request.dropped, self._survivors,
                                      self._senders)
        owners = (alive & (self._senders | {me})) | dropped
        if len(self._neighbours) == len(self._roster_ids) - 1:
            groups = dict.fromkeys(owners, self._roster_ids)  # complete: one neighbourhood
        else:
            groups = {v: (self._neighbourhoods[v] | {v}) if v != me else self._neighbours | {me}
                      for v in owners}
        check_consistency_signatures(self._identity, c, me, self._survivors,
                                     request.signatures, groups)
        return alive, dropped

    def unmask(self, request: UnmaskRequest) -> UnmaskResponse:
        """Stage 3: reveal self-mask shares of alive clients and key shares of dropped ones.

        With ``consistency_check`` the lists must be those of the U3 this client signed, and
        enough of the forwarded signatures must be on that U3
        (docs/secagg.md, "Consistency round"), or nothing is revealed.

        Raises:
            SecAggProtocolError: Wrong round; alive and dropped overlap (the server would get
                both secrets of a client); this client not listed alive; an unknown id; a
                client that shared keys with this one listed as neither; with
                ``consistency_check``, lists that disagree with the signed U3, a signer
                outside it or this client's own signature missing; without it, signatures.
            SecAggAbort: Fewer than ``threshold`` clients alive; with ``consistency_check``,
                fewer than ``threshold`` valid signatures on its U3 in the neighbourhood of a
                client whose share it would reveal.
        """
        self._enter(Stage.UNMASK)
        c, me = self.config, self.client_id
        if not isinstance(request, UnmaskRequest):
            raise SecAggProtocolError(
                f"client {me} expected an UnmaskRequest, got {type(request).__name__}"
            )
        check_round(request, c, f"client {me}")
        if c.consistency_check:
            alive, dropped = self._agreed_request(request)
        elif request.signatures:
            raise SecAggProtocolError(
                f"client {me}: the unmask request carries consistency signatures, but this "
                "instance has no consistency check")
        else:
            alive, dropped = frozenset(request.alive), frozenset(request.dropped)
        both = alive & dropped
        if both:
            raise SecAggProtocolError(
                f"client {me}: clients {sorted(both)} listed both alive and dropped; refusing to "
                "reveal both their self-mask and key shares"
            )
        unknown = (alive | dropped) - self._roster_ids
        if unknown:
            raise SecAggProtocolError(
                f"client {me}: unmask request names unknown client ids {sorted(unknown)}"
            )
        if me not in alive:
            raise SecAggProtocolError(
                f"client {me}: unmask request does not list this client as alive"
            )
        unlisted = self._senders - alive - dropped
        if unlisted:
            raise SecAggProtocolError(
                f"client {me}: clients {sorted(unlisted)} shared keys but are neither alive "
                "nor dropped"
            )
        if len(alive) < c.threshold:
            raise SecAggAbort(
                f"client {me}: only {len(alive)} clients alive, below threshold t={c.threshold}"
            )
        self_shares = {me: self._own_shares[0].to_bytes(shamir.SHARE_SIZE, "big")}
        key_shares = {}
        for v in sorted(self._senders):
            b, k = self._received[v]
            if v in alive:
                self_shares[v] = b.to_bytes(shamir.SHARE_SIZE, "big")
            elif v in dropped:
                key_shares[v] = k.to_bytes(shamir.SHARE_SIZE, "big")
        self._received.clear()
        self._leave(Stage.UNMASK)
        return UnmaskResponse(
            c.run_id, c.round_id, me, MappingProxyType(self_shares), MappingProxyType(key_shares)
        )

    # -- persistence between stages -------------------------------------------------------
    def to_state(self) -> bytes:
        """Serialise the client between two stages (it holds private keys: keep it local).

        A Flower client runs each stage in a separate ClientApp call, so the state lives in
        the node's ``context.state`` between them; :meth:`from_state` restores it. The
        long-term signing identity is not part of it: it stays in the client's configuration
        and is passed to :meth:`from_state` again.
        """
        state = {
            "version": _STATE_VERSION,
            "config": self.config.to_fields(),
            "client_id": self.client_id,
            "next": self._next,
            "enc": self._enc.private_bytes().hex(),
            "mask": self._mask.private_bytes().hex(),
            "roster": {str(c): [e.hex(), m.hex()] for c, (e, m) in self._roster.items()},
            "roster_ids": sorted(self._roster_ids),
            "neighbours": sorted(self._neighbours),
            "senders": sorted(self._senders),
            "own_shares": [str(y) for y in self._own_shares],
            "self_seed": self._self_seed.hex(),
            "share_keys": {str(c): k.hex() for c, k in self._share_keys.items()},
            "received": {str(c): [str(b), str(k)] for c, (b, k) in self._received.items()},
            "nonce": self._nonce.hex(),
            "root": self._root.hex(),
            "roster_size": self._roster_size,
            "survivors": sorted(self._survivors),
            "neighbourhoods": {str(v): sorted(n) for v, n in self._neighbourhoods.items()},
            **self._extra_state(),
        }
        return json.dumps(state, separators=(",", ":")).encode()

    @classmethod
    def from_state(
        cls, config: SecAggConfig | None, data: bytes, *, rng: np.random.Generator | None = None,
        identity: SigningIdentity | None = None,
    ) -> SecAggClient:
        """Restore :meth:`to_state`'s output.

        Args:
            config: The round's parameters as the server states them now, checked against
                those the client started with; ``None`` takes the saved ones (the server
                sends the parameters once, when it opens the instance).
            data: What :meth:`to_state` returned.
            rng: Stochastic-rounding generator of the restored client.
            identity: The client's signing identity (required with ``consistency_check``).

        Raises:
            SecAggStateError: Unreadable state, another state version, a missing or
                malformed field (named), or a ``config`` that differs from the one the
                client started the round with (the server may not change the parameters
                mid-round).
            SecAggConfigError: ``consistency_check`` without a matching identity.
        """
        try:
            state = json.loads(bytes(data).decode())
            version = state["version"]
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            raise SecAggStateError(f"secure-aggregation client state is unreadable: {exc}") from exc
        if version != _STATE_VERSION:
            raise SecAggStateError(
                f"secure-aggregation client state has version {version!r}, "
                f"expected {_STATE_VERSION}"
            )
        saved = state.get("config")
        if not isinstance(saved, dict):
            raise SecAggStateError("secure-aggregation client state lacks the parameters it "
                                   "started with (field 'config')")
        if config is None:
            try:
                config = cls.config_class.from_fields(saved)
            except SecAggError as exc:
                raise SecAggStateError(f"secure-aggregation client state: {exc}") from exc
        if saved != config.to_fields():
            raise SecAggStateError(
                f"client {state.get('client_id')}: the round's parameters changed between "
                f"stages (started with {saved}, now {config.to_fields()})"
            )
        client = cls.__new__(cls)  # no fresh key pairs: they are restored below
        client.config = config
        try:
            client._restore_fields(state)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise SecAggStateError(
                f"secure-aggregation client state (version {version}) has a missing or "
                f"malformed field: {type(exc).__name__} {exc}") from exc
        client._identity = _checked_identity(config, client.client_id, identity)
        client._rng = rng if rng is not None else np.random.default_rng()
        client._restore_extra_state(state)
        return client

    def _restore_fields(self, state: dict) -> None:
        """Set the protocol fields from a decoded :meth:`to_state` dict."""
        self.client_id = int(state["client_id"])
        self._next = int(state["next"])
        self._enc = KeyPair.from_private_bytes(bytes.fromhex(state["enc"]))
        self._mask = KeyPair.from_private_bytes(bytes.fromhex(state["mask"]))
        self._roster = {
            int(c): (bytes.fromhex(e), bytes.fromhex(m)) for c, (e, m) in state["roster"].items()
        }
        self._roster_ids = frozenset(int(c) for c in state["roster_ids"])
        self._neighbours = frozenset(int(c) for c in state["neighbours"])
        self._senders = frozenset(int(c) for c in state["senders"])
        own_b, own_k = state["own_shares"]
        self._own_shares = (int(own_b), int(own_k))
        self._self_seed = bytes.fromhex(state["self_seed"])
        self._share_keys = {int(c): bytes.fromhex(k) for c, k in state["share_keys"].items()}
        self._received = {
            int(c): (int(b), int(k)) for c, (b, k) in state["received"].items()
        }
        self._nonce = bytes.fromhex(state["nonce"])
        self._root = bytes.fromhex(state["root"])
        self._roster_size = int(state["roster_size"])
        self._survivors = frozenset(int(c) for c in state["survivors"])
        self._neighbourhoods = {int(v): frozenset(int(c) for c in n)
                                for v, n in state["neighbourhoods"].items()}

    def _extra_state(self) -> dict:
        """JSON-able state a subclass adds to :meth:`to_state` (none here)."""
        return {}

    def _restore_extra_state(self, state: dict) -> None:
        """Restore what :meth:`_extra_state` added (nothing here)."""

    def __repr__(self) -> str:
        stage = self.stage.value if self.stage else ("stopped" if self._next < 0 else "finished")
        return f"SecAggClient(client_id={self.client_id}, stage={stage}, secrets=<redacted>)"

