"""A Flower ``Grid`` around another one: everything passes through unless overridden.

Base of the grids that change what a strategy sees without knowing the strategy
(:class:`~fedkit.flower.runtime.availability.AvailabilityGrid`: only online clients;
:class:`~fedkit.flower.secagg.grid.SecureAggregationGrid`: train rounds under secure
aggregation). A subclass overrides only the calls it changes.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

__all__ = ["GridWrapper"]


class GridWrapper(Grid):
    """``inner`` with every Grid call passed through (see the module docstring).

    Args:
        inner: The grid that reaches the nodes.
    """

    def __init__(self, inner: Grid) -> None:
        self.inner = inner
        self.runtime_name = getattr(inner, "runtime_name", "flower")

    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int,
                       group_id: str, ttl: float | None = None) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.inner.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *,
                         timeout: float | None = None) -> Iterable[Message]:
        return self.inner.send_and_receive(messages, timeout=timeout)
