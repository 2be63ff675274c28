"""FedLaAvg's client-delta mode on the client: keep G_i, send ΔG_i, recover a lost G_i.

Each client keeps its latest gradient sum G_i = (x - x_local)/lr in its Flower
``context.state`` and uploads only ΔG_i = G_i^new - G_i^old, as float64, so the server needs
O(d) memory (Yan et al., arXiv:2002.07399, Algorithm 1; code ``mikudehuane/FedLaAvg``). A
client whose stored version differs from the server's ``expected-version`` replies
``state-lost = 1`` instead of a delta against the wrong base; when next selected it gets the
model of the round its update was last folded (``recovery-arrays``, ``recovery-round``,
``recovery-lr``) and recomputes that G_i, which is exact when local training is deterministic
in (seed, round, client) -- fedkit's is (``docs/design.md``, "Unavailability-robust
strategies").

All of it is one Flower mod, :func:`fedlaavg_mod`, around a plain train handler that returns
its locally trained model: the mod strips the client-delta entries from the message, calls
the handler, and turns the returned model into ΔG_i; for a recovery it calls the handler a
second time with a train message built from the recovery model and round. Messages that do
not ask for ``reply = "gradient-delta"`` pass through unchanged, so the same ClientApp serves
FedAvg, MIFA, FedAU, FedVARP and FedLaAvg's server-table mode. fedkit's own ClientApp uses the
mod the same way (``TRAIN_MODS``). Under a batching grid the mod wraps a batch handler the
same way (:func:`wrap_batch`, attached as ``fedlaavg_mod.wrap_batch``).

Order with secure aggregation: client clip -> mask. ``secagg_mod`` goes before (outside) this
mod, ``mods=[secagg_mod, fedlaavg_mod]``; with ``delta-bound`` in the config (secure
aggregation's clipping range over lr_r) ΔG_i is clipped to it and the client stores
G_i^old + the clipped ΔG_i -- exactly what the server folds.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from fedkit.algorithms.arrays import flatten, from_flower_array, to_flower_array, unflatten
from fedkit.algorithms.base import REPLY_GRADIENT_DELTA
from fedkit.algorithms.replies import METRICS_KEY, STATE_LOST_KEY
from fedkit.flower.runtime.batching import BatchHandler, BatchItem, error_reply
from fedkit.flower.secagg.mod import is_secure_stage

__all__ = ["DeltaRequest", "GradientStore", "STATE_LOST", "fedlaavg_mod", "gradient_sum",
           "wrap_batch"]

STATE_LOST = STATE_LOST_KEY
_G_KEY = "fedkit.fedlaavg.g"
_META_KEY = "fedkit.fedlaavg.meta"
RECOVERY_ARRAYS = "recovery-arrays"
# Config entries of a client-delta request (fedkit.algorithms.fedlaavg.client_instructions);
# the train handler sees the message without them.
_DELTA_KEYS = ("reply", "expected-version", "delta-bound", "recovery-round", "recovery-lr")


def gradient_sum(sent: ArrayRecord, local: ArrayRecord, lr: float) -> np.ndarray:
    """G = (x_sent - x_local) / lr as one float64 vector (the sum of the local gradients)."""
    return (flatten(sent) - flatten(local)) / lr


class GradientStore:
    """The client's (G_i, version) in ``context.state``."""

    def __init__(self, context: Context) -> None:
        self.state: RecordDict = context.state

    def load(self) -> tuple[np.ndarray | None, int]:
        """The stored G_i and its version (None, 0 when nothing is stored)."""
        if _G_KEY not in self.state.array_records:
            return None, 0
        g = from_flower_array(self.state.array_records[_G_KEY]["g"])  # read-only view
        version = int(self.state.config_records[_META_KEY]["version"])
        return g, version

    def save(self, g: np.ndarray, version: int) -> None:
        """Store G_i (float64) and its version."""
        self.state[_G_KEY] = ArrayRecord({"g": to_flower_array(np.asarray(g, np.float64))})
        self.state[_META_KEY] = ConfigRecord({"version": version})

    def base(self, expected_version: int, dim: int) -> np.ndarray | None:
        """G_i^old to subtract, or None when the stored one does not match the server's.

        Args:
            expected_version: The server's count of folded updates of this client.
            dim: Model size (a never-seen client's G_i^old is zero).
        """
        if expected_version == 0:
            return np.zeros(dim, dtype=np.float64)
        g, version = self.load()
        return g if g is not None and version == expected_version else None


def _one_array_record(content: RecordDict, exclude: str = "") -> str | None:
    names = [k for k in content.array_records if k != exclude]
    return names[0] if len(names) == 1 else None


