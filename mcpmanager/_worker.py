"""A function run in its own thread, keeping its result or its exception for the caller."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Worker"]

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
