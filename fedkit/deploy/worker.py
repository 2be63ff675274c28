"""A long-lived ClientApp worker: one warm process runs a SuperNode's ClientApp tasks.

In Flower 1.42 a SuperNode in ``--isolation subprocess`` starts a ``flower-superexec``,
which starts a new ``flwr-clientapp`` process for every message: Python, Flower, torch and
the app are imported again each time (seconds per message). With ``--isolation process`` the
SuperNode only serves its Runtime API and leaves its tasks to an executor outside it. This
module is such an executor, for ClientApp tasks: a process that imports the app and its
dependencies once (``--preload``, e.g. ``fedkit.flower.apps.client_app:warm_up``), then
loops:

1. ``AcquireTask`` on the SuperNode's Runtime API (ClientApp tasks only), every
   ``poll_interval`` seconds while idle -- what ``flower-superexec`` does;
2. for a task, what ``flwr-clientapp`` does with its token (Flower's
   ``pull_task_input`` / ``push_message`` / ``push_task_output``, a task heartbeat while
   it runs), but in this process, which stays alive for the next task. A ClientApp that
   raises answers with an error reply, as in ``flwr-clientapp``.

Code identity: a task runs the code of its FAB. When the FAB's copy of the ClientApp's top
package (``fedkit/...``) has the same files as the package this process imported, the
imported modules are used as they are; when it differs (another commit), the package is
dropped from ``sys.modules`` and imported again from the installed FAB, as a fresh
``flwr-clientapp`` would. Module-level caches (fedkit's datasets and model templates) live
as long as the worker, across messages and runs: that is the point of it, and the one
isolation a new process per message gives that a worker does not.

:mod:`fedkit.deploy.supervisor` starts the workers of one SuperNode and restarts one that
dies. Run by hand: ``python -m fedkit.deploy.worker --runtime-api-address 127.0.0.1:9300``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from flwr.app import Context, Message
from flwr.app.error import Error
from flwr.cli.install import install_from_fab
from flwr.clientapp.client_app import LoadClientAppError
from flwr.clientapp.utils import get_load_client_app_fn
from flwr.common.config import get_project_config
from flwr.common.constant import ErrorCode, SubStatus
from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=E0611
from flwr.supercore.constant import TaskType
from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supercore.tls import validate_and_resolve_root_certificates
from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

from fedkit.deploy.supervisor import BUSY, IDLE, PULLING, READY_LINE

__all__ = ["ClientAppWorker", "main", "preload", "same_package_code"]

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 0.1
"""Seconds between two ``AcquireTask`` calls of an idle worker (Flower's SuperExec: 1 s)."""


def _tell(status_fd: int | None, state: bytes) -> None:
    if status_fd is None:
        return
    try:
        os.write(status_fd, state)
    except OSError:  # the supervisor is gone; the parent check ends the loop
        pass


def same_package_code(project_dir: Path, package: ModuleType) -> bool:
    """True if every file of ``package`` in the FAB at ``project_dir`` equals the imported one.

    ``project_dir / <package name>`` is the FAB's copy of the package; each of its files is
    compared byte for byte with the file at the same place under the imported package's
    folder. Files only the imported package has (``__pycache__``) do not count.

    Raises:
        ValueError: If ``package`` is not a package with a folder on disk.
    """
    if not getattr(package, "__path__", None):
        raise ValueError(f"{package.__name__!r} is not a package with a folder on disk")
    loaded = Path(list(package.__path__)[0])
    shipped = project_dir / package.__name__
    if not shipped.is_dir():
        return False
    for path in shipped.rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        twin = loaded / path.relative_to(shipped)
        try:
            if twin.read_bytes() != path.read_bytes():
                return False
        except OSError:
            return False
    return True


def _drop_package(name: str) -> None:
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


class ClientAppWorker:
    """Acquires the ClientApp tasks of one SuperNode and runs them in this process.

    Args:
        runtime_api_address: ``host:port`` of the SuperNode's Runtime API.
        insecure: Talk to the Runtime API without TLS (the SuperNode's default).
        root_certificates: PEM bytes of the CA of the Runtime API's certificate (TLS).
        poll_interval: Seconds between ``AcquireTask`` calls while idle.
    """

    def __init__(self, runtime_api_address: str, *, insecure: bool = True,
                 root_certificates: bytes | None = None,
                 poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        if not poll_interval > 0:
            raise ValueError(f"poll_interval = {poll_interval!r}, expected seconds > 0")
        self.address = runtime_api_address
        self.insecure = insecure
        self.root_certificates = root_certificates
        self.poll_interval = poll_interval
        self.num_tasks = 0
        self._installed: dict[str, Path] = {}  # FAB hash -> installed project folder
        self._load_client_app = get_load_client_app_fn(default_app_ref="", app_path=None,
                                                       multi_app=True)

    def _client(self, token: str | None = None) -> RuntimeHttpClient:
        interceptors: list = [RuntimeVersionHttpInterceptor(component_name="flwr-clientapp")]
        if token is not None:
            interceptors.append(RuntimeTokenHttpInterceptor(token))
        return RuntimeHttpClient.from_server_address(
            server_address=self.address, insecure=self.insecure,
            root_certificates=self.root_certificates, interceptors=interceptors,
            retry_invoker=make_simple_http_retry_invoker())

    def serve(self, parent_pid: int | None = None, status_fd: int | None = None) -> None:
        """Acquire and run tasks until the parent process (if given) is gone.

        With ``status_fd``, the worker writes to that file descriptor its state:
        :data:`~fedkit.deploy.supervisor.PULLING` when it takes a task,
        :data:`~fedkit.deploy.supervisor.BUSY` once it has the task's message,
        :data:`~fedkit.deploy.supervisor.IDLE` when the task is over (the supervisor reads
        them to keep a worker free while one waits for a message that never comes, see
        :mod:`fedkit.deploy.supervisor`).
        """
        client = self._client()
        request = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP])
        try:
            while parent_pid is None or os.getppid() == parent_pid:
                try:
                    response = client.AcquireTask(request)
                except Exception as exc:  # noqa: BLE001 - the SuperNode may be (re)starting
                    logger.debug("AcquireTask failed (%s); retrying", exc)
                    time.sleep(1.0)
                    continue
                if response.HasField("task") and response.token:
                    _tell(status_fd, PULLING)
                    try:
                        self.run_task(response.token, on_input=lambda: _tell(status_fd, BUSY))
                    finally:
                        _tell(status_fd, IDLE)
                    continue
                time.sleep(self.poll_interval)
        finally:
            client.close()
        logger.info("parent process %s is gone; worker exits", parent_pid)

    def run_task(self, token: str, on_input=None) -> str:
        """Run the ClientApp task of ``token`` as ``flwr-clientapp`` would; return its status.

        ``on_input`` (if given) is called once the task's message and context are pulled.
        """
        self.num_tasks += 1
        started = time.perf_counter()
        client = self._client(token)
        heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
        message: Message | None = None
        reply: Message | None = None
        context: Context | None = None
        sub_status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
        try:
            heartbeat.start()
            message, context, run, fab = pull_task_input(client)
            if on_input is not None:
                on_input()
            project_dir = self._install(fab.hash_str, fab.content)
            client_app = self._load(project_dir, run.fab_id, run.fab_version, fab.hash_str)
            reply = client_app(message=message, context=context)
            sub_status, details = SubStatus.COMPLETED, ""
        except Exception as exc:  # noqa: BLE001 - a failing ClientApp is an error reply
            code = ErrorCode.CLIENT_APP_RAISED_EXCEPTION
            reason = f"{type(exc)}:<'{exc}'>"
            if isinstance(exc, LoadClientAppError):
                code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION
                reason = "An exception was raised when attempting to load `ClientApp`"
            logger.error("ClientApp raised an exception", exc_info=exc)
            details = reason
            if message is not None:
                reply = Message(Error(code=code, reason=reason), reply_to=message)
        try:
            if reply is not None and context is not None:
                try:
                    push_message(client, reply, context)
                except Exception as exc:  # noqa: BLE001 - reported as the task's status
                    logger.error("failed to push the reply message", exc_info=exc)
                    sub_status, details = SubStatus.FAILED, f"pushing the reply failed: {exc}"
            push_task_output(client=client, context=context, sub_status=sub_status,
                             details=details)
        finally:
            if heartbeat.is_running:
                heartbeat.stop()
            client.close()
        logger.info("task %s: %s in %.2f s", self.num_tasks, sub_status,
                    time.perf_counter() - started)
        return sub_status

    def _install(self, fab_hash: str, content: bytes) -> Path:
        if fab_hash not in self._installed:
            self._installed[fab_hash] = install_from_fab(content, skip_prompt=True)
        return self._installed[fab_hash]

    def _load(self, project_dir: Path, fab_id: str, fab_version: str, fab_hash: str):
        ref = get_project_config(project_dir)["tool"]["flwr"]["app"]["components"]["clientapp"]
        top = ref.split(":", 1)[0].split(".", 1)[0]
        package = sys.modules.get(top)
        if package is not None and getattr(package, "__path__", None) and \
                not same_package_code(project_dir, package):
            logger.info("the FAB's %r differs from the imported one; importing the FAB's "
                        "(%s)", top, project_dir)
            _drop_package(top)
            importlib.invalidate_caches()
        return self._load_client_app(fab_id, fab_version, fab_hash)


