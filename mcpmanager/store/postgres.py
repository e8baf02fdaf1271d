"""``PostgresStore``: the version store on PostgreSQL (psycopg 3 with ``psycopg_pool``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from mcpmanager.errors import FailedPrecondition, InvalidArgument, NotFound
from mcpmanager.store import _pg_migrate, _rows
from mcpmanager.store import _pg_sql as q
from mcpmanager.store._pg_errors import translate
from mcpmanager.store._values import (
    check_schema,
    check_version,
    encode_payload,
    require_text,
    snapshot_args,
)
from mcpmanager.store.base import ContainerRecord, EventRecord, SnapshotRecord, VersionRecord

from .._log import get_logger

__all__ = ["PostgresStore"]

logger = get_logger("mcpmanager.store")

Row = tuple[Any, ...]


def _utc(value: datetime) -> datetime:
    # Owned pools set the session time zone to UTC, so this is normally a no-op.
    return value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)


class PostgresStore:
    """A ``VersionStore`` keeping its tables in one schema of a PostgreSQL database.

    ``conninfo`` is a libpq connection string (the store then owns a pool it opens
    on first use and closes in ``close()``) or a ``ConnectionPool`` the caller
    owns and closes. ``schema`` keeps the tables apart from the host
    application's; ``migrate()`` creates it. ``timeout`` is how long a call waits
    for a connection before raising ``Unavailable``.
    """

    def __init__(
        self,
        conninfo: str | ConnectionPool[Any],
        *,
        schema: str = "mcpmanager",
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 10.0,
    ) -> None:
        self._schema = check_schema(schema)
        self._sql = q.Statements(self._schema)
        self._lock = threading.Lock()
        self._closed = False
        self._timeout = timeout
        if isinstance(conninfo, ConnectionPool):
            self._pool: ConnectionPool[Any] = conninfo
            self._owns_pool = False
        elif isinstance(conninfo, str):
            self._pool = ConnectionPool(
                conninfo,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                open=False,
                kwargs={"autocommit": True, "options": "-c TimeZone=UTC"},
                check=ConnectionPool.check_connection,
                name=f"mcpmanager-store-{self._schema}",
            )
            self._owns_pool = True
        else:
            raise InvalidArgument("conninfo must be a connection string or a ConnectionPool")
        self._opened = not self._owns_pool

    @property
    def schema(self) -> str:
        """The schema holding this store's tables."""
        return self._schema

    def open(self, *, wait: bool = True) -> None:
        """Open the owned pool now; with ``wait`` raise ``Unavailable`` unless it connects.

        Calls open the pool by themselves when needed; this is for checking the
        database is reachable at start-up.
        """
        with translate(f"open store (schema {self._schema})"):
            self._ensure_open()
            if wait:
                with self._pool.connection(timeout=self._timeout) as conn:
                    conn.execute("SELECT 1")

    def close(self) -> None:
        """Close the pool if this store owns it; later calls raise ``FailedPrecondition``."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owns_pool:
                self._pool.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def migrate(self) -> None:
        """Create the schema and tables, or apply newer migrations; safe to run concurrently."""
        with translate(f"migrate store schema {self._schema}"), self._connection() as conn:
            _pg_migrate.migrate(conn, self._schema, self._sql)

    def upsert_container(
        self, container_id: str, bot_id: str, image: str, snapshotter: str
    ) -> None:
        """Register a container, or update its bot, image and snapshotter."""
        cid = require_text(container_id, "container_id")
        params = (require_text(bot_id, "bot_id"), cid, cid, image, snapshotter)
        with translate(f"upsert container {cid!r}"), self._connection() as conn:
            conn.execute(self._sql(q.UPSERT_CONTAINER), params)

    def get_container(self, container_id: str) -> ContainerRecord:
        """Return a registered container; ``NotFound`` if it is not registered."""
        cid = require_text(container_id, "container_id")
        with translate(f"get container {cid!r}"), self._connection() as conn:
            row = conn.execute(self._sql(q.GET_CONTAINER), (cid,)).fetchone()
        if row is None:
            raise NotFound(f"container {cid!r} is not registered in the version store")
        return _rows.container(row, _utc)

    def delete_container(self, container_id: str) -> None:
        """Forget a container with its snapshots, versions and events (no error if absent)."""
        cid = require_text(container_id, "container_id")
        with translate(f"delete container {cid!r}"), self._connection() as conn:
            conn.execute(self._sql(q.DELETE_CONTAINER), (cid,))

    def record_snapshot(
        self,
        container_id: str,
        runtime_snapshot_name: str,
        *,
        display_name: str = "",
        parent_runtime_snapshot_name: str = "",
        snapshotter: str,
        source: str = "manual",
    ) -> VersionRecord:
        """Upsert the snapshot and insert the container's next version in one transaction."""
        a = snapshot_args(
            container_id,
            runtime_snapshot_name,
            display_name,
            parent_runtime_snapshot_name,
            snapshotter,
            source,
        )
        operation = f"record snapshot {a.runtime_snapshot_name!r} of container {a.container_id!r}"
        with translate(operation), self._connection() as conn, conn.transaction():
            lock_key = f"versions:{self._schema}:{a.container_id}"
            conn.execute(q.ADVISORY_XACT_LOCK, (q.LOCK_CLASS, lock_key))
            snap = conn.execute(
                self._sql(q.UPSERT_SNAPSHOT),
                (
                    a.container_id,
                    a.runtime_snapshot_name,
                    a.display_name,
                    a.parent_runtime_snapshot_name,
                    a.snapshotter,
                    a.source,
                ),
            ).fetchone()
            assert snap is not None
            row = conn.execute(
                self._sql(q.INSERT_NEXT_VERSION), (a.container_id, snap[0], a.container_id)
            ).fetchone()
            assert row is not None
        logger.debug("%s: version %d", operation, row[1])
        return VersionRecord(
            id=row[0],
            container_id=a.container_id,
            version=row[1],
            runtime_snapshot_name=a.runtime_snapshot_name,
            display_name=a.display_name or "",
            source=a.source,
            created_at=_utc(row[2]),
        )

    def list_versions(self, container_id: str) -> list[VersionRecord]:
        """All versions of a container, version 1 first; empty if it has none."""
        cid = require_text(container_id, "container_id")
        with translate(f"list versions of container {cid!r}"), self._connection() as conn:
            # Binary results and rows already in field order: 10,000 versions stay cheap.
            cursor = conn.cursor(binary=True)
            rows = cursor.execute(self._sql(q.LIST_VERSIONS), (cid,)).fetchall()
        return [
            VersionRecord(vid, c, n, name, display, source, _utc(at))
            for vid, c, n, name, display, source, at in rows
        ]

    def get_version(self, container_id: str, version: int) -> VersionRecord:
        """One version of a container; ``NotFound`` if it does not exist."""
        cid = require_text(container_id, "container_id")
        check_version(cid, version)
        with translate(f"get version {version} of container {cid!r}"), self._connection() as conn:
            row = conn.execute(self._sql(q.GET_VERSION), (cid, version)).fetchone()
        if row is None:
            raise NotFound(f"version {version} of container {cid!r} does not exist")
        return _rows.version(row, _utc)

    def list_snapshots(self, container_id: str) -> list[SnapshotRecord]:
        """All recorded snapshots of a container, newest first, with their version numbers."""
        cid = require_text(container_id, "container_id")
        with translate(f"list snapshots of container {cid!r}"), self._connection() as conn:
            rows = conn.execute(self._sql(q.LIST_SNAPSHOTS), (cid,)).fetchall()
        return [_rows.snapshot(row, _utc) for row in rows]

    def add_event(self, container_id: str, event_type: str, payload: Mapping[str, object]) -> None:
        """Append a lifecycle event; ``NotFound`` if the container is not registered."""
        cid = require_text(container_id, "container_id")
        etype = require_text(event_type, "event_type")
        body = encode_payload(cid, etype, payload)
        params = (str(uuid.uuid4()), cid, etype, body)
        with translate(f"add event {etype!r} to container {cid!r}"), self._connection() as conn:
            conn.execute(self._sql(q.INSERT_EVENT), params)

    def list_events(self, container_id: str) -> list[EventRecord]:
        """A container's lifecycle events in the order they were added."""
        cid = require_text(container_id, "container_id")
        with translate(f"list events of container {cid!r}"), self._connection() as conn:
            rows = conn.execute(self._sql(q.LIST_EVENTS), (cid,)).fetchall()
        return [_rows.event(row, _utc) for row in rows]

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        self._ensure_open()
        with self._pool.connection() as conn:
            yield conn

    def _ensure_open(self) -> None:
        with self._lock:
            if self._closed:
                raise FailedPrecondition(f"version store (schema {self._schema}) is closed")
            if not self._opened:
                self._pool.open(wait=False)
                self._opened = True
