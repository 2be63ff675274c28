"""The server round loop.

It calls a Flower strategy's hooks in the order of ``flwr.serverapp.strategy.Strategy.start``
(configure_train -> send_and_receive -> aggregate_train -> configure_evaluate -> ... ->
central evaluation), so any Flower Message-API strategy runs in it, and adds what fedkit's
runs need on top: the round's training config from a function of the round (learning-rate
decay), central evaluation only every ``eval_every`` rounds, a per-round callback for
results logging and progress, and a replaceable training step (``train_fn``: secure
aggregation runs its four stages there instead of one ``send_and_receive``).

Nothing in it is fedkit-specific: Flower's own strategies run in it as under their
``Strategy.start``, and an exception of the strategy -- e.g. a fedkit strategy's
:class:`~fedkit.algorithms.contract.ContractError` when every reply of a round broke the
message contract -- ends the loop, and with it the ServerApp (docs/flower.md, "Strategies").
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

__all__ = ["RoundOutcome", "TrainFn", "run_rounds"]

TrainFn = Callable[[int, list[Message]], tuple[ArrayRecord | None, MetricRecord | None]]


@dataclasses.dataclass(frozen=True)
class RoundOutcome:
    """What one round produced.

    Attributes:
        server_round: The round (1-based).
        train_metrics: The strategy's aggregated train metrics (may be empty).
        evaluate_metrics: Aggregated federated-evaluation metrics (may be empty).
        central_metrics: Central evaluation of the new model, or None if not due this round.
        seconds: Wall time of the round, central evaluation included.
        model_updated: False when the strategy kept the previous model.
    """

    server_round: int
    train_metrics: dict
    evaluate_metrics: dict
    central_metrics: dict | None
    seconds: float
    model_updated: bool


def run_rounds(
    strategy: Strategy,
    grid: Grid,
    arrays: ArrayRecord,
    *,
    num_rounds: int,
    timeout: float | None,
    train_config_fn: Callable[[int], ConfigRecord],
    evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
    eval_every: int = 1,
    on_round: Callable[[RoundOutcome, ArrayRecord], None] | None = None,
    before_round: Callable[[int], None] | None = None,
    first_round: int = 1,
    train_fn: TrainFn | None = None,
) -> ArrayRecord:
    """Run rounds ``first_round .. num_rounds`` and return the final global arrays.

    Central evaluation runs after round r when ``eval_every > 0 and r % eval_every == 0`` and
    always after the last round. ``before_round(r)`` runs first in round r (an availability
    grid sets its round there); ``on_round(outcome, arrays)`` runs last, with the new arrays.
    ``train_fn(round, messages)`` replaces sending the train messages and
    ``strategy.aggregate_train``; it returns the new arrays (None: keep) and train metrics.
    """
    for server_round in range(first_round, num_rounds + 1):
        start = time.perf_counter()
        if before_round is not None:
            before_round(server_round)
        messages = strategy.configure_train(server_round, arrays, train_config_fn(server_round),
                                            grid)
        if train_fn is not None:
            new_arrays, train_metrics = train_fn(server_round, list(messages))
        else:
            new_arrays, train_metrics = _plain_train(strategy, grid, server_round, messages,
                                                     timeout)
        if new_arrays is not None:
            arrays = new_arrays
        evaluate_metrics: MetricRecord | None = None
        eval_messages = list(strategy.configure_evaluate(server_round, arrays, ConfigRecord(),
                                                         grid))
        if eval_messages:
            eval_replies = grid.send_and_receive(eval_messages, timeout=timeout)
            evaluate_metrics = strategy.aggregate_evaluate(server_round, eval_replies)
        due = (eval_every > 0 and server_round % eval_every == 0) or server_round == num_rounds
        central = evaluate_fn(server_round, arrays) if (evaluate_fn and due) else None
        if on_round is not None:
            on_round(RoundOutcome(
                server_round=server_round,
                train_metrics=dict(train_metrics or {}),
                evaluate_metrics=dict(evaluate_metrics or {}),
                central_metrics=dict(central) if central is not None else None,
                seconds=time.perf_counter() - start,
                model_updated=new_arrays is not None,
            ), arrays)
    return arrays


def _plain_train(strategy: Strategy, grid: Grid, server_round: int,
                 messages: Iterable[Message], timeout: float | None):
    replies = grid.send_and_receive(messages, timeout=timeout)
    return strategy.aggregate_train(server_round, replies)
