"""``SQLiteStore``: the embedded version store on the standard library's sqlite3."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from types import TracebackType

from mcpmanager.errors import NotFound
from mcpmanager.store import _rows
from mcpmanager.store import _sqlite_sql as q
from mcpmanager.store._sqlite_conn import Connections
from mcpmanager.store._sqlite_errors import translate
from mcpmanager.store._values import (
    check_version,
    encode_payload,
    require_text,
    snapshot_args,
)
from mcpmanager.store.base import ContainerRecord, EventRecord, SnapshotRecord, VersionRecord
from mcpmanager.store.migrations import MIGRATIONS, SQLITE_BOOTSTRAP

from .._log import get_logger

__all__ = ["SQLiteStore"]

logger = get_logger("mcpmanager.store")

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"


def _now() -> str:
    return datetime.now(timezone.utc).strftime(_TIME_FORMAT)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


class SQLiteStore:
    """A ``VersionStore`` in one SQLite file (WAL mode), or in memory with ``":memory:"``.

    Many threads and several processes may use the same file; writers take the
    database lock up front (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout``
    seconds for it before raising ``Unavailable``. Unless ``auto_migrate`` is
    false the tables are created when the store is constructed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        auto_migrate: bool = True,
    ) -> None:
        self._conns = Connections(path, busy_timeout)
        if auto_migrate:
            try:
                self.migrate()
            except BaseException:
                self.close()
                raise

    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self._conns.path

    def close(self) -> None:
        """Close the connections; later calls raise ``FailedPrecondition``."""
        self._conns.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def migrate(self) -> None:
        """Create the tables or apply newer migrations; safe to run concurrently."""
        with translate(f"migrate version store {self.path!r}"), self._write() as conn:
            conn.execute(SQLITE_BOOTSTRAP)
            applied = {row[0] for row in conn.execute(q.APPLIED_MIGRATIONS)}
            for migration in MIGRATIONS:
                if migration.version in applied:
                    continue
                for statement in migration.sqlite:
                    conn.execute(statement)
                conn.execute(q.RECORD_MIGRATION, (migration.version, migration.name, _now()))
                logger.info("store %s: applied migration %d", self.path, migration.version)

    def upsert_container(
        self, container_id: str, bot_id: str, image: str, snapshotter: str
    ) -> None:
        """Register a container, or update its bot, image and snapshotter."""
        cid = require_text(container_id, "container_id")
        bot = require_text(bot_id, "bot_id")
        now = _now()
        params = (str(uuid.uuid4()), bot, cid, cid, image, snapshotter, now, now)
        with translate(f"upsert container {cid!r}"), self._write() as conn:
            conn.execute(q.UPSERT_CONTAINER, params)

    def get_container(self, container_id: str) -> ContainerRecord:
        """Return a registered container; ``NotFound`` if it is not registered."""
        cid = require_text(container_id, "container_id")
        with translate(f"get container {cid!r}"), self._conns.acquire() as conn:
            row = conn.execute(q.GET_CONTAINER, (cid,)).fetchone()
        if row is None:
            raise NotFound(f"container {cid!r} is not registered in the version store")
        return _rows.container(row, _time)

    def delete_container(self, container_id: str) -> None:
        """Forget a container with its snapshots, versions and events (no error if absent)."""
        cid = require_text(container_id, "container_id")
        with translate(f"delete container {cid!r}"), self._write() as conn:
            conn.execute(q.DELETE_CONTAINER, (cid,))

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
        now, version_id = _now(), str(uuid.uuid4())
        with translate(operation), self._write() as conn:
            conn.execute(
                q.UPSERT_SNAPSHOT,
                (
                    str(uuid.uuid4()),
                    a.container_id,
                    a.runtime_snapshot_name,
                    a.display_name,
                    a.parent_runtime_snapshot_name,
                    a.snapshotter,
                    a.source,
                    now,
                ),
            )
            (snapshot_id,) = conn.execute(
                q.SNAPSHOT_ID, (a.container_id, a.runtime_snapshot_name)
            ).fetchone()
            (version,) = conn.execute(q.NEXT_VERSION, (a.container_id,)).fetchone()
            params = (version_id, a.container_id, snapshot_id, version, now)
            conn.execute(q.INSERT_VERSION, params)
        logger.debug("%s: version %d", operation, version)
        return VersionRecord(
            id=version_id,
            container_id=a.container_id,
            version=int(version),
            runtime_snapshot_name=a.runtime_snapshot_name,
            display_name=a.display_name or "",
            source=a.source,
            created_at=_time(now),
        )

    def list_versions(self, container_id: str) -> list[VersionRecord]:
        """All versions of a container, version 1 first; empty if it has none."""
        cid = require_text(container_id, "container_id")
        with translate(f"list versions of container {cid!r}"), self._conns.acquire() as conn:
            rows = conn.execute(q.LIST_VERSIONS, (cid,)).fetchall()
        return [_rows.version(row, _time) for row in rows]

    def get_version(self, container_id: str, version: int) -> VersionRecord:
        """One version of a container; ``NotFound`` if it does not exist."""
        cid = require_text(container_id, "container_id")
        check_version(cid, version)
        operation = f"get version {version} of container {cid!r}"
        with translate(operation), self._conns.acquire() as conn:
            row = conn.execute(q.GET_VERSION, (cid, version)).fetchone()
        if row is None:
            raise NotFound(f"version {version} of container {cid!r} does not exist")
        return _rows.version(row, _time)

    def list_snapshots(self, container_id: str) -> list[SnapshotRecord]:
        """All recorded snapshots of a container, newest first, with their version numbers."""
        cid = require_text(container_id, "container_id")
        with translate(f"list snapshots of container {cid!r}"), self._conns.acquire() as conn:
            rows = conn.execute(q.LIST_SNAPSHOTS, (cid,)).fetchall()
        return [_rows.snapshot(row, _time) for row in rows]

    def add_event(self, container_id: str, event_type: str, payload: Mapping[str, object]) -> None:
        """Append a lifecycle event; ``NotFound`` if the container is not registered."""
        cid = require_text(container_id, "container_id")
        etype = require_text(event_type, "event_type")
        params = (str(uuid.uuid4()), cid, etype, encode_payload(cid, etype, payload), _now())
        with translate(f"add event {etype!r} to container {cid!r}"), self._write() as conn:
            conn.execute(q.INSERT_EVENT, params)

    def list_events(self, container_id: str) -> list[EventRecord]:
        """A container's lifecycle events in the order they were added."""
        cid = require_text(container_id, "container_id")
        with translate(f"list events of container {cid!r}"), self._conns.acquire() as conn:
            rows = conn.execute(q.LIST_EVENTS, (cid,)).fetchall()
        return [_rows.event(row, _time) for row in rows]

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE``: committed on success, else rolled back."""
        with self._conns.acquire() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
