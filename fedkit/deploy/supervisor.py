"""One SuperNode in process isolation and its long-lived ClientApp workers, supervised.

``python -m fedkit.deploy.supervisor --workers 1 --runtime-api-address HOST:PORT --
flower-supernode ... --isolation process`` is what ``fedkit deploy supernode --isolation
process`` (and :class:`~fedkit.deploy.LocalFederation`) start instead of a bare
``flower-supernode``. The process tree, all of it below the PID that ``fedkit deploy``
records, so that :meth:`~fedkit.deploy.processes.FlowerProcess.stop` (SIGTERM, then SIGKILL
of whatever is left) and ``kill`` (a crash) reach every process::

    python -m fedkit.deploy.supervisor         (this process)
    ├── flower-supernode --isolation process   (in a process group of its own)
    └── python -m fedkit.deploy.worker  x N    (restarted when one exits)

Rules:

* The supervisor exits when the SuperNode exits, with the SuperNode's exit status (e.g. 305
  when the SuperLink refuses to activate it), after stopping the workers.
* SIGTERM, SIGINT or SIGHUP: the supervisor sends SIGTERM to the SuperNode once (Flower's
  SuperNode deactivates cleanly on its first signal and dies at once on a second, which is
  why it has a process group of its own: a signal to the supervisor's group does not reach
  it), stops the workers, waits for the SuperNode and exits 0.
* A worker that exits is restarted at once; one that keeps dying within
  ``QUICK_DEATH_SECONDS`` of its start (e.g. it cannot import its preloads) is restarted
  after a delay that doubles up to ``MAX_RESTART_DELAY`` seconds.
* On Linux the children get a parent-death signal: if the supervisor itself is killed the
  SuperNode gets SIGTERM and the workers SIGKILL (a worker also exits when its parent
  changes).

* **A worker free for the next task.** Each worker tells the supervisor its state through a
  pipe (``--status-fd``): :data:`PULLING` when it takes a task and waits for the task's
  message, :data:`BUSY` while it runs the ClientApp, :data:`IDLE` when the task is over.
  When no worker is idle and one has waited for its message ``STALLED_PULL_SECONDS``, the
  supervisor starts an extra worker (up to ``--max-workers``); an extra worker that has been
  idle ``SPARE_IDLE_SECONDS`` while ``--workers`` others are idle is stopped. This keeps one
  stuck task from stopping the node: a SuperNode that reconnects to a restarted SuperLink
  creates a task for a message of the run the SuperLink ended, then ignores the message
  without ending the task (Flower 1.42, ``start_client_internal``), and the worker that takes
  that task waits for the message's content up to Flower's pull limit (2 h). Under
  subprocess isolation Flower starts a new ``flwr-clientapp`` per task, so such a task never
  blocks the next one; extra workers give process isolation the same property. A long
  ClientApp (training) never starts one: its message has arrived.

The SuperNode handles one message at a time, so one worker is enough in the normal case;
a second one only stands by while the first restarts.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

__all__ = [
    "BUSY",
    "DEFAULT_PRELOAD",
    "IDLE",
    "PULLING",
    "MAX_RESTART_DELAY",
    "QUICK_DEATH_SECONDS",
    "SPARE_IDLE_SECONDS",
    "STALLED_PULL_SECONDS",
    "READY_LINE",
    "main",
    "WORKER_MODULE",
    "supervisor_command",
]

logger = logging.getLogger(__name__)

DEFAULT_PRELOAD = ("fedkit.flower.apps.client_app:warm_up",)
"""What a fedkit worker imports (and runs) before it takes tasks: fedkit's ClientApp, torch,
and torch's one-time lazy imports (see :func:`fedkit.flower.apps.client_app.warm_up`)."""

READY_LINE = "fedkit ClientApp worker ready"
"""What a worker logs once its preloads are done (followed by its PID)."""

PULLING = b"p"
"""What a worker writes to its status pipe when it takes a task (and waits for its message)."""
BUSY = b"b"
"""What a worker writes to its status pipe once it has the task's message and runs it."""
IDLE = b"i"
"""What a worker writes to its status pipe when its task is over."""

