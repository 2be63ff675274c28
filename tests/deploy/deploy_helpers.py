"""Helpers for deployment tests: runs in a background thread, checkpoint watching, faults."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from flwr.app import Message

from fedkit.flower.apps.checkpoint import load_checkpoint
from fedkit.flower.apps.client_app import app as client_app
from fedkit.flower.secagg.mod import is_secure_stage


class Background:
    """``fn(*args, **kwargs)`` in a thread; :meth:`result` returns or re-raises."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self._value = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._target, args=(fn, args, kwargs),
                                        daemon=True)
        self._thread.start()

    def _target(self, fn, args, kwargs) -> None:
        try:
            self._value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float = 900.0):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the call did not end within {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value


def wait_until(predicate: Callable[[], object], what: str, *, run: Background | None = None,
               timeout: float = 600.0, poll: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail if ``run`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if run is not None and run.done():
            run.result()
            raise AssertionError(f"the run ended before {what}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def checkpoint_round(folder: Path) -> int:
    """The round of the checkpoint in ``folder`` (0 if none or being replaced)."""
    try:
        checkpoint = load_checkpoint(folder)
    except (OSError, ValueError, KeyError):
        return 0
    return int(checkpoint["server_round"]) if checkpoint else 0


def final_arrays(folder: Path) -> dict[str, np.ndarray]:
    """The global model saved in ``folder``'s checkpoint."""
    return {k: a.numpy() for k, a in load_checkpoint(folder)["arrays"].items()}


def assert_same_model(got: dict[str, np.ndarray], want: dict[str, np.ndarray], *,
                      atol: float = 1e-7) -> None:
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=atol, err_msg=name)


def fedlaavg_rule(folder: Path) -> dict:
    """FedLaAvg's server state (g_bar, last_round, versions) from ``folder``'s checkpoint."""
    return load_checkpoint(folder)["strategy"]["rule"]


def log_count(path: Path, text: str, start: int = 0) -> int:
    """Occurrences of ``text`` in the log file from byte ``start`` on."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            return f.read().count(text.encode())
    except OSError:
        return 0


def answered_rounds(path: Path, run_id: int, start: int = 0) -> set[int]:
    """Rounds of run ``run_id`` whose train message the SuperNode logging to ``path`` answered
    (from byte ``start`` of its log on)."""
    header = re.compile(r"\[RUN (\d+), ROUND (\d+)\]")
    rounds, current = set(), None
    with path.open("rb") as f:
        f.seek(start)
        for line in f.read().decode(errors="replace").splitlines():
            match = header.search(line)
            if match:
                current = (int(match.group(1)), int(match.group(2)))
            elif "Sending: train message" in line and current and current[0] == run_id:
                rounds.add(current[1])
    return rounds


def flaky_client(client_id: int, *, absent_rounds: set[int], reset_before: int | None,
                 app=client_app):
    """fedkit's ClientApp, but ``client_id`` fails its train messages in ``absent_rounds``
    (as a killed SuperNode does) and loses its context state before its first train message
    of round ``reset_before`` or later (as a restarted SuperNode does)."""
    reset = [reset_before is None]

    def client(msg: Message, context) -> Message:
        if context.node_config["partition-id"] == client_id and \
                msg.metadata.message_type == "train":
            server_round = int(msg.content["config"]["server-round"])
            if server_round in absent_rounds:
                raise ConnectionError(f"client {client_id} is down in round {server_round}")
            if not reset[0] and server_round >= reset_before:
                for key in list(context.state):
                    del context.state[key]
                reset[0] = True
        return app(msg, context)

    return client


def dropping_at(client_id: int, stage, app=client_app):
    """fedkit's ClientApp, but ``client_id`` fails every secure-aggregation ``stage`` message
    (as a SuperNode killed just before that stage does)."""

    def client(msg: Message, context) -> Message:
        if context.node_config["partition-id"] == client_id and is_secure_stage(msg, stage):
            raise ConnectionError(f"client {client_id} is down at stage {stage.value}")
        return app(msg, context)

    return client
