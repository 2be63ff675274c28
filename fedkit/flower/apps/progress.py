"""A one-line progress display for the server loop: round, loss, accuracy, ETA."""

from __future__ import annotations

import re
import sys
import time
from typing import TextIO

__all__ = ["ProgressLine", "is_progress_line"]

_LINE = re.compile(r"\[[#-]+\] round \d+/\d+ ")


def is_progress_line(text: str) -> bool:
    """True if ``text`` is (or ends with, after a carriage return) a :class:`ProgressLine`
    line: how ``fedkit simulate --runtime flower`` picks the progress out of a run's log."""
    return _LINE.match(text.rpartition("\r")[2]) is not None


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressLine:
    """Redraws one status line on a terminal; prints a line every ``every_s`` seconds otherwise.

    Args:
        total: Number of rounds.
        stream: Where to write (stderr by default).
        width: Width of the bar in characters.
        every_s: Minimum seconds between lines when the stream is not a terminal.
    """

    def __init__(self, total: int, *, stream: TextIO | None = None, width: int = 24,
                 every_s: float = 5.0) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.every_s = every_s
        self._start = time.perf_counter()
        self._last_print = -float("inf")
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, server_round: int, *, loss: float | None, accuracy: float | None) -> None:
        """Show the state after ``server_round`` rounds."""
        elapsed = time.perf_counter() - self._start
        eta = elapsed / server_round * (self.total - server_round) if server_round else 0.0
        filled = int(self.width * server_round / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        loss_s = f"{loss:.4f}" if loss is not None else "  -   "
        acc_s = f"{100 * accuracy:5.1f}%" if accuracy is not None else "   -  "
        line = (f"[{bar}] round {server_round}/{self.total}  loss {loss_s}  acc {acc_s}  "
                f"elapsed {_clock(elapsed)}  ETA {_clock(eta)}")
        done = server_round >= self.total
        if self._tty:
            self.stream.write("\r" + line + ("\n" if done else ""))
        elif done or time.perf_counter() - self._last_print >= self.every_s:
            self.stream.write(line + "\n")
            self._last_print = time.perf_counter()
        self.stream.flush()
