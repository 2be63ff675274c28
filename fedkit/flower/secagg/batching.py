"""Secure aggregation under a batching grid: ``secagg_mod``'s batch wrapper.

:func:`wrap_batch` is to a :class:`~fedkit.flower.runtime.batching.BatchHandler` what
:func:`~fedkit.flower.secagg.mod.secagg_mod` is to a train handler, message for message:

* a message without a secure-aggregation stage passes through to the inner handler, and its
  reply passes back unchanged;
* a masked-input stage message carries the round's train content: the inner handler sees it
  without the secure record (as ``call_next`` does) and decides whether it joins a batch;
  each reply is then masked with :func:`~fedkit.flower.secagg.mod.masked_input_content`; a
  reply without arrays passes on as is (the client leaves the protocol), and an error reply
  passes on after the client's protocol state is dropped;
* the other stages (advertise keys, reveal nonce, share keys, consistency check, unmask) are
  not accepted: the grid runs them through the ClientApp, i.e. through ``secagg_mod`` itself,
  one at a time.

Importing this module attaches the wrapper as ``secagg_mod.wrap_batch``, which is how
:func:`~fedkit.flower.runtime.batching.batch_handler` finds it (fedkit's ClientApp imports it).
The protocol is Bonawitz et al. (CCS 2017), ``docs/secagg.md``.
"""

from __future__ import annotations

import copy

from flwr.app import Context, Message

from fedkit.flower.runtime.batching import BatchHandler, BatchItem, error_reply
from fedkit.flower.secagg.client_state import forget_protocol_state
from fedkit.flower.secagg.mod import (
    _train_message,
    is_secure_stage,
    masked_input_content,
    secagg_mod,
)
from fedkit.privacy.secagg import Stage

__all__ = ["wrap_batch"]


def _inner_message(msg: Message) -> Message:
    """What the inner handler sees: the train message inside a masked-input stage message.

    A shallow copy (same metadata, same records), so ``msg`` itself is not changed and replies
    to either are the same.
    """
    if is_secure_stage(msg):
        return _train_message(copy.copy(msg))
    return msg


def wrap_batch(inner: BatchHandler) -> BatchHandler:
    """``inner`` wrapped as ``secagg_mod`` wraps a train handler.

    Args:
        inner: The batch handler of the train messages.

    Returns:
        A handler that also accepts masked-input stage messages and masks their replies.
    """

    def accepts(msg: Message, context: Context) -> bool:
        if is_secure_stage(msg) and not is_secure_stage(msg, Stage.MASKED_INPUT):
            return False
        return inner.accepts(_inner_message(msg), context)

    def run(items: list[BatchItem], device: str) -> list[Message]:
        inner_replies = inner.run([(_inner_message(m), c) for m, c in items], device)
        replies = []
        for (msg, context), reply in zip(items, inner_replies, strict=True):
            if not is_secure_stage(msg):
                replies.append(reply)
            elif reply.has_error():
                forget_protocol_state(context)  # as the mod does when training fails
                replies.append(reply)
            else:
                try:
                    content = masked_input_content(msg, context, reply.content)
                except Exception as exc:  # noqa: BLE001 - a client failure is a reply
                    replies.append(error_reply(msg, exc))
                    continue
                replies.append(Message(content, reply_to=msg))
        return replies

    return BatchHandler(accepts=accepts, run=run)


secagg_mod.wrap_batch = wrap_batch  # type: ignore[attr-defined]
