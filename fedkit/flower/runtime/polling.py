"""Collect replies on Flower's Deployment Engine every 0.2 s instead of every 3 s.

Flower 1.42's deployment grid (``HttpGrid``) pushes a round's messages and then asks the
SuperLink for replies every 3 seconds (``send_and_receive``), so every send-and-receive step
ends up to 3 s after its last reply arrived. Its in-memory grid (Simulation Engine) asks every
0.1 s. :class:`ReplyPollingGrid` does what ``send_and_receive`` does -- push with
``push_messages``, then ``pull_messages`` until every message has its reply or the timeout
passes -- with a shorter interval. Both calls are the Grid's public API; what reaches the
strategy is unchanged: the replies, in the order they arrived.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from flwr.app import Message
from flwr.serverapp import Grid

from fedkit.flower.runtime.wrapper import GridWrapper

__all__ = ["REPLY_POLL_INTERVAL", "ReplyPollingGrid"]

REPLY_POLL_INTERVAL = 0.2
"""Seconds between two ``pull_messages`` calls while replies are missing."""


class ReplyPollingGrid(GridWrapper):
    """``inner`` whose ``send_and_receive`` polls for replies every ``poll_interval`` seconds.

    Args:
        inner: The grid that reaches the nodes (Flower's deployment grid).
        poll_interval: Seconds between two ``pull_messages`` calls (> 0).
        clock: Seconds of a monotonic clock (a seam for tests).
        sleep: Waits the given seconds (a seam for tests).

    Raises:
        ValueError: If ``poll_interval`` is not a positive number.

    Example:
        >>> grid = ReplyPollingGrid(grid)  # doctest: +SKIP
        >>> replies = grid.send_and_receive(messages, timeout=60)  # doctest: +SKIP
    """

    def __init__(self, inner: Grid, poll_interval: float = REPLY_POLL_INTERVAL, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) \
                or not poll_interval > 0:
            raise ValueError(f"poll_interval = {poll_interval!r}, expected seconds > 0")
        super().__init__(inner)
        self.poll_interval = float(poll_interval)
        self._clock, self._sleep = clock, sleep

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        """Push ``messages``; pull replies until all arrived or ``timeout`` seconds passed.

        ``timeout=None`` waits for every reply, as Flower's grid does.
        """
        pending = set(self.inner.push_messages(messages))
        end = None if timeout is None else self._clock() + timeout
        replies: list[Message] = []
        while True:
            pulled = list(self.inner.pull_messages(pending))
            replies.extend(pulled)
            pending.difference_update(m.metadata.reply_to_message_id for m in pulled)
            if not pending or (end is not None and self._clock() >= end):
                return replies
            self._sleep(self.poll_interval)