QUICK_DEATH_SECONDS = 30.0
SPARE_IDLE_SECONDS = 30.0
STALLED_PULL_SECONDS = 10.0
EXTRA_WORKERS = 3
"""Default of ``--max-workers`` above ``--workers``."""
MAX_RESTART_DELAY = 60.0
WORKER_MODULE = "fedkit.deploy.worker"
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def supervisor_command(supernode_command: Sequence[str], *, runtime_api_address: str,
                       num_workers: int = 1, preload: Sequence[str] = DEFAULT_PRELOAD,
                       poll_interval: float | None = None) -> list[str]:
    """The command line that runs ``supernode_command`` under this supervisor.

    Raises:
        ValueError: If ``num_workers < 1`` or ``supernode_command`` does not ask for
            ``--isolation process`` (in subprocess isolation the SuperNode starts its own
            executor, and the workers would race it for the tasks).
    """
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers = {num_workers!r}, expected an integer >= 1")
    command = list(supernode_command)
    if "--isolation" not in command or \
            command[command.index("--isolation") + 1:][:1] != ["process"]:
        raise ValueError("the supervised SuperNode must run with --isolation process, got "
                         f"{' '.join(command)!r}")
    cmd = [sys.executable, "-m", __name__, "--workers", str(num_workers),
           "--runtime-api-address", runtime_api_address]
    for spec in preload:
        cmd += ["--preload", spec]
    if poll_interval is not None:
        cmd += ["--poll-interval", repr(float(poll_interval))]
    return cmd + ["--", *command]


def _parent_death_signal(sig: signal.Signals):
    """A ``preexec_fn`` that asks Linux to send ``sig`` to the child when we die."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)

    return preexec


class _Slot:
    """One worker place: its process (None while waiting to restart), its status pipe, its
    history. An extra slot (started because every worker was busy) is removed, not
    restarted, when its worker exits or retires."""

    def __init__(self, extra: bool = False) -> None:
        self.extra = extra
        self.popen: subprocess.Popen | None = None
        self.status: int | None = None  # read end of the worker's status pipe
        self.state = IDLE
        self.since = 0.0  # when `state` last changed
        self.started = 0.0
        self.quick_deaths = 0
        self.restart_at = 0.0

    def read_status(self, now: float) -> None:
        """Take the worker's latest BUSY/IDLE from its pipe (non-blocking)."""
        if self.status is None:
            return
        try:
            data = os.read(self.status, 4096)
        except BlockingIOError:
            return
        if data and data[-1:] != self.state:
            self.state, self.since = data[-1:], now

    def close(self) -> None:
        if self.status is not None:
            os.close(self.status)
        self.status, self.state = None, IDLE


