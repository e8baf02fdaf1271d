"""A function run in its own thread, keeping its result or its exception for the caller."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from . import errors
from ._log import get_logger

__all__ = ["Worker", "call_with_deadline", "run_to_completion"]

_log = get_logger("mcpmanager.versions")

T = TypeVar("T")


class Worker(Generic[T]):
    """Runs ``fn`` in a new thread; :meth:`outcome` returns its result or raises its error.

    Used where the caller must be able to stop waiting (a deadline) or must not
    be able to stop the work (a snapshot move that a KeyboardInterrupt must
    not cut short).
    """

    def __init__(self, fn: Callable[[], T], name: str, *, daemon: bool = False) -> None:
        self._fn = fn
        self._result: list[T] = []
        self._failure: list[BaseException] = []
        # The thread runs in a copy of the caller's context (which bot's operation it is).
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._run,), name=name, daemon=daemon
        )

    def _run(self) -> None:
        try:
            self._result.append(self._fn())
        except BaseException as exc:
            self._failure.append(exc)

    def outcome(self) -> T:
        """The function's result, or its exception raised again (call once it has ended)."""
        if self._failure:
            raise self._failure[0]
        return self._result[0]


def call_with_deadline(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``fn`` in a helper thread and give up waiting after ``timeout`` seconds."""
    worker = Worker(fn, f"mcpmanager-{what}", daemon=True)
    worker.thread.start()
    worker.thread.join(timeout)
    if worker.thread.is_alive():
        raise errors.DeadlineExceeded(f"{what} did not finish within {timeout:g}s")
    return worker.outcome()


def run_to_completion(fn: Callable[[], T], name: str) -> T:
    """Run ``fn`` in a worker thread and wait for it even if this thread is interrupted.

    A snapshot move cut short would leave a bot without a container, so a
    KeyboardInterrupt waits for the move to finish and is raised after it.
    """
    worker = Worker(fn, name)
    interrupted: KeyboardInterrupt | None = None
    while worker.thread.ident is None or worker.thread.is_alive():
        try:
            if worker.thread.ident is None:
                worker.thread.start()
            worker.thread.join()
        except KeyboardInterrupt as exc:
            interrupted = exc
            _log.warning("%s: interrupted; finishing the snapshot move first", name)
    result = worker.outcome()
    if interrupted is not None:
        raise interrupted
    return result