@dataclasses.dataclass(frozen=True)
class DeltaRequest:
    """The client-delta instructions of one train message, checked once.

    Attributes:
        config_key: Name of the ConfigRecord that holds ``reply = "gradient-delta"``.
        arrays_key: Name of the ArrayRecord with the model the server sent.
        lr: The round's learning rate (``lr``).
        expected_version: The server's count of this client's folded updates.
        delta_bound: Clipping bound of ΔG_i under secure aggregation, or None.
        recovery: ``(round, lr)`` of the recovery model in ``recovery-arrays``, or None.
    """

    config_key: str
    arrays_key: str
    lr: float
    expected_version: int
    delta_bound: float | None
    recovery: tuple[int, float] | None

    @classmethod
    def of(cls, msg: Message) -> DeltaRequest | None:
        """The request in ``msg``, or None if ``msg`` does not ask for a gradient delta.

        Raises:
            ValueError: If a client-delta entry is missing or malformed.
        """
        if msg.metadata.message_type.split(".")[0] != "train" or not msg.has_content():
            return None
        content = msg.content
        config_key = next((k for k, rec in content.config_records.items()
                           if rec.get("reply") == REPLY_GRADIENT_DELTA), None)
        if config_key is None:
            return None
        if is_secure_stage(msg):
            raise ValueError("fedlaavg_mod received a secure-aggregation stage message: put "
                             "secagg_mod before fedlaavg_mod (mods=[secagg_mod, fedlaavg_mod])")
        config = content.config_records[config_key]
        arrays_key = _one_array_record(content, exclude=RECOVERY_ARRAYS)
        if arrays_key is None:
            raise ValueError(f"train message asks for a gradient delta but holds ArrayRecords "
                             f"{list(content.array_records)}, expected the model and at most "
                             f"{RECOVERY_ARRAYS!r}")
        recovery = None
        if RECOVERY_ARRAYS in content.array_records:
            recovery = (_entry(config, "recovery-round", int), _entry(config, "recovery-lr", float))
        bound = config.get("delta-bound")
        return cls(config_key=config_key, arrays_key=arrays_key, lr=_entry(config, "lr", float),
                   expected_version=_entry(config, "expected-version", int),
                   delta_bound=None if bound is None else float(bound), recovery=recovery)

    def train_message(self, msg: Message) -> Message:
        """``msg`` as the handler sees it: an ordinary train message, without the entries
        of this request (a shallow copy; ``msg`` is not changed)."""
        return self._message(msg, msg.content[self.arrays_key], {})

    def recovery_message(self, msg: Message) -> Message:
        """The train message of the recovery round: its model, round and learning rate."""
        if self.recovery is None:
            raise ValueError("this request carries no recovery model")
        server_round, lr = self.recovery
        return self._message(msg, msg.content[RECOVERY_ARRAYS],
                             {"server-round": server_round, "lr": lr})

    def _message(self, msg: Message, arrays: ArrayRecord, changes: dict) -> Message:
        config = {k: v for k, v in msg.content.config_records[self.config_key].items()
                  if k not in _DELTA_KEYS}
        content = RecordDict({k: v for k, v in msg.content.items() if k != RECOVERY_ARRAYS})
        content[self.arrays_key] = arrays
        content[self.config_key] = ConfigRecord({**config, **changes})
        inner = copy.copy(msg)  # same metadata: the handler's reply answers this message
        inner.content = content
        return inner

    def dim(self, msg: Message) -> int:
        """Number of values in the model the server sent."""
        return sum(int(np.prod(a.shape)) for a in msg.content[self.arrays_key].values())

    def gradient_sum(self, sent: ArrayRecord, reply: RecordDict, lr: float) -> np.ndarray:
        """G from the handler's reply to a train message with model ``sent`` at ``lr``.

        Raises:
            ValueError: If the reply holds no single model with the sent names and shapes.
        """
        key = self.arrays_key if self.arrays_key in reply.array_records else (
            _one_array_record(reply))
        if key is None:
            raise ValueError(
                "fedlaavg_mod: the train handler's reply holds ArrayRecords "
                f"{list(reply.array_records)}, expected one ArrayRecord with the locally "
                "trained model (e.g. RecordDict({'arrays': ArrayRecord(...), 'metrics': ...}))")
        local = reply.array_records[key]
        shapes = {k: tuple(a.shape) for k, a in local.items()}
        want = {k: tuple(a.shape) for k, a in sent.items()}
        if shapes != want:
            raise ValueError(f"fedlaavg_mod: the trained model has arrays {shapes}, expected "
                             f"the names and shapes of the model sent, {want}")
        return gradient_sum(sent, ArrayRecord({k: local[k] for k in sent}), lr)

    def reply_content(self, context: Context, msg: Message, reply: RecordDict,
                      base: np.ndarray) -> RecordDict:
        """The handler's reply with ΔG_i (float64) in place of the model; stores G_i^new."""
        sent = msg.content[self.arrays_key]
        delta = self.gradient_sum(sent, reply, self.lr) - base
        if self.delta_bound is not None:
            # Secure aggregation clips lr * ΔG_i to its range; store what the server folds.
            np.clip(delta, -self.delta_bound, self.delta_bound, out=delta)
        GradientStore(context).save(base + delta, self.expected_version + 1)
        others = {k: v for k, v in reply.items() if k not in reply.array_records}
        return RecordDict({self.arrays_key: unflatten(delta, sent, dtype=np.float64), **others})

    @staticmethod
    def state_lost_content() -> RecordDict:
        """The reply of a client whose G_i is lost and cannot be recomputed yet."""
        return RecordDict({METRICS_KEY: MetricRecord({STATE_LOST: 1})})


