"""Translate psycopg and psycopg_pool failures into ``mcpmanager.errors``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from psycopg import errors as pgerr

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
    """Run the body, re-raising database failures as mcpmanager errors naming ``operation``."""
    try:
        yield
    except MCPManagerError:
        raise
    except psycopg_pool.PoolTimeout as exc:
        raise Unavailable(f"{operation}: no database connection available ({exc})") from exc
    except psycopg_pool.PoolClosed as exc:
        raise FailedPrecondition(f"{operation}: the store's connection pool is closed") from exc
    except psycopg.Error as exc:
        raise _map(operation, exc) from exc


def _map(operation: str, exc: psycopg.Error) -> MCPManagerError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, pgerr.UniqueViolation):
        return AlreadyExists(f"{operation}: already exists ({detail})")
    if isinstance(exc, pgerr.ForeignKeyViolation):
        return NotFound(f"{operation}: container is not registered (call upsert_container)")
    if isinstance(exc, (pgerr.UndefinedTable, pgerr.InvalidSchemaName)):
        return FailedPrecondition(f"{operation}: store tables missing, run migrate() ({detail})")
    if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return Unavailable(f"{operation}: database unavailable ({detail})")
    logger.error("%s failed: %s", operation, detail)
    return MCPManagerError(f"{operation}: database error ({detail})")
