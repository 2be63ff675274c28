"""ReplyPollingGrid: push, then pull every poll_interval until every reply or the timeout."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fedkit.flower.runtime.polling import ReplyPollingGrid


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _reply(to: str):
    return SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=to))


class _Grid:
    """Replies to message ``i`` become available at ``arrive[i]`` seconds on ``clock``."""

    runtime_name = "flower"

    def __init__(self, clock: _Clock, arrive: dict[str, float]) -> None:
        self.clock, self.arrive = clock, dict(arrive)
        self.pulls: list[set[str]] = []

    def push_messages(self, messages):
        return list(messages)

    def pull_messages(self, message_ids):
        self.pulls.append(set(message_ids))
        ready = [m for m in message_ids if self.arrive.get(m, float("inf")) <= self.clock.now]
        for m in ready:
            del self.arrive[m]
        return [_reply(m) for m in ready]


def test_replies_are_collected_as_they_arrive_every_poll_interval():
    clock = _Clock()
    inner = _Grid(clock, {"a": 0.0, "b": 0.5, "c": 1.0})
    grid = ReplyPollingGrid(inner, 0.2, clock=clock, sleep=clock.sleep)
    replies = grid.send_and_receive(["a", "b", "c"], timeout=None)
    assert [r.metadata.reply_to_message_id for r in replies] == ["a", "b", "c"]
    assert clock.sleeps == [0.2] * 5          # pulls at 0, .2, .4, .6, .8, 1.0
    assert inner.pulls[0] == {"a", "b", "c"} and inner.pulls[-1] == {"c"}


def test_the_timeout_returns_what_arrived():
    clock = _Clock()
    inner = _Grid(clock, {"a": 0.1})
    grid = ReplyPollingGrid(inner, 0.25, clock=clock, sleep=clock.sleep)
    replies = grid.send_and_receive(["a", "never"], timeout=1.0)
    assert [r.metadata.reply_to_message_id for r in replies] == ["a"]
    assert clock.now == pytest.approx(1.0)


def test_everything_else_passes_through():
    clock = _Clock()
    grid = ReplyPollingGrid(_Grid(clock, {}), clock=clock, sleep=clock.sleep)
    assert grid.runtime_name == "flower"
    assert grid.push_messages(["x"]) == ["x"]


@pytest.mark.parametrize("interval", [0, -1.0, True, "0.2", float("nan")])
def test_poll_interval_must_be_positive_seconds(interval):
    with pytest.raises(ValueError, match=r"poll_interval = .*expected seconds > 0"):
        ReplyPollingGrid(_Grid(_Clock(), {}), interval)