class Supervisor:
    """Runs the SuperNode and the workers (see the module docstring)."""

    def __init__(self, supernode_command: Sequence[str], worker_command: Sequence[str],
                 num_workers: int, max_workers: int | None = None) -> None:
        self.supernode_command = list(supernode_command)
        self.worker_command = list(worker_command)
        self.num_workers = num_workers
        self.max_workers = num_workers + EXTRA_WORKERS if max_workers is None else max_workers
        if self.max_workers < num_workers:
            raise ValueError(f"max_workers = {max_workers!r}, expected at least the "
                             f"{num_workers} workers kept")
        self.slots = [_Slot() for _ in range(num_workers)]
        self.supernode: subprocess.Popen | None = None
        self.stop_signal: str | None = None

    def _on_signal(self, signum, frame) -> None:
        if self.stop_signal is None:
            self.stop_signal = signal.Signals(signum).name

    def _start_worker(self, slot: _Slot) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        try:
            slot.popen = subprocess.Popen(
                [*self.worker_command, "--status-fd", str(write_end)],
                stdin=subprocess.DEVNULL, pass_fds=(write_end,),
                preexec_fn=_parent_death_signal(signal.SIGKILL))
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        slot.status, slot.state = read_end, IDLE
        slot.started = slot.since = time.monotonic()
        logger.info("started %sClientApp worker (pid %s)", "an extra " if slot.extra else "",
                    slot.popen.pid)

    def _check_worker(self, slot: _Slot, now: float) -> None:
        if slot.popen is None:
            if now >= slot.restart_at:
                self._start_worker(slot)
            return
        slot.read_status(now)
        code = slot.popen.poll()
        if code is None:
            return
        slot.close()
        lived = now - slot.started
        if slot.extra:
            logger.warning("extra ClientApp worker (pid %s) exited with status %s after "
                           "%.1f s", slot.popen.pid, code, lived)
            self.slots.remove(slot)
            return
        slot.quick_deaths = slot.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
        delay = 0.0 if slot.quick_deaths <= 1 else min(MAX_RESTART_DELAY,
                                                       2.0 ** (slot.quick_deaths - 1))
        logger.warning("ClientApp worker (pid %s) exited with status %s after %.1f s; "
                       "restarting it%s", slot.popen.pid, code, lived,
                       f" in {delay:.0f} s" if delay else "")
        slot.popen, slot.restart_at = None, now + delay

    def _balance(self, now: float) -> None:
        """Start an extra worker when none is idle and one waits too long for its task's
        message; retire an extra one that is idle while enough others are."""
        running = [s for s in self.slots if s.popen is not None]
        idle = [s for s in running if s.state == IDLE]
        stalled = [s for s in running
                   if s.state == PULLING and now - s.since >= STALLED_PULL_SECONDS]
        if stalled and not idle and len(running) == len(self.slots) and \
                len(self.slots) < self.max_workers:
            logger.warning("ClientApp worker (pid %s) has waited %.0f s for its task's "
                           "message and no worker is idle; starting an extra one so that the "
                           "next task does not wait", stalled[0].popen.pid,
                           now - stalled[0].since)
            slot = _Slot(extra=True)
            self.slots.append(slot)
            self._start_worker(slot)
            return
        for slot in idle:
            if slot.extra and len(idle) > self.num_workers and \
                    now - slot.since >= SPARE_IDLE_SECONDS:
                logger.info("retiring the extra ClientApp worker (pid %s), idle %.0f s",
                            slot.popen.pid, now - slot.since)
                slot.popen.terminate()
                try:
                    slot.popen.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    slot.popen.kill()
                    slot.popen.wait()
                slot.close()
                self.slots.remove(slot)
                return

    def run(self) -> int:
        """Supervise until the SuperNode exits or a stop signal arrives; return the status."""
        for sig in _STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
        self.supernode = subprocess.Popen(self.supernode_command, stdin=subprocess.DEVNULL,
                                          process_group=0,
                                          preexec_fn=_parent_death_signal(signal.SIGTERM))
        logger.info("started %s (pid %s)", self.supernode_command[0], self.supernode.pid)
        code = None
        while self.stop_signal is None:
            code = self.supernode.poll()
            if code is not None:
                logger.info("%s exited with status %s", self.supernode_command[0], code)
                break
            now = time.monotonic()
            for slot in list(self.slots):
                self._check_worker(slot, now)
            self._balance(now)
            time.sleep(0.2)
        self._shutdown()
        if self.stop_signal is not None:
            logger.info("stopped on %s", self.stop_signal)
            return 0
        return code if code is not None else 1

    def _shutdown(self, grace: float = 20.0) -> None:
        workers = [s.popen for s in self.slots if s.popen is not None]
        for popen in workers:
            if popen.poll() is None:
                popen.terminate()
        if self.supernode is not None and self.supernode.poll() is None:
            self.supernode.terminate()
            try:
                self.supernode.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                logger.warning("the SuperNode (pid %s) did not stop within %.0f s; killing it",
                               self.supernode.pid, grace)
                self.supernode.kill()
                self.supernode.wait()
        deadline = time.monotonic() + 5.0
        for popen in workers:
            try:
                popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="ClientApp workers to keep")
    parser.add_argument("--max-workers", type=int, default=None,
                        help="most workers while some are busy (default: --workers + "
                             f"{EXTRA_WORKERS})")
    parser.add_argument("--runtime-api-address", required=True,
                        help="HOST:PORT of the SuperNode's Runtime API, as the workers dial it")
    parser.add_argument("--preload", action="append", default=None, metavar="MODULE[:FN]",
                        help=f"passed to each worker (default: {', '.join(DEFAULT_PRELOAD)})")
    parser.add_argument("--poll-interval", type=float, default=None,
                        help="each worker's AcquireTask interval while idle")
    parser.add_argument("supernode", nargs=argparse.REMAINDER,
                        help="-- flower-supernode ... --isolation process")
    args = parser.parse_args(argv)
    if args.supernode[:1] == ["--"]:
        args.supernode = args.supernode[1:]
    if not args.supernode:
        parser.error("give the SuperNode's command after --")
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: expected at least 1")
    if args.max_workers is not None and args.max_workers < args.workers:
        parser.error(f"--max-workers {args.max_workers}: expected at least --workers "
                     f"({args.workers})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the supervisor (see the module docstring); return its exit status."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s fedkit-supervisor[%(process)d] %(levelname)s: "
                               "%(message)s")
    worker = [sys.executable, "-m", WORKER_MODULE, "--runtime-api-address",
              args.runtime_api_address, "--parent-pid", str(os.getpid())]
    for spec in DEFAULT_PRELOAD if args.preload is None else args.preload:
        worker += ["--preload", spec]
    if args.poll_interval is not None:
        worker += ["--poll-interval", repr(args.poll_interval)]
    return Supervisor(args.supernode, worker, args.workers, args.max_workers).run()


if __name__ == "__main__":
    sys.exit(main())
