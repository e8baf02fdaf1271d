"""One mapping of database failures to ``mcpmanager.errors`` for every store backend.

A backend only sorts its driver's exceptions into a ``Failure`` kind (see
``Dialect.classify``); the error class and message of each kind live here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mcpmanager.errors import (
    AlreadyExists,
    FailedPrecondition,
    MCPManagerError,
    NotFound,
    Unavailable,
)

from .._log import get_logger

logger = get_logger("mcpmanager.store")


class Failure(enum.Enum):
    """What went wrong in the database, whatever the driver calls it."""

    DUPLICATE = "duplicate"  # a unique constraint refused the row
    UNREGISTERED = "unregistered"  # a foreign key: the container is not registered
    NOT_MIGRATED = "not migrated"  # tables or columns missing
    CLOSED = "closed"  # the store or its pool was closed
    UNAVAILABLE = "unavailable"  # no connection, lock wait timed out, server gone
    OTHER = "other"


# (kind, one-line detail), or None for an exception that is not the database's.
Classifier = Callable[[Exception], "tuple[Failure, str] | None"]


def error_for(operation: str, failure: Failure, detail: str) -> MCPManagerError:
    """The mcpmanager error for ``failure`` during ``operation``."""
    if failure is Failure.DUPLICATE:
        return AlreadyExists(f"{operation}: already exists ({detail})")
    if failure is Failure.UNREGISTERED:
        return NotFound(f"{operation}: container is not registered (call upsert_container)")
    if failure is Failure.NOT_MIGRATED:
        return FailedPrecondition(f"{operation}: store tables missing, run migrate() ({detail})")
    if failure is Failure.CLOSED:
        return FailedPrecondition(f"{operation}: the store is closed ({detail})")
    if failure is Failure.UNAVAILABLE:
        return Unavailable(f"{operation}: database unavailable ({detail})")
    logger.error("%s failed: %s", operation, detail)
    return MCPManagerError(f"{operation}: database error ({detail})")


@contextmanager
def translate(operation: str, classify: Classifier) -> Iterator[None]:
    """Run the body, re-raising database failures as mcpmanager errors naming ``operation``."""
    try:
        yield
    except MCPManagerError:
        raise
    except Exception as exc:
        found = classify(exc)
        if found is None:
            raise
        raise error_for(operation, *found) from exc


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