def _entry(config: ConfigRecord, key: str, kind: type) -> int | float:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            kind is int and not float(value).is_integer()):
        raise ValueError(f"client-delta train config {key!r} = {value!r}, expected "
                         f"{'an integer' if kind is int else 'a number'} (see FedLaAvg's "
                         "message contract in docs/flower.md)")
    return kind(value)


def fedlaavg_mod(msg: Message, context: Context,
                 call_next: Callable[[Message, Context], Message]) -> Message:
    """Flower mod: answer FedLaAvg's ``reply = "gradient-delta"`` around a model-returning
    train handler; pass every other message through (see the module docstring).

    Raises:
        ValueError: On a malformed client-delta request or a reply without the model.
    """
    request = DeltaRequest.of(msg)
    if request is None:
        return call_next(msg, context)
    base = GradientStore(context).base(request.expected_version, request.dim(msg))
    if base is None and request.recovery is None:
        return Message(request.state_lost_content(), reply_to=msg)
    reply = call_next(request.train_message(msg), context)
    if reply.has_error():
        return Message(reply.error, reply_to=msg)
    if base is None:
        recovered = call_next(request.recovery_message(msg), context)
        if recovered.has_error():
            return Message(recovered.error, reply_to=msg)
        base = request.gradient_sum(msg.content[RECOVERY_ARRAYS], recovered.content,
                                    request.recovery[1])
    return Message(request.reply_content(context, msg, reply.content, base), reply_to=msg)


def wrap_batch(inner: BatchHandler) -> BatchHandler:
    """``inner`` wrapped as :func:`fedlaavg_mod` wraps a train handler, message for message.

    A client-delta message joins the batch when ``inner`` accepts its train message (and its
    recovery message, if any); the round's recoveries run as a second ``inner.run`` call.
    """

    def accepts(msg: Message, context: Context) -> bool:
        try:
            request = DeltaRequest.of(msg)
        except ValueError:
            return False  # the mod answers it with the error
        if request is None:
            return inner.accepts(msg, context)
        return inner.accepts(request.train_message(msg), context) and (
            request.recovery is None or inner.accepts(request.recovery_message(msg), context))

    def run(items: list[BatchItem], device: str) -> list[Message]:
        replies: list[Message | None] = [None] * len(items)
        plans: dict[int, tuple[DeltaRequest, np.ndarray | None]] = {}
        trains: list[tuple[int, BatchItem]] = []
        for i, (msg, context) in enumerate(items):
            try:
                request = DeltaRequest.of(msg)
                if request is None:
                    trains.append((i, (msg, context)))
                    continue
                base = GradientStore(context).base(request.expected_version, request.dim(msg))
            except Exception as exc:  # noqa: BLE001 - a client failure is a reply
                replies[i] = error_reply(msg, exc)
                continue
            if base is None and request.recovery is None:
                replies[i] = Message(request.state_lost_content(), reply_to=msg)
                continue
            plans[i] = (request, base)
            trains.append((i, (request.train_message(msg), context)))
        trained = dict(zip([i for i, _ in trains],
                           inner.run([item for _, item in trains], device) if trains else [],
                           strict=True))
        recover = [i for i, (_, base) in plans.items()
                   if base is None and not trained[i].has_error()]
        recovered = dict(zip(recover, inner.run(
            [(plans[i][0].recovery_message(items[i][0]), items[i][1]) for i in recover],
            device) if recover else [], strict=True))
        for i, reply in trained.items():
            msg, context = items[i]
            if i not in plans:
                replies[i] = reply
            elif reply.has_error():
                replies[i] = Message(reply.error, reply_to=msg)
            elif i in recovered and recovered[i].has_error():
                replies[i] = Message(recovered[i].error, reply_to=msg)
            else:
                request, base = plans[i]
                try:
                    if base is None:
                        base = request.gradient_sum(msg.content[RECOVERY_ARRAYS],
                                                    recovered[i].content, request.recovery[1])
                    content = request.reply_content(context, msg, reply.content, base)
                except Exception as exc:  # noqa: BLE001 - a client failure is a reply
                    replies[i] = error_reply(msg, exc)
                    continue
                replies[i] = Message(content, reply_to=msg)
        return [reply for reply in replies if reply is not None]

    return BatchHandler(accepts=accepts, run=run)


fedlaavg_mod.wrap_batch = wrap_batch  # type: ignore[attr-defined]
