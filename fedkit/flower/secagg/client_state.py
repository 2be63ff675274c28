"""The client side of one secure-aggregation stage, with its state kept in the node.

A Flower node answers each stage in a separate ClientApp call, so between stages the protocol
client (:class:`~fedkit.privacy.secagg.SecAggClient` or a subclass) lives in the node's
``context.state`` (kept across messages by every Flower runtime) under
:data:`PROTOCOL_STATE_KEY`, together with the parameters the server sent when it opened the
instance. :func:`client_stage` is the one place that creates, restores, saves and forgets it:
the secure-aggregation mod of training rounds, the private set union and the submodel upload
all answer their stages through it. The state holds private keys and never leaves the node;
it is deleted when the instance ends or a stage fails, so a later round starts clean.

Before it opens an instance, the node holds the server's parameters to its own floor
(:func:`~fedkit.flower.secagg.policy.node_policy`, from its node config): a request below it
is refused before any key exists (``docs/secagg.md``, "Client-side policy"). With the
consistency check the client signs with the node's own identity
(:func:`~fedkit.flower.secagg.identity.node_identity`: its key and key list from its node
config), read again at every stage and never saved with the protocol state.

The saved record holds ``state`` (:meth:`SecAggClient.to_state`, versioned: a state of
another version is refused with a clear error) and ``consistency-check`` (whether the
instance needs the node's identity to be restored).
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import ConfigRecord, Context

from fedkit.flower.secagg.identity import node_identity
from fedkit.flower.secagg.policy import node_policy
from fedkit.flower.secagg.records import CONFIG_PREFIX, read_config
from fedkit.privacy.secagg import (
    SecAggClient,
    SecAggConfig,
    SecAggProtocolError,
    Stage,
    decode_message,
)

__all__ = ["PROTOCOL_STATE_KEY", "client_stage", "forget_protocol_state"]

PROTOCOL_STATE_KEY = "fedkit.secagg.protocol"


def forget_protocol_state(context: Context) -> None:
    """Delete this node's protocol state, if any."""
    if PROTOCOL_STATE_KEY in context.state:
        del context.state[PROTOCOL_STATE_KEY]


def _restore(context: Context, cls: type[SecAggClient], record: ConfigRecord,
             phase: str) -> SecAggClient:
    saved = context.state.config_records.get(PROTOCOL_STATE_KEY)
    if saved is None:
        raise SecAggProtocolError(
            f"client {record.get('client-id')}: {phase} of round {record.get('server-round')} "
            "arrived but this node holds no protocol state (it missed an earlier stage or "
            "restarted)")
    identity = node_identity(context) if saved.get("consistency-check", False) else None
    client = cls.from_state(None, saved["state"], identity=identity)
    # parameters travel once, when the instance opens; a later request that states any of
    # them again must state the same values
    stated = {k[len(CONFIG_PREFIX):]: v for k, v in record.items() if k.startswith(CONFIG_PREFIX)}
    started = client.config.to_fields()
    changed = sorted(k for k, v in stated.items() if started.get(k, None) != v)
    if changed:
        raise SecAggProtocolError(
            f"client {client.client_id}: the round's parameters changed between stages "
            f"({', '.join(f'{k}: {started.get(k)!r} -> {stated[k]!r}' for k in changed)})")
    return client


def client_stage(context: Context, stage: Stage, record: ConfigRecord, *,
                 cls: type[SecAggClient] = SecAggClient,
                 decode_fn: Callable[[bytes], object] = decode_message,
                 open_fn: Callable[[SecAggConfig, int], SecAggClient] | None = None,
                 masked_fn: Callable[[SecAggClient, object], object] | None = None) -> bytes:
    """Answer one stage request (its exchange record) on this node; return the reply bytes.

    Args:
        context: The node's context (its ``state`` holds the protocol client between stages).
        stage: The request's stage.
        record: The request's exchange record (``client-id``, ``payload``, the parameters in
            the opening request).
        cls: The protocol client class.
        decode_fn: Decodes the server's protocol message.
        open_fn: ``(config, client id) -> client`` for advertise-keys; default ``cls(config,
            client id)``.
        masked_fn: ``(client, shares broadcast) -> masked input`` for masked-input.

    Raises:
        SecAggPolicyError: The opening request's parameters are below this node's policy
            (its ``secagg-min-*`` node config, else the defaults); nothing is created.
        SecAggConfigError: The consistency check without a usable signing identity on
            this node (:func:`~fedkit.flower.secagg.identity.node_identity`).
        SecAggError: Any failed protocol check; the node's protocol state is deleted.
    """
    phase = str(record.get("phase"))
    try:
        if stage is Stage.ADVERTISE_KEYS:
            config = read_config(record)
            client_id = int(record["client-id"])
            node_policy(context.node_config).check(config, client_id=client_id)
            if open_fn is not None:
                client = open_fn(config, client_id)
            else:
                identity = node_identity(context) if config.consistency_check else None
                client = cls(config, client_id, identity=identity)
            out = client.advertise_keys()
        else:
            client = _restore(context, cls, record, phase)
            request = decode_fn(bytes(record["payload"]))
            if stage is Stage.REVEAL_NONCE:
                out = client.reveal_nonce(request)
            elif stage is Stage.SHARE_KEYS:
                out = client.share_keys(request)
            elif stage is Stage.MASKED_INPUT:
                if masked_fn is None:
                    raise SecAggProtocolError(f"{phase}: this node has no input for it")
                out = masked_fn(client, request)
            elif stage is Stage.CONSISTENCY_CHECK:
                out = client.consistency_check(request)
            else:
                out = client.unmask(request)
    except Exception:
        forget_protocol_state(context)
        raise
    if client.stage is None:
        forget_protocol_state(context)
    else:
        context.state[PROTOCOL_STATE_KEY] = ConfigRecord({
            "state": client.to_state(), "consistency-check": client.config.consistency_check})
    return out.to_bytes()
