"""Adding "what was being done" to an error on its way out of the public API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import errors

__all__ = ["doing", "with_context"]


def with_context(exc: Exception, context: str) -> errors.MCPManagerError:
    """``exc`` itself with ``context`` in front of its message, or a wrapped raw error.

    An mcpmanager error keeps its class and attributes (a CNI error keeps its
    code and plugin); anything else becomes an ``MCPManagerError`` naming it.
    """
    if isinstance(exc, errors.MCPManagerError):
        return exc.with_context(context)
    return errors.MCPManagerError(f"{context}: unexpected backend error: {exc!r}")


@contextmanager
def doing(context: str) -> Iterator[None]:
    """Re-raise any backend error with ``context`` (naming the bot and the step)."""
    try:
        yield
    except errors.MCPManagerError as exc:
        exc.with_context(context)  # the same exception, cause and traceback kept
        raise
    except Exception as exc:
        raise with_context(exc, context) from exc
