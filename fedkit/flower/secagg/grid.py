"""Secure aggregation for any strategy and any loop: a grid that runs train rounds securely.

:class:`SecureAggregationGrid` wraps a Flower ``Grid``. When a strategy sends a round's
``train`` messages through ``send_and_receive`` -- as Flower's ``Strategy.start`` and fedkit's
loop both do -- it runs :class:`~fedkit.flower.secagg.workflow.SecureAggregation` with those
clients instead, and answers with **one reply that is the aggregate**, so the strategy
aggregates what secure aggregation allows it to see and nothing else:

* for Flower's own strategies (e.g. ``flwr.serverapp.strategy.FedAvg``): the weighted mean of
  the clients' local models (the received model plus the mean update) under the
  ``arrays`` record, with the total weight as ``num-examples`` (``weighted_by_key``) and the
  round's secure-aggregation figures as metrics -- a weighted average over this single reply
  is the weighted average over the clients;
* for fedkit's strategies (the ``strategy`` argument): the :class:`~fedkit.algorithms.
  secure_sum.SecureSum` itself (:func:`~fedkit.algorithms.secure_sum.secure_sum_content`),
  which :meth:`FedkitStrategy.aggregate_train` folds through its secure path (FedLaAvg's
  client-delta mode needs the contributors, not only the mean).

Every other message (client-id queries, evaluation) passes through. Clients need
:func:`~fedkit.flower.secagg.mod.secagg_mod` around their train handler, and their train reply
must hold its model as the ``arrays`` ArrayRecord and, for weighted means, ``num-examples`` in
its ``metrics``. See ``docs/flower.md`` ("Secure aggregation").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from flwr.app import Error, Message, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

from fedkit.algorithms.arrays import flatten, unflatten
from fedkit.algorithms.base import FedkitStrategy
from fedkit.algorithms.replies import ARRAYS_KEY
from fedkit.algorithms.secure_sum import VectorSpec, secure_sum_content
from fedkit.flower.runtime.wrapper import GridWrapper
from fedkit.flower.secagg.workflow import SecureAggregation, SecureAggregationSettings

__all__ = ["SecureAggregationGrid", "secure_train_fn"]

logger = logging.getLogger(__name__)


class SecureAggregationGrid(GridWrapper):
    """A grid whose train rounds run under secure aggregation (see the module docstring).

    Args:
        inner: The grid that reaches the nodes.
        settings: The protocol settings (graph degree, threshold, clipping range, ring).
        strategy: A fedkit strategy whose rounds these are (its vector spec and client ids
            are used, and it receives the unmasked sum); None for any other strategy, whose
            clients then mask their model update weighted by ``weighted_by_key``.
        weighted_by_key: The metric that weights a client's update (``None``: every client
            weighs 1), as Flower's ``FedAvg(weighted_by_key=...)``; only ``num-examples`` or
            None can be masked.
        timeout: Timeout of each stage's ``send_and_receive`` (default: the caller's).

    Raises:
        ValueError: A strategy that needs individual updates, or another weighting key.
    """

    def __init__(self, inner: Grid, settings: SecureAggregationSettings | None = None, *,
                 strategy: FedkitStrategy | None = None,
                 weighted_by_key: str | None = "num-examples",
                 timeout: float | None = None) -> None:
        if weighted_by_key not in ("num-examples", None):
            raise ValueError(f"weighted_by_key = {weighted_by_key!r}: secure aggregation masks "
                             "weights from the 'num-examples' metric, or none (None)")
        super().__init__(inner)
        self.settings = settings or SecureAggregationSettings()
        self.strategy = strategy
        self.weighted_by_key = weighted_by_key
        self.timeout = timeout
        if strategy is not None:
            strategy.enable_secure_aggregation(self.settings.clip)

    # -- Grid interface: everything but train rounds passes through ---------------------
    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        messages = list(messages)
        if not messages or any(m.metadata.message_type != "train" for m in messages):
            return self.inner.send_and_receive(messages, timeout=timeout)
        if any(ARRAYS_KEY not in m.content.array_records for m in messages):
            names = sorted(messages[0].content.array_records.keys())
            raise ValueError(f"SecureAggregationGrid: train messages hold ArrayRecords {names}, "
                             f"expected the model under {ARRAYS_KEY!r} (the arrayrecord_key "
                             "secure aggregation masks); refusing to send the round in clear")
        return [self._secure_round(messages, self.timeout if self.timeout is not None
                                   else timeout)]

    # -- one secure round -------------------------------------------------------------------
    def _secure_round(self, messages: list[Message], timeout: float | None) -> Message:
        server_round = _round_of(messages[0])
        sent = messages[0].content[ARRAYS_KEY]
        if self.strategy is not None:
            pairs = self.strategy.sent_messages()
            if [id(m) for m, _ in pairs] != [id(m) for m in messages]:
                raise RuntimeError("SecureAggregationGrid: the train messages are not the ones "
                                   f"the strategy {self.strategy.name!r} configured this round")
            spec = self.strategy.secure_vector_spec(server_round)
            length = self.strategy.vector_length
        else:
            pairs = [(m, m.metadata.dst_node_id) for m in messages]  # node ids as protocol ids
            spec = VectorSpec(offset=True, prescale=1.0, weighting=(
                "uniform" if self.weighted_by_key is None else "num-examples"))
            length = sum(int(np.prod(a.shape)) for a in sent.values())
        outcome = SecureAggregation(self.settings).run(
            self.inner, pairs, spec=spec, vector_length=length, server_round=server_round,
            timeout=timeout)
        if self.strategy is not None:
            return Message(secure_sum_content(outcome), reply_to=messages[0])
        if outcome.weighted_sum is None or outcome.total_weight <= 0:
            reason = outcome.aborted or "no client's input reached the sum"
            return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                 reason=f"secure aggregation round {server_round}: {reason}"),
                           reply_to=messages[0])
        mean = flatten(sent) + outcome.weighted_sum / outcome.total_weight
        metrics = {"num-examples" if self.weighted_by_key else "num-clients":
                   float(outcome.total_weight),
                   "secagg-contributors": len(outcome.contributors),
                   "secagg-dropped": len(outcome.failed),
                   "secagg-clipped-fraction": float(outcome.clipped_fraction or 0.0)}
        return Message(RecordDict({ARRAYS_KEY: unflatten(mean, sent),
                                   "metrics": MetricRecord(metrics)}), reply_to=messages[0])


def _round_of(msg: Message) -> int:
    """The round of a strategy's train message: its config's ``server-round``, else its
    group id (Flower's and fedkit's strategies set both)."""
    config = msg.content.config_records.get("config")
    if config is not None and "server-round" in config:
        return int(config["server-round"])
    try:
        return int(msg.metadata.group_id)
    except ValueError:
        raise ValueError(f"train message without a round: group id "
                         f"{msg.metadata.group_id!r} and no config 'server-round'") from None


def secure_train_fn(strategy: FedkitStrategy, grid: Grid, settings: SecureAggregationSettings,
                    timeout: float | None = None):
    """A :data:`~fedkit.flower.apps.loop.TrainFn` that trains each round under secure
    aggregation: the round's messages go through a
    :class:`~fedkit.flower.secagg.grid.SecureAggregationGrid` and the strategy folds its
    answer, exactly as under ``run_rounds(strategy, SecureAggregationGrid(grid, ...))``.

    Raises:
        ValueError: If ``strategy`` needs individual client updates.
    """
    secure = SecureAggregationGrid(grid, settings, strategy=strategy, timeout=timeout)

    def train(server_round: int, messages: list[Message]):
        return strategy.aggregate_train(server_round, secure.send_and_receive(messages))

    return train
