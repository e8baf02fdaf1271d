"""The fake's call log and fault injection: what a test sees and makes go wrong.

:class:`CallLog` records every protocol call of a
:class:`~mcpmanager.fake.FakeContainerService` and raises the faults a test
queued for a method (:meth:`CallLog.fail`), in order, when that method is
next called. It is not locked; the fake holds its own lock around it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs

from . import errors

__all__ = ["Call", "CallLog"]


class Call(NamedTuple):
    """One recorded protocol call: method name, positional and keyword arguments."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@attrs.define
class _Fault:
    error: BaseException | type[BaseException]
    remaining: int


class CallLog:
    """Every call made, in order, and the faults still due per method."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}

    def fail(self, method: str, error: BaseException | type[BaseException], times: int) -> None:
        """Queue ``error`` for the next ``times`` calls of ``method`` (after earlier faults)."""
        if times < 1:
            raise errors.InvalidArgument("times must be at least 1")
        self._faults.setdefault(method, []).append(_Fault(error, times))

    def enter(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Record a call of ``method``; raise its next fault, if one is due."""
        self.calls.append(Call(method, args, kwargs))
        queue = self._faults.get(method)
        if not queue:
            return
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining == 0:
            queue.pop(0)
        raise fault.error

    def count(self, method: str) -> int:
        """How many times ``method`` has been called."""
        return sum(1 for c in self.calls if c.method == method)