def preload(spec: str) -> None:
    """Import ``module`` of ``spec`` = ``module`` or ``module:function`` and call the function.

    Raises:
        ValueError: If the function does not exist in the module.
    """
    module_name, _, function = spec.partition(":")
    module = importlib.import_module(module_name)
    if function:
        fn = getattr(module, function, None)
        if not callable(fn):
            raise ValueError(f"--preload {spec!r}: {module_name} has no function {function!r}")
        fn()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fedkit.deploy.worker",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-api-address", required=True,
                        help="HOST:PORT of the SuperNode's Runtime API")
    parser.add_argument("--root-certificates", type=Path, default=None,
                        help="CA certificate of a TLS Runtime API (default: plain HTTP)")
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit when this process is no longer the parent")
    parser.add_argument("--preload", action="append", default=[], metavar="MODULE[:FUNCTION]",
                        help="import (and call) before taking tasks; repeatable")
    parser.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL,
                        help="seconds between AcquireTask calls while idle")
    parser.add_argument("--status-fd", type=int, default=None,
                        help="file descriptor to write the worker's state to: 'p' (took a task, "
                             "pulling its message), 'b' (running it), 'i' (task over)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a worker (see the module docstring); returns when the parent is gone."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s fedkit-worker[%(process)d] %(levelname)s: "
                               "%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Runtime API call
    started = time.perf_counter()
    for spec in args.preload:
        preload(spec)
    insecure = args.root_certificates is None
    worker = ClientAppWorker(
        args.runtime_api_address, insecure=insecure,
        root_certificates=validate_and_resolve_root_certificates(
            str(args.root_certificates) if args.root_certificates else None, insecure),
        poll_interval=args.poll_interval)
    logger.info("%s (pid %s) after %.2f s of preloading (%s)", READY_LINE, os.getpid(),
                time.perf_counter() - started, ", ".join(args.preload) or "nothing")
    worker.serve(parent_pid=args.parent_pid, status_fd=args.status_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
