"""Translate ``sqlite3`` failures into ``mcpmanager.errors``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
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


@contextmanager
def translate(operation: str) -> Iterator[None]:
    """Run the body, re-raising sqlite3 errors as mcpmanager errors naming ``operation``."""
    try:
        yield
    except MCPManagerError:
        raise
    except sqlite3.Error as exc:
        raise _map(operation, exc) from exc


def _map(operation: str, exc: sqlite3.Error) -> MCPManagerError:
    detail = str(exc) or type(exc).__name__
    lowered = detail.lower()
    if isinstance(exc, sqlite3.IntegrityError):
        if "foreign key" in lowered:
            return NotFound(f"{operation}: container is not registered (call upsert_container)")
        if "unique" in lowered:
            return AlreadyExists(f"{operation}: already exists ({detail})")
    if "no such table" in lowered:
        return FailedPrecondition(f"{operation}: store tables missing, run migrate() ({detail})")
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in lowered:
        return FailedPrecondition(f"{operation}: the store is closed")
    if isinstance(exc, sqlite3.OperationalError):
        return Unavailable(f"{operation}: database unavailable ({detail})")
    logger.error("%s failed: %s", operation, detail)
    return MCPManagerError(f"{operation}: database error ({detail})")
