"""The PostgreSQL ``Dialect``: psycopg 3 through a ``psycopg_pool.ConnectionPool``.

Importing this module imports psycopg, which needs a libpq; ``postgres.py``
imports it only when a ``PostgresStore`` is made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import psycopg
import psycopg_pool
from psycopg import errors as pgerr
from psycopg import sql

from mcpmanager.errors import InvalidArgument
from mcpmanager.store._core import Session
from mcpmanager.store._errors import Failure, first_line

__all__ = ["PostgresDialect"]

# First key of every advisory lock the store takes (an arbitrary constant, "mcpm").
LOCK_CLASS = 0x6D63706D

_ADVISORY_XACT_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_SCHEMA_EXISTS = "SELECT 1 FROM pg_namespace WHERE nspname = %s"
_CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"

Pool = psycopg_pool.ConnectionPool

# Rows per chunk of a streamed result: big enough that the per-chunk overhead
# is small, small enough that the server is still sending while we build.
STREAM_CHUNK = 1000
_CHUNKED = psycopg.capabilities.has_stream_chunked()


def _utc(value: datetime) -> datetime:
    # Owned pools set the session time zone to UTC, so this is normally a no-op.
    return value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)


class _Statements:
    """``_sql`` templates composed for one schema, once each."""

    def __init__(self, schema: str) -> None:
        self._schema = sql.Identifier(schema)
        self._cache: dict[str, sql.Composed] = {}

    def __call__(self, template: str) -> sql.Composed:
        """``template`` with ``{schema}`` bound to the quoted schema name."""
        composed = self._cache.get(template)
        if composed is None:
            composed = sql.SQL(template).format(schema=self._schema)
            self._cache[template] = composed
        return composed


class _Session:
    """A pooled connection running templates with binary results.

    Binary results spare parsing text: rows of 10,000 versions load cheaply.
    psycopg prepares a statement on a connection after a few runs by itself.
    """

    __slots__ = ("_conn", "_render")

    def __init__(self, conn: psycopg.Connection[Any], render: _Statements) -> None:
        self._conn = conn
        self._render = render

    def execute(self, template: str, params: Sequence[object] = ()) -> psycopg.Cursor[Any]:
        """Run ``template`` with ``params``."""
        return self._conn.execute(self._render(template), params, binary=True)

    def stream(self, template: str, params: Sequence[object] = ()) -> Iterable[Any]:
        """Rows in chunks of ``STREAM_CHUNK`` as the server sends them (libpq 17+).

        The caller turns one chunk into records while the server sends the
        next; with an older libpq, all rows at once.
        """
        if not _CHUNKED:
            return self.execute(template, params).fetchall()
        cursor = self._conn.cursor(binary=True)
        return cursor.stream(self._render(template), params, size=STREAM_CHUNK)

    @property
    def utc(self) -> bool:
        """Whether the session's time zone is UTC (psycopg then loads timestamps in UTC)."""
        return self._conn.info.timezone is timezone.utc


class PostgresDialect:
    """PostgreSQL for ``SQLStore``: tables in one schema, an owned or a borrowed pool."""

    name = "postgres"

    def __init__(
        self,
        conninfo: str | Pool[Any],
        *,
        schema: str,
        min_size: int,
        max_size: int,
        timeout: float,
    ) -> None:
        self.schema = schema
        self.where = f"schema {schema}"
        self.when: Callable[[Any], datetime] = _utc
        self.timeout = timeout
        self._render = _Statements(schema)
        self._lock = threading.Lock()
        if isinstance(conninfo, Pool):
            self._pool: Pool[Any] = conninfo
            self._owns_pool = False
        elif isinstance(conninfo, str):
            self._pool = Pool(
                conninfo,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                open=False,
                kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
                check=Pool.check_connection,
                name=f"mcpmanager-store-{schema}",
            )
            self._owns_pool = True
        else:
            raise InvalidArgument("conninfo must be a connection string or a ConnectionPool")
        self._opened = not self._owns_pool

    @contextmanager
    def read(self) -> Iterator[_Session]:
        """A pooled connection (autocommit when the pool is ours)."""
        self._ensure_open()
        with self._pool.connection() as conn:
            yield _Session(conn, self._render)

    @contextmanager
    def write(self) -> Iterator[_Session]:
        """A pooled connection inside one transaction."""
        self._ensure_open()
        with self._pool.connection() as conn, conn.transaction():
            yield _Session(conn, self._render)

    def open(self) -> None:
        """Start opening the pool (if it is ours) without waiting for a connection."""
        self._ensure_open()

    def ping(self) -> None:
        """Open the pool and run one query on one of its connections."""
        self._ensure_open()
        with self._pool.connection(timeout=self.timeout) as conn:
            conn.execute("SELECT 1")

    def lock_numbering(self, session: Session, container_id: str) -> None:
        """A transaction-scoped advisory lock keyed by schema and container."""
        session.execute(_ADVISORY_XACT_LOCK, (LOCK_CLASS, f"versions:{self.schema}:{container_id}"))

    def begin_migration(self, session: Session) -> None:
        """Take the schema's migration lock, then create the schema if it is missing.

        The existence check first means a role without CREATE on the database can
        still migrate a schema an administrator made for it.
        """
        session.execute(_ADVISORY_XACT_LOCK, (LOCK_CLASS, f"migrate:{self.schema}"))
        if session.execute(_SCHEMA_EXISTS, (self.schema,)).fetchone() is None:
            session.execute(_CREATE_SCHEMA)

    def classify(self, exc: Exception) -> tuple[Failure, str] | None:
        """Sort psycopg and psycopg_pool errors by their classes (SQLSTATEs)."""
        if isinstance(exc, psycopg_pool.PoolTimeout):
            return Failure.UNAVAILABLE, f"no database connection available ({exc})"
        if isinstance(exc, psycopg_pool.PoolClosed):
            return Failure.CLOSED, "the store's connection pool is closed"
        if not isinstance(exc, psycopg.Error):
            return None
        detail = first_line(exc)
        if isinstance(exc, pgerr.UniqueViolation):
            return Failure.DUPLICATE, detail
        if isinstance(exc, pgerr.ForeignKeyViolation):
            return Failure.UNREGISTERED, detail
        if isinstance(exc, (pgerr.UndefinedTable, pgerr.UndefinedColumn, pgerr.InvalidSchemaName)):
            return Failure.NOT_MIGRATED, detail
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return Failure.UNAVAILABLE, detail
        return Failure.OTHER, detail

    def times(self, session: Session) -> Callable[[Any], datetime] | None:
        """None on a UTC session (an owned pool's), else the per-row conversion to UTC."""
        return None if isinstance(session, _Session) and session.utc else _utc

    def stamp(self, when: datetime) -> datetime:
        """Timestamps go in as aware datetimes (``timestamptz``)."""
        return when

    def close(self) -> None:
        """Close the pool if it is ours; a caller's pool stays open."""
        with self._lock:
            self._opened = True  # never reopen after close
            if self._owns_pool:
                self._pool.close()

    def _ensure_open(self) -> None:
        if self._opened:
            return
        with self._lock:
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True
