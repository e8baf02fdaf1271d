"""Adding "what was being done" to an error on its way out of the public API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import errors

__all__ = ["doing", "with_context"]


def with_context(exc: Exception, context: str) -> errors.MCPManagerError:
    """The same kind of error, its message prefixed with what was being done."""
    if isinstance(exc, errors.MCPManagerError):
        try:
            wrapped = type(exc)(f"{context}: {exc}")
        except TypeError:  # a subclass with its own constructor: keep it as it is
            return exc
        return wrapped
    return errors.MCPManagerError(f"{context}: unexpected backend error: {exc!r}")


@contextmanager
def doing(context: str) -> Iterator[None]:
    """Re-raise any backend error with ``context`` (naming the bot and the step)."""
    try:
        yield
    except Exception as exc:
        raise with_context(exc, context) from exc
