"""How a ClientApp tells a grid which messages it can execute together, and how.

A Flower ClientApp answers one message at a time. A grid that holds many nodes in one
process (:class:`~fedkit.flower.runtime.batched.BatchedInProcessGrid`) can do better for some
message kinds -- e.g. train K clients' local SGD in one ``torch.func`` computation -- but only
the app knows which messages those are and what the replies must be. The app says so with a
:class:`BatchHandler` attached to the ClientApp for one message type:

* ``accepts(msg, context)``: can this message join a batch? Messages it declines are executed
  by the ClientApp itself, one at a time.
* ``run(items, device)``: the replies to ``[(msg, context), ...]``, in order, each exactly
  the reply the ClientApp would have returned for that message on its own (same content,
  same side effects on ``context.state``); a message whose processing fails gets
  :func:`error_reply`, as a grid makes for a ClientApp that raises. ``device`` is where the
  grid asks the batched computation to run (a torch device string, e.g. ``"cpu"``).

Register it next to the handler Flower runs, with the same handler-level mods::

    TRAIN_MODS = [secagg_mod]

    @app.train(mods=TRAIN_MODS)
    def train(msg, context): ...

    batchable(app, "train", BatchHandler(accepts=..., run=...), mods=TRAIN_MODS)

Grids that do not batch (the sequential in-process grid, Flower's own runtimes) never look at
the handlers; the ClientApp behaves as without them.

**Mods.** Flower wraps a handler in the app-level mods, then the handler-level ones, the first
outermost. A batch handler is wrapped in the same mods in the same order, each by its
``wrap_batch(handler) -> BatchHandler`` attribute: a mod that supports batching transforms the
messages it accepts and the replies of the inner ``run`` exactly as it transforms them
around ``call_next``. A mod without ``wrap_batch`` declines: :func:`batch_handler` returns
None with the reason, and the grid runs that message type through the ClientApp. A mod
that has ``wrap_batch`` but must not see some messages batched says so in ``accepts``.

The contract, which the grid does not check: ``run`` receives the pushed messages themselves
(no copies, so it may share decoded content between them) and must not modify them; the
ClientApp's ``lifespan`` is not entered around ``run`` (an app that needs one should not
register batch handlers). Handlers are stored on the app object; app-level mods are read from
Flower 1.42's ``ClientApp._mods`` (flwr is pinned to 1.42.x).

References:
    Flower 1.42 ``flwr.clientapp.ClientApp`` and ``flwr.client.mod.utils.make_ffn`` (the
    order of the mods); optax's ``GradientTransformation`` (a pair of functions as a value).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from flwr.app import Context, Error, Message
from flwr.common.constant import ErrorCode

__all__ = ["BatchHandler", "BatchItem", "batch_handler", "batchable", "error_reply",
           "full_message_type"]

BatchItem = tuple[Message, Context]

_ATTRIBUTE = "fedkit_batch_handlers"  # on the ClientApp: full message type -> _Registration
_DEFAULT_ACTION = "default"  # Flower routes "train" to "train.default"


@dataclasses.dataclass(frozen=True)
class BatchHandler:
    """What a ClientApp does with a batch of messages of one type.

    Attributes:
        accepts: ``(msg, context) -> bool``; whether ``msg`` may be executed in a batch.
        run: ``(items, device) -> replies``; one reply per ``(msg, context)`` item, in order,
            each what the ClientApp would have returned for it alone (or
            :func:`error_reply`). Never raises for one item's failure.
    """

    accepts: Callable[[Message, Context], bool]
    run: Callable[[list[BatchItem], str], list[Message]]


@dataclasses.dataclass(frozen=True)
class _Registration:
    handler: BatchHandler
    mods: tuple[Any, ...]


def full_message_type(message_type: str) -> str:
    """``"train"`` -> ``"train.default"``, as Flower's ClientApp routes it; others unchanged."""
    return message_type if "." in message_type else f"{message_type}.{_DEFAULT_ACTION}"


def error_reply(msg: Message, exc: BaseException) -> Message:
    """The reply a grid makes when the ClientApp raises ``exc`` on ``msg``."""
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                         reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)


def batchable(app: Any, message_type: str, handler: BatchHandler, *,
              mods: Sequence[Any] = ()) -> None:
    """Attach ``handler`` to ``app`` for ``message_type``.

    Args:
        app: The ClientApp (any object that takes attributes).
        message_type: ``"train"``, ``"train.default"``, ``"evaluate.my_action"``, ...
        handler: The batch handler of that message type.
        mods: The handler-level mods the handler was registered with in Flower
            (``@app.train(mods=...)``); app-level mods are taken from the app.

    Raises:
        ValueError: If ``message_type`` already has a batch handler on ``app``.
    """
    full = full_message_type(message_type)
    registry = vars(app).setdefault(_ATTRIBUTE, {})
    if full in registry:
        raise ValueError(f"message type {full!r} already has a batch handler on this app; "
                         "register one per message type")
    registry[full] = _Registration(handler, tuple(mods))


def batch_handler(app: Any, message_type: str) -> tuple[BatchHandler | None, str]:
    """``app``'s batch handler for ``message_type``, wrapped in its mods, or None and why.

    The mods are the app-level ones followed by the handler-level ones, the first outermost
    (Flower's order); a mod without ``wrap_batch`` declines batching.

    Returns:
        ``(handler, "")``, or ``(None, reason)`` when the messages must run one at a time.
    """
    full = full_message_type(message_type)
    registration = getattr(app, _ATTRIBUTE, {}).get(full)
    if registration is None:
        return None, f"no batch handler registered for {full!r}"
    handler = registration.handler
    for mod in reversed([*getattr(app, "_mods", ()), *registration.mods]):
        wrap = getattr(mod, "wrap_batch", None)
        if wrap is None:
            name = getattr(mod, "__qualname__", repr(mod))
            return None, f"mod {name} of {full!r} declines batching (it has no wrap_batch)"
        handler = wrap(handler)
    return handler, ""
