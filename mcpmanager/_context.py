"""Adding "what was being done" to an error on its way out of the public API."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, TypeVar

from . import errors
from ._log import bot_context
from .naming import validate_bot_id

__all__ = ["bot_operation", "doing", "with_context"]

S = TypeVar("S")
T = TypeVar("T")
P = ParamSpec("P")


def bot_operation(
    method: Callable[Concatenate[S, str, P], T],
) -> Callable[Concatenate[S, str, P], T]:
    """Validate the bot ID before anything else, and tag the call's log records with it."""

    @functools.wraps(method)
    def wrapper(self: S, bot_id: str, /, *args: P.args, **kwargs: P.kwargs) -> T:
        validate_bot_id(bot_id)
        with bot_context(bot_id):
            return method(self, bot_id, *args, **kwargs)

    return wrapper


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
